"""``hangar move-models DIR``: move the models folder, with everything Hangar keeps there."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="the new models folder (created if missing)")


def run(app: AppContext, args: argparse.Namespace) -> int:
    def progress(fraction: float, message: str) -> None:
        if not args.json:
            print(f"{fraction * 100:5.1f}%  {message}", file=sys.stderr)

    report = app.move_models(Path(args.folder), progress=progress)
    if args.json:
        emit_json({"models_dir": str(report.target), "moved": list(report.moved), "bytes": report.bytes_moved})
    else:
        print(f"Models folder is now {report.target} ({len(report.moved)} moved).")
    return 0
