"""``hangar remote add|ls|rm``: OpenAI-compatible servers to chat through (vLLM, SGLang, llama-server, Ollama,
LM Studio, mlx-lm's server, another Hangar's ``serve``). Chat with one as ``hangar chat NAME:MODEL`` (or
``hangar chat NAME`` for the server's default model)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from core.errors import UsageError
from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext
    from core.remote.service import RemoteStatus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    add = actions.add_parser("add", help="save a server after checking that it answers")
    add.add_argument("name", metavar="NAME", help="a short name, used as NAME:MODEL in chat")
    add.add_argument("url", metavar="URL", help="the server's address, e.g. http://gpu-box:8000 (with or without /v1)")
    add.add_argument(
        "--api-key-env", metavar="VAR", help="read the API key from this environment variable whenever it is used"
    )
    add.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for an answer (default 30)")
    add.add_argument("--no-check", action="store_true", help="save it even if it does not answer now")
    ls = actions.add_parser("ls", help="each server with its models and whether it answered")
    ls.add_argument("--timeout", type=float, default=None, help="seconds to wait for each server")
    rm = actions.add_parser("rm", help="forget a server (and its stored key)")
    rm.add_argument("name", metavar="NAME")
    for sub in (add, ls, rm):
        sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")


def run(app: AppContext, args: argparse.Namespace) -> int:
    remotes = app.remotes
    if args.action == "add":
        status = remotes.add(
            args.name, args.url, api_key_env=args.api_key_env, timeout=args.timeout, check=not args.no_check
        )
        if args.json:
            emit_json(_status_json(status))
        else:
            _print_status(status)
        return 0
    if args.action == "rm":
        server = remotes.remove(args.name)
        if args.json:
            emit_json({"removed": server.name})
        else:
            print(f"Removed {server.name} ({server.url}).")
        return 0
    if args.action in (None, "ls"):
        statuses = remotes.statuses(timeout=getattr(args, "timeout", None))
        if args.json:
            emit_json([_status_json(s) for s in statuses])
        elif not statuses:
            print("No remote servers yet. Add one with `hangar remote add NAME URL`.")
        for status in statuses if not args.json else ():
            _print_status(status)
        return 0
    raise UsageError(f"Unknown action {args.action!r}; use add, ls or rm.")


def _status_json(status: RemoteStatus) -> dict[str, object]:
    server, probe = status.server, status.probe
    return {
        "name": server.name,
        "url": server.url,
        "api_key_env": server.api_key_env,
        "has_key": bool(server.api_key_env or server.key_in_keyring),
        "answered": probe.answered,
        "kind": probe.kind,
        "models": list(probe.models),
        "default_model": probe.default_model,
        "error": probe.error,
        "seconds": round(probe.seconds, 3),
    }


def _print_status(status: RemoteStatus) -> None:
    server, probe = status.server, status.probe
    if not probe.answered:
        print(f"{server.name:<16} {server.url}  not answering: {probe.error}", file=sys.stdout)
        return
    models = ", ".join(probe.models[:8]) + (" …" if len(probe.models) > 8 else "")
    if not probe.models:
        models = f"(lists none; chat with {server.name} uses its default model)"
    print(f"{server.name:<16} {server.url}  {probe.kind}  {models}")
