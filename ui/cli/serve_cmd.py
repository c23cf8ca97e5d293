"""``hangar serve``: the library's models over a local OpenAI- and Anthropic-compatible API until Ctrl-C.

Listens on 127.0.0.1 unless told otherwise; any other address needs an API key (``--api-key``, ``$HANGAR_API_KEY``
or the key stored in the keyring from the Server page). With ``--json`` each line of stdout is one JSON object:
``started``, then one ``request`` per answered request, then ``stopped``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from dataclasses import asdict
from typing import TYPE_CHECKING

from core.errors import UsageError
from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext
    from core.serve.runner import RequestRecord


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=None, help="port (default 8765; 0 picks a free one)")
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="require this key (Authorization: Bearer KEY); also $HANGAR_API_KEY; default: the key in the keyring",
    )
    parser.add_argument(
        "--idle-unload", type=float, default=None, metavar="MIN", help="unload a model unused for MIN minutes"
    )


def run(app: AppContext, args: argparse.Namespace) -> int:
    if args.port is not None and not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a port number (0-65535).")
    if args.idle_unload is not None and args.idle_unload < 0:
        raise UsageError("--idle-unload cannot be negative.")
    service = app.serve
    if args.idle_unload is not None:
        service.config = service.config.replace(idle_unload_seconds=args.idle_unload * 60)
    key = args.api_key or os.environ.get("HANGAR_API_KEY") or None
    service.request_logged.connect(_json_line if args.json else _text_line)
    endpoint = service.start(host=args.host, port=args.port, api_key=key)
    if args.json:
        emit_json({"event": "started", "base_url": endpoint.base_url, "host": endpoint.host, "port": endpoint.port,
                   "auth": endpoint.auth})  # fmt: skip
    else:
        auth = "API key required" if endpoint.auth else "no API key: reachable from this machine only"
        print(f"Serving on {endpoint.base_url} ({auth}). Press Ctrl-C to stop.", flush=True)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5) and service.running:
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        service.stop()
    if args.json:
        emit_json({"event": "stopped"})
    else:
        print("Stopped.", file=sys.stderr)
    return 0


def _json_line(record: RequestRecord) -> None:
    emit_json({"event": "request", **asdict(record)})


def _text_line(record: RequestRecord) -> None:
    speed = f"{record.tokens_per_second:6.1f} tok/s" if record.tokens_per_second else " " * 12
    print(
        f"{record.status} {record.endpoint:<17} {record.model:<24} {record.prompt_tokens:>5} in "
        f"{record.completion_tokens:>5} out {speed} ttft {record.time_to_first_token_ms:5.0f} ms"
        + (f"  {record.error}" if record.error else ""),
        flush=True,
    )
