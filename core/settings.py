"""Typed, versioned user settings saved atomically as JSON.

Secrets never live here: the Hugging Face token is in the OS keyring (see ``core.secrets``). Window geometry is
kept by the UI in its own file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from core.errors import SettingsError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
Theme = Literal["system", "light", "dark"]


@dataclass(frozen=True)
class Settings:
    schema_version: int = SCHEMA_VERSION
    theme: Theme = "system"
    #: Where downloaded and copied models go; ``None`` means the data folder's ``models``.
    models_dir: str | None = None
    #: Extra folders scanned for models (other apps' folders are found automatically).
    scan_folders: tuple[str, ...] = ()
    default_context_length: int = 4096
    #: "auto" lets the estimator choose; a number pins the GPU layer count.
    gpu_layers: str = "auto"
    max_parallel_downloads: int = 2
    #: Connections per downloaded file: 0 adapts (4 to 16), 1 is one stream.
    download_connections: int = 0
    #: Global download bandwidth limit in MB/s (0: none).
    download_limit_mbps: float = 0.0
    first_run_done: bool = False

    def replace(self, **changes: Any) -> Settings:
        return validate(dataclasses.replace(self, **changes))


def validate(settings: Settings) -> Settings:
    if settings.theme not in get_args(Theme):
        raise SettingsError(f"Unknown theme {settings.theme!r}; choose system, light or dark.")
    if not 256 <= settings.default_context_length <= 10_000_000:
        raise SettingsError("The default context length must be between 256 and 10,000,000 tokens.")
    if settings.gpu_layers != "auto" and not (settings.gpu_layers.isdigit()):
        raise SettingsError("GPU layers must be 'auto' or a whole number.")
    if not 1 <= settings.max_parallel_downloads <= 8:
        raise SettingsError("Parallel downloads must be between 1 and 8.")
    if not 0 <= settings.download_connections <= 16:
        raise SettingsError("Connections per download must be between 0 (automatic) and 16.")
    if not 0 <= settings.download_limit_mbps <= 100_000:
        raise SettingsError("The download bandwidth limit must be 0 (none) or a positive number of MB/s.")
    return settings


# Migrations from version N to N+1, applied to the raw dict before it is typed.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def load_settings(path: Path) -> Settings:
    """Read settings; a missing file gives defaults, a damaged one is kept aside as ``.bad`` and defaults used."""
    if not path.exists():
        return Settings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("the top level is not an object")
        return _from_dict(raw)
    except (ValueError, TypeError, SettingsError) as exc:
        backup = path.with_suffix(path.suffix + ".bad")
        os.replace(path, backup)
        logger.warning("settings file %s is damaged (%s); kept as %s, using defaults", path, exc, backup)
        return Settings()


def _from_dict(raw: dict[str, Any]) -> Settings:
    version = int(raw.get("schema_version", 1))
    if version > SCHEMA_VERSION:
        raise SettingsError(f"Settings were written by a newer Hangar (version {version}).")
    while version < SCHEMA_VERSION:
        raw = MIGRATIONS[version](raw)
        version += 1
    known = {f.name: f for f in fields(Settings)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            logger.info("ignoring unknown setting %r", key)
            continue
        values[key] = tuple(value) if isinstance(value, list) else value
    values["schema_version"] = SCHEMA_VERSION
    return validate(Settings(**values))


def save_settings(path: Path, settings: Settings) -> None:
    """Write atomically: a crash mid-write leaves the old file, never a half-written one."""
    validate(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(dataclasses.asdict(settings), indent=2, sort_keys=True)
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class SettingsService:
    """The live settings of a running app: one place to read, change and persist them."""

    path: Path
    current: Settings = field(default_factory=Settings)

    @classmethod
    def open(cls, path: Path) -> SettingsService:
        return cls(path=path, current=load_settings(path))

    def update(self, **changes: Any) -> Settings:
        self.current = self.current.replace(**changes)
        save_settings(self.path, self.current)
        return self.current
