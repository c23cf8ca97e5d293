"""Child processes: how a spawned child is stopped (SIGINT, SIGTERM, then kill), how its exit is put in words, and
a one-shot supervisor for job children (training, export): start, relay events, pass on a cancel, report the end."""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable
from typing import Any

from core.jobs import CancelToken

logger = logging.getLogger(__name__)


def run_child(
    entry: Callable[[Any, Any, Any], None],
    request: object,
    token: CancelToken,
    on_event: Callable[[Any], None],
    *,
    is_final: Callable[[Any], bool],
    grace: float,
    name: str,
) -> tuple[Any | None, int | None]:
    """Run ``entry(request, events, cancel)`` in a spawned child until it sends a final event or ends.

    Returns (the final event or None, the child's exit code)."""
    ctx = multiprocessing.get_context("spawn")
    events = ctx.Queue()
    cancel = ctx.Event()
    process = ctx.Process(target=entry, args=(request, events, cancel), name=name, daemon=True)
    process.start()
    logger.info("%s: child %s started", name, process.pid)
    cancel_sent: float | None = None
    outcome: Any | None = None
    try:
        while outcome is None:
            if token.cancelled and cancel_sent is None:
                cancel.set()
                cancel_sent = time.monotonic()
            if cancel_sent is not None and time.monotonic() - cancel_sent > grace:
                logger.warning("%s did not stop in time; terminating it", name)
                break
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                if process.is_alive():
                    continue
                event = _drain_one(events)
                if event is None:
                    break
            on_event(event)
            if is_final(event):
                outcome = event
    finally:
        process.join(3.0)
        terminate(process, grace=1.0)
    return outcome, process.exitcode


def _drain_one(events: Any) -> Any | None:
    """An event the child sent just before it exited (the queue's feeder may still be flushing)."""
    try:
        event: Any = events.get(timeout=0.5)
        return event
    except (queue.Empty, EOFError, OSError):
        return None


def describe_exit(exitcode: int | None) -> str:
    """Turn a child's exit code into words a user can act on."""
    if exitcode is None:
        return "The engine stopped responding."
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == getattr(signal, "SIGKILL", 9):
            return (
                f"The engine was killed ({name}). This usually means the system ran out of memory: "
                "try fewer GPU layers, a shorter context or a smaller quant."
            )
        if -exitcode in (
            getattr(signal, "SIGSEGV", 11),
            getattr(signal, "SIGABRT", 6),
            getattr(signal, "SIGBUS", 7),
        ):
            return (
                f"The engine crashed ({name}) inside the native library. The model file may be damaged or use "
                "an architecture this engine build does not support."
            )
        return f"The engine stopped ({name})."
    return f"The engine exited unexpectedly with code {exitcode}."


def terminate(process: Any, grace: float = 2.0) -> None:
    """SIGINT, then SIGTERM, then SIGKILL — each given a moment to work."""
    if not process.is_alive():
        return
    steps: list[Callable[[], None]] = [process.terminate, process.kill]
    if hasattr(signal, "SIGINT") and process.pid:
        steps.insert(0, lambda: os.kill(process.pid, signal.SIGINT))
    for step in steps:
        try:
            step()
        except (OSError, ProcessLookupError):
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and process.is_alive():
            time.sleep(0.02)
        if not process.is_alive():
            break
    process.join(1.0)
