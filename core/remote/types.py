"""The values of the remote feature: a saved connection, what a probe found, and a chat target."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from core.engine.protocol import RemoteTarget

__all__ = ["ProbeResult", "RemoteServer", "RemoteTarget"]


@dataclass(frozen=True)
class RemoteServer:
    """A saved connection. The API key is never stored here: it comes from an environment variable named by the
    user (``api_key_env``) or from the OS keyring (``key_in_keyring``)."""

    name: str
    url: str
    api_key_env: str | None = None
    key_in_keyring: bool = False
    #: Seconds to wait for the server to answer (connect and between streamed chunks).
    timeout: float = 30.0

    def api_key(self, keys: Callable[[str], str | None] | None = None) -> str | None:
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or None
        if self.key_in_keyring and keys is not None:
            return keys(self.name)
        return None


@dataclass(frozen=True)
class ProbeResult:
    """What a server is and offers, as far as it told us."""

    url: str
    answered: bool
    #: "hangar", "llama-server", "ollama", "lm-studio", "mlx-lm", "vllm", "openai-compatible" or "unknown".
    kind: str = "unknown"
    models: tuple[str, ...] = ()
    #: The model a request without a listed model should name (servers that serve one model and list none).
    default_model: str | None = None
    error: str | None = None
    #: What the server says about itself (llama-server's /props: context size, chat template present, ...).
    details: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0
