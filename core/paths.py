"""Every directory Hangar uses, built from platformdirs, with one override for hermetic runs.

``--data-dir DIR`` (or ``HANGAR_DATA_DIR``) puts *everything* (config, data, models, cache, logs) under DIR.
Tests and the smoke test rely on this so they never touch the user's real folders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core import APP_NAME

DATA_DIR_ENV = "HANGAR_DATA_DIR"


@dataclass(frozen=True)
class AppPaths:
    config_dir: Path
    data_dir: Path
    cache_dir: Path
    log_dir: Path
    models_dir: Path

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def database_file(self) -> Path:
        return self.data_dir / "hangar.sqlite3"

    @property
    def window_state_file(self) -> Path:
        return self.config_dir / "window.ini"

    @property
    def downloads_dir(self) -> Path:
        """Partial downloads (``.part`` files) live here until verified and moved into the models folder."""
        return self.cache_dir / "downloads"

    @property
    def adapters_dir(self) -> Path:
        return self.data_dir / "adapters"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "hangar.log"

    def ensure(self) -> AppPaths:
        from core.errors import HangarError

        for folder in (self.config_dir, self.data_dir, self.cache_dir, self.log_dir, self.models_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HangarError(
                    f"Hangar cannot create its folder {folder} ({exc.strerror or exc}).",
                    hint="Fix the permissions, move the file that is in the way, or choose another --data-dir.",
                ) from None
        return self

    @classmethod
    def under(cls, root: Path) -> AppPaths:
        root = root.expanduser().resolve()
        return cls(
            config_dir=root / "config",
            data_dir=root / "data",
            cache_dir=root / "cache",
            log_dir=root / "logs",
            models_dir=root / "models",
        )

    @classmethod
    def resolve(cls, data_dir: str | os.PathLike[str] | None = None) -> AppPaths:
        """The paths for this run: ``data_dir`` if given, else ``$HANGAR_DATA_DIR``, else the platform's folders."""
        override = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
        if override:
            return cls.under(Path(override))
        import platformdirs

        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        return cls(
            config_dir=Path(dirs.user_config_dir),
            data_dir=Path(dirs.user_data_dir),
            cache_dir=Path(dirs.user_cache_dir),
            log_dir=Path(dirs.user_log_dir),
            models_dir=Path(dirs.user_data_dir) / "models",
        )


def safe_join(root: Path, relative: str) -> Path:
    """Join an untrusted relative name (from the network or an archive) under ``root``, or refuse.

    Refuses absolute paths, drive letters, ``..`` components, NUL bytes and anything that resolves outside root.
    """
    from core.errors import UnsafePathError

    if not relative or "\x00" in relative or "\\" in relative:
        raise UnsafePathError(f"Refused the file name {relative!r}: it is empty or has characters not allowed.")
    parts = relative.split("/")
    if relative.startswith("/") or ":" in parts[0] or any(p in ("", ".", "..") for p in parts):
        raise UnsafePathError(f"Refused the file name {relative!r}: it would leave the models folder.")
    root_resolved = root.resolve()
    candidate = (root_resolved / relative).resolve()
    if not candidate.is_relative_to(root_resolved):
        raise UnsafePathError(f"Refused the file name {relative!r}: it would leave the models folder.")
    return candidate
