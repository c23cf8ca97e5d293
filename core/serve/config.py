"""The server's settings: host, port, idle unload, limits, CORS, "start with the app". Kept in their own JSON file
(saved atomically) next to the app's settings; the API key is never here (see ``core.serve.keys``)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from core.errors import SettingsError

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


@dataclass(frozen=True)
class ServeConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: Unload a model nobody has used for this long (seconds); 0 keeps models loaded.
    idle_unload_seconds: float = 60 * 60
    #: Memory the loaded models may use together; None: what the estimator says this machine has.
    memory_budget_bytes: int | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    #: Longest answer a request may ask for; larger ``max_tokens`` are capped to this.
    max_tokens_cap: int = 8192
    #: Origins allowed by CORS; empty: closed (browsers on other pages cannot call the API).
    cors_origins: tuple[str, ...] = ()
    start_with_app: bool = False

    def replace(self, **changes: Any) -> ServeConfig:
        return dataclasses.replace(self, **changes).validated()

    def validated(self) -> ServeConfig:
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"Port {self.port} is not a port number (0-65535).")
        if not self.host.strip():
            raise SettingsError("Give the server an address to listen on, such as 127.0.0.1.")
        if self.idle_unload_seconds < 0:
            raise SettingsError("The idle unload time cannot be negative.")
        if self.max_body_bytes < 1024 or self.max_tokens_cap < 1:
            raise SettingsError("The body size limit must be at least 1 KiB and the token cap at least 1.")
        return self

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(path: Path) -> ServeConfig:
    if not path.is_file():
        return ServeConfig()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(ServeConfig)}
        values: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items() if k in known}
        return ServeConfig(**values).validated()
    except (OSError, ValueError, TypeError, SettingsError) as exc:
        logger.warning("server settings in %s are damaged (%s); using defaults", path, exc)
        return ServeConfig()


def save_config(path: Path, config: ServeConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".serve-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dataclasses.asdict(config), handle, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def config_file(config_dir: Path) -> Path:
    return config_dir / "serve.json"
