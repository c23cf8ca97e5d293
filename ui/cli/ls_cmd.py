"""``hangar ls``: the models in the library (``--json``: one object per model)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ui.cli import emit_json
from ui.cli.import_cmd import _size

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rescan", action="store_true", help="first look again in other apps' folders (Hugging Face, LM Studio, ...)"
    )


def run(app: AppContext, args: argparse.Namespace) -> int:
    from core.library.service import Library

    library = Library.for_app(app)
    if args.rescan:
        library.rescan()
    entries = library.list()
    if args.json:
        emit_json([e.to_json() for e in entries])
        return 0
    if not entries:
        print("No models yet. Add one with `hangar import PATH`.")
        return 0
    for e in entries:
        meta = e.metadata
        params = f"{meta.parameter_count / 1e9:.2f}B" if meta.parameter_count else "?"
        where = e.origin.value + (f" ({e.source})" if e.source else "")
        print(
            f"{e.name:<40} {e.format.value:<10} {meta.architecture or '?':<10} {params:>8} {meta.quant or '?':<8} "
            f"{_size(e.size_bytes):>10}  {where}"
        )
    return 0
