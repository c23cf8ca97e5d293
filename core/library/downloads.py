"""Finished downloads enter the library (origin ``downloaded``, with their repository), whoever started them.

``core.app.AppContext`` wires this once, when it builds the download manager: ``follow_downloads`` indexes every
download as it finishes, and ``index_all`` (run by the window in the background) what finished while no Hangar was
following. Indexing is idempotent, so a download seen twice is still one entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from core.downloads.items import DownloadItem, DownloadState
from core.errors import HangarError
from core.models.types import LibraryEntry

if TYPE_CHECKING:
    from core.downloads.manager import DownloadManager
    from core.library.service import Library

logger = logging.getLogger(__name__)


def index_download(library: Library, item: DownloadItem) -> list[LibraryEntry]:
    """Add the models of one finished download: each GGUF file (a split set once) or the MLX folder."""
    if item.state != DownloadState.DONE:
        return []
    paths = [p for p in item.paths if p.exists()]
    ggufs = [p for p in paths if p.suffix.lower() == ".gguf" and not p.name.lower().startswith("mmproj")]
    groups = [[p] for p in ggufs] if ggufs else ([paths] if paths else [])
    entries: list[LibraryEntry] = []
    for group in groups:
        try:
            entry = library.add_downloaded(group, repo_id=item.repo_id)
        except HangarError as exc:
            logger.warning("the download %s could not be added to the library: %s", item.label, exc)
            continue
        if entry not in entries:
            entries.append(entry)
    return entries


def follow_downloads(library: Library, manager: DownloadManager, *, index_finished: bool = True) -> Callable[[], None]:
    """Index every download as it finishes (and, with ``index_finished``, those already finished; the app leaves
    that part to ``AppContext.index_finished_downloads``, off the GUI thread). Returns a function that stops."""
    disconnect = manager.changed.connect(lambda item: index_download(library, item))
    if index_finished:
        index_all(library, manager)
    return disconnect


def index_all(library: Library, manager: DownloadManager) -> int:
    """Index every finished download not in the library yet; returns how many entries that touched."""
    return sum(len(index_download(library, item)) for item in manager.list())
