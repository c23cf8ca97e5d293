"""``hangar pull REPO``: download a model (one quant, one file, or an MLX repo), verified, resumable.

Progress goes to stderr. Running the same pull again after an interruption (Ctrl-C, a kill, a crash) continues
from the bytes already on disk.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import TYPE_CHECKING

from core.downloads.manager import DownloadItem, DownloadState, failure_of
from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext
    from core.models.types import LibraryEntry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repo", help="the repository, e.g. org/Model-GGUF (or REPO:FILE, as `estimate` takes it)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--file", help="the file to download (a split set comes whole)")
    choice.add_argument("--quant", help="the quantisation to download, e.g. Q4_K_M")


def run(app: AppContext, args: argparse.Namespace) -> int:
    manager = app.downloads  # a finished download enters the library there (core.library.downloads)
    finished = threading.Event()
    printer = _Progress()

    def changed(item: DownloadItem) -> None:
        if item.id == current.get("id"):
            printer.show(item)
            if item.state not in (DownloadState.QUEUED, DownloadState.RUNNING):
                finished.set()

    current: dict[str, str] = {}
    if ":" in args.repo and not args.file and not args.quant:
        args.repo, _, args.file = args.repo.partition(":")
    manager.changed.connect(changed)
    item = manager.enqueue(args.repo, file=args.file, quant=args.quant)
    current["id"] = item.id
    try:
        while manager.get(item.id).state in (DownloadState.QUEUED, DownloadState.RUNNING):
            finished.wait(0.5)
    except KeyboardInterrupt:
        manager.pause(item.id)
        manager.wait(item.id, 10)
        print("\nPaused; run the same command again to continue.", file=sys.stderr)
        raise
    item = manager.get(item.id)
    printer.done()
    if item.state != DownloadState.DONE:
        raise failure_of(item)
    entries: list[LibraryEntry] = []
    for path in item.paths:
        entry = app.library.find_by_path(path)
        if entry is not None and entry.id not in {e.id for e in entries}:
            entries.append(entry)
    if args.json:
        emit_json(
            {
                "id": item.id,
                "repo_id": item.repo_id,
                "revision": item.revision,
                "state": item.state,
                "bytes": item.total,
                "paths": [str(p) for p in item.paths],
                "library": [entry.name for entry in entries],
            }
        )
    else:
        for path in item.paths:
            print(path)
    return 0


class _Progress:
    def __init__(self) -> None:
        self._last = 0.0
        self._tty = sys.stderr.isatty()
        self._shown = False

    def show(self, item: DownloadItem) -> None:
        now = time.monotonic()
        if now - self._last < 0.5 and item.state == DownloadState.RUNNING:
            return
        self._last = now
        eta = f"ETA {int(item.eta_seconds) // 60}:{int(item.eta_seconds) % 60:02d}" if item.eta_seconds else ""
        line = (
            f"{item.label}  {item.progress * 100:5.1f}%  {item.done / 1e6:,.1f}/{item.total / 1e6:,.1f} MB  "
            f"{item.speed / 1e6:.1f} MB/s  {eta}  {item.state}"
        )
        print(("\r" + line) if self._tty else line, end="" if self._tty else "\n", file=sys.stderr, flush=True)
        self._shown = True

    def done(self) -> None:
        if self._tty and self._shown:
            print(file=sys.stderr)
