"""``hangar ls``: the models in the library (``--json``: one object per model)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.text import printable
from ui.cli import emit_json
from ui.cli.import_cmd import human_size

if TYPE_CHECKING:
    from core.app import AppContext
    from core.models.types import LibraryEntry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rescan", action="store_true", help="first look again in other apps' folders (Hugging Face, LM Studio, ...)"
    )


def run(app: AppContext, args: argparse.Namespace) -> int:
    library = app.library
    if args.rescan:
        report = library.rescan()
        for problem in report.problems:
            print(f"hangar: skipped: {printable(problem.message)}", file=sys.stderr)
    entries = library.list()
    if library.unreadable:
        ids = ", ".join(library.unreadable)
        print(
            f"hangar: warning: {len(library.unreadable)} library entries could not be read ({ids}); skipped.",
            file=sys.stderr,
        )
    if args.json:
        emit_json([_with_lineage(app, e.to_json(), e) for e in entries])
        return 0
    if not entries:
        print("No models yet. Add one with `hangar import PATH`.")
        return 0
    for e in entries:
        meta = e.metadata
        params = f"{meta.parameter_count / 1e9:.2f}B" if meta.parameter_count else "?"
        where = e.origin.value + (f" ({printable(e.source)})" if e.source else "")
        arch = printable(meta.architecture or "?")
        quant = printable(meta.quant or "?")
        does = f"  [{', '.join(e.capabilities)}]" if e.capabilities else ""
        print(
            f"{printable(e.name):<40} {e.format.value:<10} {arch:<10} {params:>8} {quant:<8} "
            f"{human_size(e.size_bytes):>10}  {where}{does}"
        )
    return 0


def _with_lineage(app: AppContext, data: dict[str, Any], entry: LibraryEntry) -> dict[str, Any]:
    """A model the Workshop made (quantize, convert) carries ``lineage``: its source, the operation and detail,
    and the source's library id when the source is in the library."""
    made = app.workshop.lineage([entry.root, *entry.files])
    if made is not None:
        source = app.library.find_by_path(Path(made.source_path))
        data["lineage"] = {**made.as_dict(), "source_id": source.id if source else None}
    return data
