"""``hangar worker``: run a llama.cpp RPC worker on this machine, so that another machine's Hangar can place part
of a model here (``hangar chat MODEL --rpc THIS_HOST:PORT``). Runs until Ctrl-C.

RPC has no authentication: the worker listens on 127.0.0.1 unless ``--host`` says otherwise, and then warns."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING

from core.errors import UsageError
from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from core.remote.rpc import DEFAULT_PORT

    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument(
        "--cache", action="store_true", help="keep received weights in a local cache, so the next load is faster"
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the worker's computations")


def run(app: AppContext, args: argparse.Namespace) -> int:
    from core.remote.rpc import (
        ClientConnected,
        ClientDisconnected,
        WorkerEvent,
        WorkerLog,
        WorkerRequest,
        WorkerStopped,
        exposure_warning,
    )

    if not 0 < args.port < 65536:
        raise UsageError("--port must be between 1 and 65535.")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1.")
    cache_dir = str(app.paths.cache_dir / "rpc") if args.cache else None
    worker = app.new_rpc_worker(WorkerRequest(args.host, args.port, cache_dir, args.threads))
    warning = exposure_warning(args.host, args.port)

    def report(event: WorkerEvent) -> None:
        if args.json:
            if isinstance(event, (ClientConnected, ClientDisconnected, WorkerStopped)):
                emit_json({"event": type(event).__name__, **{k: v for k, v in vars(event).items()}})
            return
        if isinstance(event, ClientConnected):
            print(f"connected: {event.peer or 'a client'}", file=sys.stderr, flush=True)
        elif isinstance(event, ClientDisconnected):
            print(f"disconnected: {event.peer or 'a client'}", file=sys.stderr, flush=True)
        elif isinstance(event, WorkerLog):
            print(f"  {event.line}", file=sys.stderr, flush=True)

    worker.events.connect(report)
    started = worker.start()
    if args.json:
        emit_json(
            {
                "event": "WorkerStarted",
                "endpoint": started.endpoint,
                "devices": list(started.devices),
                "cache_dir": cache_dir,
                "warning": warning,
            }
        )
    else:
        print(f"RPC worker listening on {started.endpoint}", file=sys.stderr)
        for device in started.devices:
            print(f"  device: {device}", file=sys.stderr)
        print(f"Use it from another machine: hangar chat MODEL --rpc {started.endpoint}", file=sys.stderr)
        if warning:
            print(f"WARNING: {warning}", file=sys.stderr)
        print("Ctrl-C stops the worker.", file=sys.stderr, flush=True)

    def stop(_signum: int, _frame: object) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    try:
        worker.wait()
    except KeyboardInterrupt:
        worker.stop()
    return 0
