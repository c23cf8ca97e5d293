"""One training or export child process, supervised from a job thread: start it, relay its events, pass on a
cancel (cooperatively first, then SIGINT/SIGTERM/kill after a grace period) and report how it ended."""

from __future__ import annotations

import logging
import multiprocessing
import queue
import time
from collections.abc import Callable
from typing import Any

from core.engine import _terminate
from core.finetune import ExportFinished, TokenStatsReady, TrainingEvent, TrainingFailed, TrainingFinished
from core.jobs import CancelToken

logger = logging.getLogger(__name__)

FINAL_EVENTS = (TrainingFinished, TrainingFailed, ExportFinished, TokenStatsReady)


def run_child(
    entry: Callable[[Any, Any, Any], None],
    request: object,
    token: CancelToken,
    on_event: Callable[[TrainingEvent], None],
    *,
    grace: float,
    name: str,
) -> tuple[TrainingEvent | None, int | None]:
    """Run ``entry(request, events, cancel)`` in a spawned child until it sends a final event or ends.

    Returns (the final event or None, the child's exit code)."""
    ctx = multiprocessing.get_context("spawn")
    events = ctx.Queue()
    cancel = ctx.Event()
    process = ctx.Process(target=entry, args=(request, events, cancel), name=name, daemon=True)
    process.start()
    logger.info("%s: child %s started", name, process.pid)
    cancel_sent: float | None = None
    outcome: TrainingEvent | None = None
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
            if isinstance(event, FINAL_EVENTS):
                outcome = event
    finally:
        process.join(3.0)
        _terminate(process, grace=1.0)
    return outcome, process.exitcode


def _drain_one(events: Any) -> TrainingEvent | None:
    """An event the child sent just before it exited (the queue's feeder may still be flushing)."""
    try:
        event: TrainingEvent = events.get(timeout=0.5)
        return event
    except (queue.Empty, EOFError, OSError):
        return None
