"""``hangar token``: the Hugging Face token (needed for gated models), kept in the OS keyring, or where there is
none in a file only this user can read (with a warning)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["status", "set", "clear"], nargs="?", default="status")
    parser.add_argument("--stdin", action="store_true", help="read the token from standard input")


def run(app: AppContext, args: argparse.Namespace) -> int:
    from core.hub.client import HubClient

    store = app.secrets
    if args.action == "set":
        token = sys.stdin.readline() if args.stdin else getpass.getpass("Hugging Face token: ")
        status = store.set_token(token, HubClient())
    elif args.action == "clear":
        store.clear()
        status = store.status()
    else:
        status = store.status()
    if args.json:
        emit_json({"storage": status.storage, "user": status.user, "warning": status.warning})
        return 0
    where = {
        "none": "No token is set.",
        "keyring": "A token is stored in the system keyring.",
        "session": "A token is kept for this session only.",
        "file": "A token is stored in Hangar's secrets file (no keyring on this system).",
        "environment": "The token comes from the HF_TOKEN environment variable.",
    }[status.storage]
    print(where + (f" It belongs to {status.user}." if status.user else ""))
    if status.warning:
        print(f"Warning: {status.warning}", file=sys.stderr)
    return 0
