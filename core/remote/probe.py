"""Ask a server what it is and which models it offers: ``/v1/models`` (every OpenAI-compatible server), then the
endpoints only some servers have — llama-server's ``/props`` and ``/health``, Ollama's ``/api/tags`` and
``/api/ps``, LM Studio's ``/api/v0/models``. Each probe is bounded by the connection's timeout."""

from __future__ import annotations

import logging
import time
from typing import Any

from core.errors import AuthError, HangarError
from core.remote.http import RemoteHTTP, normalise_url
from core.remote.types import ProbeResult

logger = logging.getLogger(__name__)

#: The model name servers that serve one model and list none answer to (mlx-lm's server, llama-server).
DEFAULT_MODEL = "default_model"
#: The most model names kept from one server's list.
MAX_MODELS = 500


def probe(url: str, *, api_key: str | None = None, timeout: float = 10.0, label: str = "") -> ProbeResult:
    started = time.monotonic()
    base = normalise_url(url)
    http = RemoteHTTP(base, api_key=api_key, timeout=timeout, label=label or base)
    try:
        listing = http.get_json("/v1/models")
    except HangarError as exc:
        # A server that is up may still fail its model list (mlx-lm's server answers an empty 200 when there is no
        # Hugging Face cache): it counts as answering if its health endpoint does.
        health = _try(http, "/health", min(timeout, 5.0))
        if not isinstance(health, dict) or isinstance(exc, AuthError):
            return ProbeResult(base, answered=False, error=str(exc), seconds=time.monotonic() - started)
        logger.info("%s lists no models (%s); it answers /health", base, exc)
        listing = {}
    listed, owners = _model_ids(listing)
    kind, details, extra_models = _identify(http, owners)
    models = tuple(dict.fromkeys([*listed, *extra_models]))[:MAX_MODELS]
    default = None
    if not models:
        # A server that lists nothing still answers requests for its one model (mlx-lm's server says so itself).
        default = str(details.get("model") or DEFAULT_MODEL)
    elif len(models) == 1:
        default = models[0]
    return ProbeResult(
        base,
        answered=True,
        kind=kind,
        models=models,
        default_model=default,
        details=details,
        seconds=time.monotonic() - started,
    )


def _model_ids(listing: Any) -> tuple[list[str], set[str]]:
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        return [], set()
    ids = [str(item["id"])[:200] for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)]
    owners = {str(item.get("owned_by", "")).lower() for item in data if isinstance(item, dict)}
    return ids, owners


def _identify(http: RemoteHTTP, owners: set[str]) -> tuple[str, dict[str, object], list[str]]:
    """The server's kind, what it says about itself, and models listed by its native API."""
    quick = min(http.timeout, 5.0)
    if "hangar" in owners:
        return "hangar", {}, []
    if "vllm" in owners:
        return "vllm", {}, []
    if "llamacpp" in owners or _answers(http, "/props", quick):
        return "llama-server", _llama_server_props(http, quick), []
    tags = _try(http, "/api/tags", quick)
    if isinstance(tags, dict) and isinstance(tags.get("models"), list):
        names = [str(m.get("name"))[:200] for m in tags["models"] if isinstance(m, dict) and m.get("name")]
        running = _try(http, "/api/ps", quick)
        loaded = [m.get("name") for m in running.get("models", []) if isinstance(m, dict)] if running else []
        version = _try(http, "/api/version", quick)
        about: dict[str, object] = {"loaded": loaded}
        if isinstance(version, dict) and version.get("version"):
            about["version"] = str(version["version"])[:40]
        return "ollama", about, names
    native = _try(http, "/api/v0/models", quick)
    if isinstance(native, dict) and isinstance(native.get("data"), list):
        loaded = [m.get("id") for m in native["data"] if isinstance(m, dict) and m.get("state") == "loaded"]
        return "lm-studio", {"loaded": loaded}, []
    health = _try(http, "/health", quick)
    if isinstance(health, dict) and health.get("status") in ("ok", "unavailable"):
        return "mlx-lm", {}, []
    return "openai-compatible", {}, []


def _llama_server_props(http: RemoteHTTP, timeout: float) -> dict[str, object]:
    props = _try(http, "/props", timeout)
    if not isinstance(props, dict):
        return {}
    details: dict[str, object] = {}
    settings = props.get("default_generation_settings")
    if isinstance(settings, dict) and isinstance(settings.get("n_ctx"), int):
        details["context_length"] = settings["n_ctx"]
    if isinstance(props.get("model_path"), str):
        details["model"] = props["model_path"].rsplit("/", 1)[-1][:200]
    if isinstance(props.get("chat_template"), str):
        details["has_chat_template"] = bool(props["chat_template"])
    return details


def _answers(http: RemoteHTTP, path: str, timeout: float) -> bool:
    return _try(http, path, timeout) is not None


def _try(http: RemoteHTTP, path: str, timeout: float) -> Any:
    try:
        return http.get_json(path, timeout=timeout)
    except HangarError as exc:
        logger.debug("probe of %s%s: %s", http.base, path, exc)
        return None
