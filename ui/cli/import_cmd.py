"""``hangar import PATH...``: add model files or folders to the library (copy, move or link in place)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from core.models.types import ImportMode
from core.text import printable
from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a .gguf file, a split set part, or a folder")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--copy", dest="mode", action="store_const", const=ImportMode.COPY, help="copy (default)")
    mode.add_argument("--move", dest="mode", action="store_const", const=ImportMode.MOVE, help="move into Hangar")
    mode.add_argument(
        "--link", dest="mode", action="store_const", const=ImportMode.LINK, help="use the files where they are"
    )
    parser.set_defaults(mode=ImportMode.COPY)


def run(app: AppContext, args: argparse.Namespace) -> int:
    library = app.library
    report = library.import_paths([Path(p) for p in args.paths], args.mode, progress=_Progress(args.json))
    if args.json:
        emit_json(report.to_json())
    else:
        for entry in report.imported:
            size, where = human_size(entry.size_bytes), printable(str(entry.root))
            print(f"Imported {printable(entry.name)} ({entry.format}, {size}, {entry.origin}): {where}")
        for path, existing in report.duplicates:
            print(f"Already in the library as {printable(existing.name)}: {printable(str(path))}")
        for problem in report.problems:
            print(f"hangar: not imported: {printable(problem.message)}", file=sys.stderr)
    return 1 if report.problems else 0


class _Progress:
    """Copy progress on stderr, a few times a second, only for people at a terminal."""

    def __init__(self, quiet: bool) -> None:
        self._quiet = quiet or not sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if self._quiet or (now - self._last < 0.25 and done < total):
            return
        self._last = now
        print(f"\r{message}: {done * 100 // max(total, 1):3d}%", end="", file=sys.stderr, flush=True)
        if done >= total:
            print(file=sys.stderr)


def human_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "bytes" else f"{n} bytes"
        n /= 1000  # type: ignore[assignment]
    return f"{n} bytes"


def split_open_with(argv: list[str]) -> tuple[list[str], list[Path]]:
    """The OS "Open with Hangar" path: ``hangar [OPTIONS] model.gguf [folder ...]`` with no command.

    Returns (the options, the model paths) when every positional argument is an existing ``.gguf`` file or
    folder; otherwise (argv unchanged, []) so the normal command line handles it.
    """
    from ui.cli import COMMAND_NAMES

    commands = COMMAND_NAMES
    options: list[str] = []
    paths: list[Path] = []
    args = iter(argv)
    for arg in args:
        if arg == "--data-dir":
            options += [arg, next(args, "")]
        elif arg.startswith("-"):
            options.append(arg)
        elif arg in commands:
            return list(argv), []
        else:
            paths.append(Path(arg))
    if paths and all(p.exists() and (p.is_dir() or p.suffix.lower() == ".gguf") for p in paths):
        return options, paths
    return list(argv), []
