"""``hangar rm MODEL``: take a model out of the library. Linked and found models are only unlinked (their
files stay where they are) unless ``--delete-files`` is given."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ui.cli import emit_json
from ui.cli.import_cmd import human_size

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="the model's name or id (see `hangar ls`)")
    parser.add_argument(
        "--delete-files",
        action="store_true",
        default=None,
        help="also delete the files of a linked model or one found in another app's folder",
    )


def run(app: AppContext, args: argparse.Namespace) -> int:
    result = app.library.remove(args.model, delete_files=args.delete_files)
    if args.json:
        emit_json(
            {
                "removed": result.entry.to_json(),
                "files_deleted": result.files_deleted,
                "freed_bytes": result.freed_bytes,
            }
        )
    elif result.files_deleted:
        print(f"Removed {result.entry.name} and deleted its files ({human_size(result.freed_bytes)} freed).")
    else:
        print(f"Removed {result.entry.name} from the library; its files were left in {result.entry.root}.")
    return 0
