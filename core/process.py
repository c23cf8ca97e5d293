"""Child processes: the one supervisor of a spawned child (``ChildProcess``: queues, cancel event, a reader thread
that notices the exit, SIGINT → SIGTERM → kill), how a child's exit is put in words, and a one-shot runner for job
children (training, export) built on it.

The engine host (``core.engine.host``) keeps one long-lived ``ChildProcess`` per engine; fine-tune and export jobs
use ``run_child``. Either way a native abort, a segfault or an out-of-memory kill ends the child, never the app.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from core.jobs import CancelToken

logger = logging.getLogger(__name__)

#: ``entry(first, events, cancel)``: ``first`` is the request queue (``ChildProcess(..., payload=None)``) or the
#: one request of a job child.
ChildEntry = Callable[[Any, Any, Any], None]

#: Signals that mean the native code itself failed (as opposed to a kill from outside).
_NATIVE_CRASH_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGSEGV", "SIGABRT", "SIGBUS", "SIGILL", "SIGFPE") if hasattr(signal, name)
)
#: Windows reports an access violation or a failed assertion as an exit code, not a signal.
_WINDOWS_CRASH_CODES = (0xC0000005, 0xC000001D, 0xC0000409, 3)


class ChildProcess:
    """One spawned child running ``entry(first, events, cancel)``, watched by a reader thread.

    Every event the child puts on its queue is handed to ``on_event`` (on the reader thread); when the child ends,
    what it managed to send is drained first, then ``on_exit(exitcode, expected)`` is called once, where
    ``expected`` says whether ``stop``/``kill_quietly`` asked for the end."""

    def __init__(
        self,
        entry: ChildEntry,
        *,
        name: str,
        on_event: Callable[[Any], None],
        on_exit: Callable[[int | None, bool], None],
        payload: object = None,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.name = name
        self._on_event = on_event
        self._on_exit = on_exit
        self._requests: Any = ctx.Queue() if payload is None else None
        self._events: Any = ctx.Queue()
        self._cancel: Any = ctx.Event()
        first = self._requests if payload is None else payload
        self._process: Any = ctx.Process(target=entry, args=(first, self._events, self._cancel), name=name, daemon=True)
        self._expected = False
        self._reader = threading.Thread(target=self._read_loop, name=f"{name}-reader", daemon=True)

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._process.start()
        logger.info("%s: child %s started", self.name, self._process.pid)
        self._reader.start()

    @property
    def pid(self) -> int | None:
        pid: int | None = self._process.pid
        return pid

    @property
    def exitcode(self) -> int | None:
        code: int | None = self._process.exitcode
        return code

    def is_alive(self) -> bool:
        return bool(self._process.is_alive())

    def send(self, request: object) -> None:
        if self._requests is None:
            raise RuntimeError("this child takes no requests")
        self._requests.put(request)

    def request_cancel(self) -> None:
        """Ask the child to stop what it is doing (it checks the event between steps)."""
        self._cancel.set()

    def clear_cancel(self) -> None:
        self._cancel.clear()

    def stop(self, *, goodbye: object = None, timeout: float = 5.0, grace: float = 2.0) -> None:
        """End the child on purpose: ``goodbye`` on the request queue, a wait, then SIGINT → SIGTERM → kill."""
        self._expected = True
        self._cancel.set()
        if goodbye is not None and self._requests is not None:
            try:
                self._requests.put(goodbye)
            except (OSError, ValueError):
                pass
        if self._process.pid is not None:
            self._process.join(timeout)
            terminate(self._process, grace=grace)
        self.join_reader(2.0)

    def kill(self) -> None:
        """Kill the child at once (what an out-of-memory killer does); ``on_exit`` reports it as unexpected."""
        if self._process.pid and self._process.is_alive():
            os.kill(self._process.pid, getattr(signal, "SIGKILL", signal.SIGTERM))

    def join_reader(self, timeout: float) -> None:
        if self._reader.is_alive() and threading.current_thread() is not self._reader:
            self._reader.join(timeout)

    # -- the reader thread ----------------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        while True:
            try:
                event = self._events.get(timeout=0.05)
            except queue.Empty:
                if self._process.is_alive():
                    continue
                self._drain()
                break
            except (EOFError, OSError):
                break
            self._deliver(event)
        self._process.join(1.0)
        exitcode = self._process.exitcode
        if not self._expected:
            logger.warning("%s: child %s ended: %s", self.name, self._process.pid, describe_exit(exitcode))
        self._on_exit(exitcode, self._expected)

    def _drain(self) -> None:
        """Deliver what the child sent just before it ended (the queue's feeder may still be flushing)."""
        try:
            while True:
                self._deliver(self._events.get(timeout=0.1))
        except (queue.Empty, EOFError, OSError):
            pass

    def _deliver(self, event: object) -> None:
        try:
            self._on_event(event)
        except Exception:  # a listener's bug must not stop the reader, or every later event would be lost
            logger.exception("%s: an event listener failed on %r", self.name, type(event).__name__)


def run_child(
    entry: ChildEntry,
    request: object,
    token: CancelToken,
    on_event: Callable[[Any], None],
    *,
    is_final: Callable[[Any], bool],
    grace: float,
    name: str,
) -> tuple[Any | None, int | None]:
    """Run ``entry(request, events, cancel)`` in a spawned child until it sends a final event or ends.

    ``on_event`` runs on the calling thread. Returns (the final event or None, the child's exit code)."""
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
    child = ChildProcess(
        entry,
        name=name,
        payload=request,
        on_event=lambda event: inbox.put(("event", event)),
        on_exit=lambda code, _expected: inbox.put(("exit", code)),
    )
    child.start()
    cancel_sent: float | None = None
    outcome: Any | None = None
    try:
        while outcome is None:
            if token.cancelled and cancel_sent is None:
                child.request_cancel()
                cancel_sent = time.monotonic()
            if cancel_sent is not None and time.monotonic() - cancel_sent > grace:
                logger.warning("%s did not stop in time; terminating it", name)
                break
            try:
                kind, value = inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if kind == "exit":
                break
            on_event(value)
            if is_final(value):
                outcome = value
    finally:
        child.stop(timeout=3.0, grace=1.0)
    return outcome, child.exitcode


def is_native_crash(exitcode: int | None) -> bool:
    """Whether a child's exit code means the native code crashed (not a kill from outside, not a clean exit)."""
    if exitcode is None:
        return False
    if exitcode < 0:
        return -exitcode in _NATIVE_CRASH_SIGNALS
    return os.name == "nt" and exitcode in _WINDOWS_CRASH_CODES


def describe_exit(exitcode: int | None, doing: str = "") -> str:
    """Turn a child's exit code into words a user can act on. ``doing`` says what the child was doing
    ("while loading model.gguf"); the words say what is known and nothing more."""
    context = f" {doing}" if doing else ""
    if exitcode is None:
        return f"The engine stopped responding{context}."
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == getattr(signal, "SIGKILL", 9):
            return (
                f"The engine was killed ({name}){context}. This usually means the system ran out of memory: "
                "try fewer GPU layers, a shorter context or a smaller quant."
            )
        if is_native_crash(exitcode):
            return (
                f"The engine crashed ({name}) inside its native library{context}, on this machine's CPU "
                "with this model and these load options."
            )
        return f"The engine stopped ({name}){context}."
    if is_native_crash(exitcode):
        return f"The engine crashed (exit code {exitcode:#x}) inside its native library{context}."
    return f"The engine exited unexpectedly with code {exitcode}{context}."


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
