"""Moving the models folder: everything Hangar keeps there (downloads and imported copies) goes to the new
folder and the library follows. Models linked in place or found in other apps' folders stay where they are.

Each model moves as a whole (a rename on the same disk; a copy, then delete, across disks), so a cancel or an
error leaves every model complete in one of the two places and the library pointing at it. Downloads queued or
paused before the move install into the new folder: the download manager reads the folder from Settings when it
installs (``AppContext.models_dir``). ``AppContext.move_models`` runs the whole move.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import DiskFullError, UsageError
from core.jobs import CancelToken
from core.models.types import LibraryEntry
from core.settings import SettingsService

if TYPE_CHECKING:
    from core.library.service import Library

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MovePlan:
    source: Path
    target: Path
    entries: tuple[LibraryEntry, ...]
    total_bytes: int
    same_disk: bool


@dataclass(frozen=True)
class MoveReport:
    moved: tuple[str, ...]
    bytes_moved: int
    target: Path


def plan_move(library: Library, new_dir: Path) -> MovePlan:
    """What a move to ``new_dir`` would do; refuses targets that cannot work, with the reason."""
    source = library.models_dir.expanduser().resolve()
    target = Path(new_dir).expanduser().resolve()
    if target == source:
        raise UsageError("That is already the models folder.")
    if target.is_relative_to(source) or source.is_relative_to(target):
        raise UsageError(f"The new models folder cannot be inside the old one, or contain it ({target}).")
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} is a file, not a folder.")
    entries = tuple(e for e in library.list() if e.root.resolve().is_relative_to(source))
    total = sum(e.size_bytes for e in entries)
    probe = target if target.exists() else _existing_parent(target)
    same_disk = source.exists() and os.stat(source).st_dev == os.stat(probe).st_dev
    if not same_disk and entries:
        free = shutil.disk_usage(probe).free
        if free < total + 256 * 2**20:
            raise DiskFullError(
                f"The new folder's disk has {free / 1e9:.1f} GB free; the models need {total / 1e9:.1f} GB.",
                hint="Free some space there or choose another folder.",
            )
    return MovePlan(source, target, entries, total, same_disk)


def move_models_folder(
    library: Library,
    plan: MovePlan,
    settings: SettingsService,
    *,
    progress: Callable[[float, str], None] | None = None,
    token: CancelToken | None = None,
) -> MoveReport:
    """Carry out ``plan``; the settings point at the new folder once everything is there."""
    plan.target.mkdir(parents=True, exist_ok=True)
    moved: list[str] = []
    done_bytes = 0
    for entry in plan.entries:
        if token is not None:
            token.raise_if_cancelled()
        if progress:
            progress(done_bytes / plan.total_bytes if plan.total_bytes else 0.0, f"Moving {entry.name}…")
        top = _top_level(entry, plan.source)
        destination = plan.target / top.relative_to(plan.source)
        if top.exists():
            if destination.exists():
                raise UsageError(f"{destination} already exists in the new folder; move or rename it first.")
            destination.parent.mkdir(parents=True, exist_ok=True)
            _move_tree(top, destination, same_disk=plan.same_disk)
        library.relocate(plan.source, plan.target, top)
        moved.append(entry.name)
        done_bytes += entry.size_bytes
    settings.update(models_dir=str(plan.target))
    library.changed.emit()
    if progress:
        progress(1.0, f"Moved {len(moved)} model{'s' if len(moved) != 1 else ''}.")
    return MoveReport(tuple(moved), done_bytes, plan.target)


def _existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def _top_level(entry: LibraryEntry, source: Path) -> Path:
    """The folder (or file) directly under the models folder that holds ``entry``: it moves as one piece."""
    relative = entry.root.resolve().relative_to(source)
    return source / relative.parts[0]


def _move_tree(source: Path, destination: Path, *, same_disk: bool) -> None:
    if same_disk:
        os.replace(source, destination)
        return
    # Across disks: copy to a temporary name, then rename, then delete the original. An interruption leaves the
    # original intact and at most a ".moving" leftover in the new folder.
    staging = destination.with_name(destination.name + ".moving")
    if source.is_dir():
        shutil.copytree(source, staging, symlinks=True)
    else:
        shutil.copy2(source, staging)
    os.replace(staging, destination)
    if source.is_dir():
        shutil.rmtree(source)
    else:
        source.unlink()
