"""Typed, versioned user settings saved atomically as JSON.

Secrets never live here: the Hugging Face token is in the OS keyring (see ``core.secrets``). Window geometry is
kept by the UI in its own file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from core.errors import SettingsError
from core.events import EventHook

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
    first_run_done: bool = False

    def replace(self, **changes: Any) -> Settings:
        return validate(dataclasses.replace(self, **changes))


def validate(settings: Settings) -> Settings:
    """Refuse a whole ``Settings`` with the first bad field's sentence (for changes made in the app)."""
    for spec in fields(Settings):
        problem = _field_problem(spec.name, getattr(settings, spec.name))
        if problem is not None:
            raise SettingsError(problem)
    return settings


def _field_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the setting ``name`` (a sentence), or None when it is fine."""
    if name == "theme":
        return None if value in get_args(Theme) else f"Unknown theme {value!r}; choose system, light or dark."
    if name == "models_dir":
        ok = value is None or (isinstance(value, str) and value.strip() != "" and "\x00" not in value)
        return None if ok else "The models folder must be a folder path."
    if name == "scan_folders":
        ok = isinstance(value, tuple) and all(isinstance(v, str) and v and "\x00" not in v for v in value)
        return None if ok else "Scan folders must be a list of folder paths."
    if name == "default_context_length":
        ok = _is_int(value) and 256 <= value <= 10_000_000
        return None if ok else "The default context length must be between 256 and 10,000,000 tokens."
    if name == "gpu_layers":
        ok = isinstance(value, str) and (value == "auto" or (value.isascii() and value.isdigit()))
        return None if ok else "GPU layers must be 'auto' or a whole number."
    if name == "max_parallel_downloads":
        return None if _is_int(value) and 1 <= value <= 8 else "Parallel downloads must be between 1 and 8."
    if name == "first_run_done":
        return None if isinstance(value, bool) else "first_run_done must be true or false."
    if name == "schema_version":
        return None if _is_int(value) else "schema_version must be a whole number."
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Migrations from version N to N+1, applied to the raw dict before it is typed.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    #: Sentences for the person, said once (a damaged file kept aside, fields reset to defaults).
    notices: tuple[str, ...] = ()


def load_settings(path: Path) -> Settings:
    return read_settings(path).settings


def read_settings(path: Path) -> LoadedSettings:
    """Read settings field by field. A missing file gives defaults; an unreadable one is kept aside as
    ``.bad-<time>`` and defaults used; bad fields get their defaults (the original file kept aside, the fixed
    one saved). Settings made by a newer Hangar are refused (``SettingsError``) and left as they are."""
    if not path.exists() and not path.is_symlink():
        return LoadedSettings(Settings())
    try:
        if path.is_dir():
            raise ValueError("it is a folder, not a file")
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("the top level is not an object")
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        try:
            kept = _keep_aside(path, move=True)
        except OSError as move_error:
            logger.warning("settings file %s is unreadable (%s) and cannot be moved: %s", path, reason, move_error)
            return LoadedSettings(
                Settings(), (f"The settings file {path} cannot be read ({reason}); using the defaults for now.",)
            )
        logger.warning("settings file %s is damaged (%s); kept as %s, using defaults", path, reason, kept)
        notice = f"The settings file was damaged ({reason}); it was kept as {kept.name} and the defaults are used."
        return LoadedSettings(Settings(), (notice,))
    settings, bad = _from_dict(raw, path)
    if not bad:
        return LoadedSettings(settings)
    listed = ", ".join(f"{name} = {json.dumps(raw.get(name), default=str)[:60]}" for name in bad)
    try:
        kept = _keep_aside(path, move=False)
        save_settings(path, settings)
        where = f"the original file was kept as {kept.name}"
    except OSError as exc:
        logger.warning("could not keep aside or rewrite %s: %s", path, exc)
        where = "the file could not be rewritten"
    logger.warning("settings %s: invalid fields reset to defaults: %s (%s)", path, listed, where)
    notice = f"Some settings were not valid and were reset to their defaults ({listed}); {where}."
    return LoadedSettings(settings, (notice,))


def _keep_aside(path: Path, *, move: bool) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.bad-{stamp}-{n}")
    if move:
        os.replace(path, target)
    else:
        shutil.copy2(path, target)
    return target


def _from_dict(raw: dict[str, Any], path: Path) -> tuple[Settings, list[str]]:
    """The settings in ``raw`` and the names of the fields that were invalid (given their defaults)."""
    version = raw.get("schema_version", 1)
    if not _is_int(version) or version < 1:
        version = 1
    if version > SCHEMA_VERSION:
        raise SettingsError(
            f"The settings file {path} was made by a newer Hangar (settings version {version}; "
            f"this version knows {SCHEMA_VERSION}).",
            hint="Update Hangar, or start it with another --data-dir.",
        )
    while version < SCHEMA_VERSION:
        raw = MIGRATIONS[version](raw)
        version += 1
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    bad: list[str] = []
    for key, value in raw.items():
        if key not in known:
            logger.info("ignoring unknown setting %r", key)
            continue
        if key == "schema_version":
            continue
        value = tuple(value) if isinstance(value, list) else value
        if _field_problem(key, value) is not None:
            bad.append(key)
            continue
        values[key] = value
    return Settings(**values), bad


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
    #: Said once to the person when the settings were read (see ``read_settings``).
    notices: tuple[str, ...] = ()
    #: Fired with the new ``Settings`` after every change, so services follow them live.
    changed: EventHook[[Settings]] = field(default_factory=EventHook, repr=False, compare=False)

    @classmethod
    def open(cls, path: Path) -> SettingsService:
        loaded = read_settings(path)
        return cls(path=path, current=loaded.settings, notices=loaded.notices)

    def update(self, **changes: Any) -> Settings:
        new = self.current.replace(**changes)
        try:
            save_settings(self.path, new)
        except OSError as exc:
            raise SettingsError(
                f"The settings could not be saved to {self.path} ({exc.strerror or exc}).",
                hint="Check that the folder is writable and has free space.",
            ) from exc
        self.current = new
        self.changed.emit(new)
        return new

    def models_dir(self, default: Path) -> Path:
        """Where models go: the folder set in Settings, else ``default`` (the data folder's ``models``)."""
        configured = self.current.models_dir
        return Path(configured).expanduser() if configured else default
