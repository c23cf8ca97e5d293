"""Putting a recognised model's files into Hangar's models folder: copy or move, with progress and cancel,
never leaving a half-imported model behind; and the content fingerprint used to spot duplicates.

Copies go to a hidden temporary name (``.importing-<id>-<name>``) next to the destination and are renamed into
place only when complete, so a cancelled, failed or crashed import leaves nothing that looks like a model;
``clean_leftovers`` removes temporaries of a crashed run.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import DiskFullError, HangarError
from core.jobs import CancelToken
from core.models.types import Candidate, ImportMode, ModelFormat

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".importing-"
_CHUNK = 8 * 1024 * 1024
_HEAD = 1024 * 1024
_SAMPLE = 64 * 1024
_SAMPLES = 16
_FOLDER_FORMATS = (ModelFormat.MLX, ModelFormat.LORA)

#: Temporaries this process is copying into right now (never cleaned up under its feet).
_active: set[Path] = set()
_active_lock = threading.Lock()

#: progress(bytes_done, bytes_total, message)
Progress = Callable[[int, int, str], None]


def fingerprint(candidate: Candidate) -> str:
    """Size plus a SHA-256 of each file's first MiB, 16 evenly spaced 64 KiB samples and its last 64 KiB.

    Why not a full hash: hashing a 40 GB model takes minutes of disk time on every import, and a full hash does
    not change the verdict in practice. Two GGUF files with the same size and the same first MiB (the whole
    header: architecture, every tensor's name, shape, type and offset, often the vocabulary) are the same
    conversion; the samples through the weights then separate different quantizations or fine-tunes of the
    same layout. About 2 MiB is read per file, whatever its size.
    """
    digest = hashlib.sha256()
    named = candidate.format in (ModelFormat.MLX, ModelFormat.LORA)
    for path in candidate.files:
        size = path.stat().st_size
        # Folder models are identified by their file names too; a single GGUF keeps its identity when renamed.
        digest.update(f"{path.name if named else ''}\0{size}\0".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(_HEAD))
            if size > _HEAD:
                step = max(1, (size - _HEAD) // (_SAMPLES + 1))
                for i in range(1, _SAMPLES + 1):
                    handle.seek(_HEAD + i * step)
                    digest.update(handle.read(_SAMPLE))
                handle.seek(max(0, size - _SAMPLE))
                digest.update(handle.read(_SAMPLE))
    return f"s2m-{digest.hexdigest()}"


@dataclass(frozen=True)
class Placed:
    """Where an imported model's files are now."""

    root: Path
    files: tuple[Path, ...]


def destination_for(candidate: Candidate, models_dir: Path) -> tuple[Path, list[tuple[Path, Path]]]:
    """The top-level destination (file or folder) and (source, destination) pairs for every file."""
    single = candidate.format == ModelFormat.GGUF and len(candidate.files) == 1
    if single or (candidate.format == ModelFormat.LORA and candidate.root.is_file()):
        top = _unique(models_dir / candidate.root.name)
        return top, [(candidate.root, top)]
    if candidate.format in (ModelFormat.GGUF, ModelFormat.GGUF_SPLIT):  # a split set, or a model and its projector
        top = _unique(models_dir / _safe_name(candidate.name))
        return top, [(f, top / f.name) for f in candidate.files]
    top = _unique(models_dir / _safe_name(candidate.root.name))
    return top, [(f, top / f.relative_to(candidate.root)) for f in candidate.files]


def place(
    candidate: Candidate,
    mode: ImportMode,
    models_dir: Path,
    *,
    progress: Progress | None = None,
    token: CancelToken | None = None,
) -> Placed:
    """Copy or move ``candidate`` into ``models_dir``. All or nothing: on any failure or cancel the destination
    does not exist and (for a move) the source is untouched."""
    if mode == ImportMode.LINK:
        return Placed(candidate.root, candidate.files)
    models_dir.mkdir(parents=True, exist_ok=True)
    top, pairs = destination_for(candidate, models_dir)
    if mode == ImportMode.MOVE and _try_rename(candidate, top, pairs):
        return _placed(candidate, top, pairs)
    temp = top.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex[:8]}-{top.name}")
    with _active_lock:
        _active.add(temp)
    try:
        _copy_all(pairs, top, temp, progress=progress, token=token)
        os.replace(temp, top)
    except BaseException:
        _remove(temp)
        raise
    finally:
        with _active_lock:
            _active.discard(temp)
    if mode == ImportMode.MOVE:
        # The copy is complete and in place; only now may the originals go.
        for src, _ in pairs:
            src.unlink(missing_ok=True)
        if candidate.root.is_dir():
            shutil.rmtree(candidate.root, ignore_errors=True)
    return _placed(candidate, top, pairs)


def _placed(candidate: Candidate, top: Path, pairs: list[tuple[Path, Path]]) -> Placed:
    files = tuple(dst for _, dst in pairs)
    return Placed(top if top.is_dir() and candidate.format in _FOLDER_FORMATS else files[0], files)


def _try_rename(candidate: Candidate, top: Path, pairs: list[tuple[Path, Path]]) -> bool:
    """A move within one file system is a rename: instant, and atomic per file."""
    made_folder = False
    try:
        if candidate.root.is_dir():
            os.rename(candidate.root, top)
        elif len(pairs) > 1:
            top.mkdir()
            made_folder = True
            for src, dst in pairs:
                os.rename(src, dst)
        else:
            os.rename(candidate.root, top)
        return True
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        if made_folder:
            # Renames within one set either all work or the first fails; put back any that went.
            for src, dst in pairs:
                if dst.exists() and not src.exists():
                    os.rename(dst, src)
            shutil.rmtree(top, ignore_errors=True)
        return False


def _copy_all(
    pairs: Sequence[tuple[Path, Path]],
    top: Path,
    temp: Path,
    *,
    progress: Progress | None,
    token: CancelToken | None,
) -> None:
    total = sum(src.stat().st_size for src, _ in pairs)
    free = shutil.disk_usage(top.parent).free
    if total > free:
        raise DiskFullError(
            f"Not enough space to copy the model: it needs {total / 1e9:.1f} GB and {free / 1e9:.1f} GB is free.",
            hint="Free some space, or import with “link” to use the model where it is.",
        )
    done = 0
    for src, dst in pairs:
        target = temp if dst == top else temp / dst.relative_to(top)
        target.parent.mkdir(parents=True, exist_ok=True)
        with src.open("rb", buffering=0) as reader, target.open("wb", buffering=0) as writer:
            for copied in _chunks(reader.fileno(), writer.fileno()):
                if token is not None:
                    token.raise_if_cancelled()
                done += copied
                if progress is not None:
                    progress(done, total, f"Copying {src.name}")
        shutil.copystat(src, target)


def _chunks(source: int, target: int) -> Iterator[int]:
    """Copy ``source`` to ``target`` (file descriptors) a chunk at a time, yielding each chunk's size so the
    caller reports progress and checks for cancel between chunks. ``copy_file_range`` keeps the bytes in the
    kernel (and is a reflink on file systems that can share blocks); plain reads and writes where it is not
    available."""
    kernel_copy = hasattr(os, "copy_file_range")
    while True:
        try:
            if kernel_copy:
                try:
                    copied = os.copy_file_range(source, target, _CHUNK)
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                        raise
                    kernel_copy = False  # the file offsets have not moved; go on with plain reads
                    continue
            else:
                chunk = os.read(source, _CHUNK)
                copied = len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(target, view) :]
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DiskFullError("The disk filled up while copying the model.") from exc
            raise
        if copied == 0:
            return
        yield copied


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        logger.warning("could not remove the unfinished import %s", path, exc_info=True)


def clean_leftovers(models_dir: Path, *, quiet_for: float = 120.0) -> int:
    """Remove temporaries of imports that a crash interrupted. Returns how many were removed.

    A temporary is left alone while this process copies into it, or while anything in it changed in the last
    ``quiet_for`` seconds (another Hangar process, say ``hangar import`` in a terminal, may be copying)."""
    if not models_dir.is_dir():
        return 0
    removed = 0
    now = time.time()
    for path in models_dir.iterdir():
        if not path.name.startswith(TEMP_PREFIX):
            continue
        with _active_lock:
            if path in _active:
                continue
        if now - _newest_mtime(path) < quiet_for:
            continue
        _remove(path)
        removed += 1
    return removed


def _newest_mtime(path: Path) -> float:
    try:
        newest = path.stat().st_mtime
        if path.is_dir():
            for child in path.rglob("*"):
                newest = max(newest, child.stat().st_mtime)
        return newest
    except OSError:
        return time.time()


def delete_files(root: Path, files: Sequence[Path]) -> int:
    """Delete a model's files (its whole folder, for folder models). Returns the bytes freed."""
    freed = 0
    for f in files:
        try:
            freed += f.stat().st_size
        except OSError:
            continue
    try:
        if root.is_dir():
            shutil.rmtree(root)
            return freed
        for f in files:
            f.unlink(missing_ok=True)
    except OSError as exc:
        raise HangarError(f"{root} could not be deleted ({exc.strerror}).") from exc
    parent = files[0].parent if files else root.parent
    if len(files) > 1 and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()  # the folder a split set was imported into
    return freed


def _unique(path: Path) -> Path:
    if not path.exists():
        return path
    stem, suffix = (path.stem, path.suffix) if path.suffix.lower() == ".gguf" else (path.name, "")
    n = 2
    while True:
        candidate = path.with_name(f"{stem}-{n}{suffix}")
        if not candidate.exists():
            return candidate
        n += 1


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_.+ " else "_" for c in name).strip(" .")
    return cleaned or "model"


@dataclass(frozen=True)
class ImportJobParams:
    """What an import job needs, as stored with the job (``JobKind.IMPORT``)."""

    paths: tuple[str, ...]
    mode: ImportMode

    def to_params(self) -> dict[str, Any]:
        return {"paths": list(self.paths), "mode": self.mode.value}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ImportJobParams:
        return cls(tuple(str(p) for p in params["paths"]), ImportMode(params["mode"]))
