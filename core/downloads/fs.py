"""Where download data lives on disk: ``.part`` files named by download id and index (never by the Hub's untrusted
names), and the atomic move of verified files into the models folder."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import DiskFullError, IntegrityError
from core.paths import safe_join

if TYPE_CHECKING:
    from core.downloads.items import DownloadItem

logger = logging.getLogger(__name__)

MANIFEST = ".hangar-download.json"
#: Where the per-file download locks live, in the models folder itself: every Hangar writing there sees them.
LOCKS = ".hangar-locks"


def part_path(downloads_dir: Path, download_id: str, index: int) -> Path:
    return downloads_dir / download_id / f"{index:04d}.part"


def remove_parts(downloads_dir: Path, download_id: str) -> None:
    shutil.rmtree(downloads_dir / download_id, ignore_errors=True)


def install_files(downloads_dir: Path, download_id: str, item: DownloadItem, free_space: Any) -> None:
    """Move every verified part to its place. Each move is atomic (``os.replace``); across filesystems the file
    is first copied next to its destination, then renamed, so a half-copied file never carries the real name."""
    for index, remote in enumerate(item.files):
        part = part_path(downloads_dir, download_id, index)
        final = safe_join(item.destination, remote.path)
        if not part.exists() and final.exists() and final.stat().st_size == (remote.size or 0):
            continue  # moved already (before an interruption), or found installed and verified
        if part.stat().st_size != (remote.size or 0):
            raise IntegrityError(f"{remote.path} is incomplete; resume the download.")
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(part, final)
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # the models folder is on another filesystem
                raise
            if free_space(final.parent) < part.stat().st_size:
                raise DiskFullError(
                    f"Not enough space in {final.parent} to move {remote.path} there.",
                    hint="Free some space, then resume the download.",
                ) from None
            logger.info("copying %s across filesystems to %s", remote.path, final.parent)
            staging = final.with_name(final.name + ".hangar-copy")
            shutil.copyfile(part, staging)
            os.replace(staging, final)
            part.unlink()
    manifest = {
        "repo_id": item.repo_id,
        "revision": item.revision,
        "label": item.label,
        "downloaded_at": time.time(),
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256, "blob_id": f.blob_id} for f in item.files],
    }
    manifest_path = item.destination / MANIFEST
    previous = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"downloads": []}
    previous.setdefault("downloads", []).append(manifest)
    staging = manifest_path.with_suffix(".tmp")
    staging.write_text(json.dumps(previous, indent=1))
    os.replace(staging, manifest_path)
    remove_parts(downloads_dir, download_id)


class FileLock:
    """An exclusive, non-blocking OS lock on a file. The OS drops it when the process ends, even when killed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.name == "nt":
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


class PartLock(FileLock):
    """The lock on a download's part folder, so two Hangar processes (the window and ``hangar pull``) never write
    the same ``.part`` file."""

    def __init__(self, downloads_dir: Path, download_id: str) -> None:
        super().__init__(downloads_dir / download_id / ".lock")


class DestinationLock(FileLock):
    """The lock on one file's place in the models folder: whatever download wants it (another row, another
    process), only one fetches it; the others wait, then find it installed."""

    def __init__(self, models_dir: Path, final: Path) -> None:
        key = hashlib.sha256(str(final.absolute()).encode()).hexdigest()[:32]
        super().__init__(models_dir / LOCKS / f"{key}.lock")
