"""A ranged download in a child process, so its connections never compete with the window's thread for the
interpreter: with 4-16 connections in the app's own process, each network read takes the interpreter back from
the GUI (a "convoy"), and the window stalls for 100-300 ms at a time; in a child it stays smooth.

The parent relays progress, passes live settings on through shared values (connections, this download's share of
the global bandwidth limit), and turns the child's last word into the same results and errors as in-process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from core.downloads.fs import FileLock
from core.downloads.limits import Bandwidth, TransferOptions
from core.downloads.transfer import DEFAULT_RESERVE, FileTarget, RetryPolicy
from core.errors import CancelledError, HangarError, NetworkError
from core.jobs import CancelToken
from core.process import describe_exit, run_child

logger = logging.getLogger(__name__)

#: How long a child gets to save its range record and stop after a pause or cancel.
GRACE = 10.0


@dataclass
class ChildRequest:
    target: FileTarget
    headers: dict[str, str]
    retry: RetryPolicy
    options: TransferOptions  # its callables are replaced by the shared values below
    reserve: int
    repo_id: str
    endpoint: str
    had_token: bool
    connections: Any  # multiprocessing Value('i')
    limit: Any  # multiprocessing Value('d'), bytes per second for this download


def run_ranged_in_child(
    target: FileTarget,
    headers: Callable[[], dict[str, str]],
    token: CancelToken,
    on_bytes: Callable[[int], None],
    *,
    retry: RetryPolicy,
    options: TransferOptions,
    reserve: int = DEFAULT_RESERVE,
    repo_id: str,
    endpoint: str,
    had_token: bool,
) -> None:
    """Like ``RangedDownload.run`` (same errors, ``RangesUnsupported`` included), in a spawned child."""
    from core.downloads.ranges import RangesUnsupported

    _wait_for_orphans(target, token)
    ctx = multiprocessing.get_context("spawn")
    bandwidth = options.bandwidth or Bandwidth(lambda: 0.0)
    connections = ctx.Value("i", max(0, options.connections()), lock=False)
    limit = ctx.Value("d", 0.0, lock=False)
    request = ChildRequest(
        target=target,
        headers=headers(),
        retry=retry,
        options=replace(options, connections=_zero, bandwidth=None),
        reserve=reserve,
        repo_id=repo_id,
        endpoint=endpoint,
        had_token=had_token,
        connections=connections,
        limit=limit,
    )
    stop = threading.Event()

    def follow_settings() -> None:
        while not stop.wait(0.2):
            connections.value = max(0, options.connections())
            limit.value = bandwidth.share()

    with bandwidth.user():
        limit.value = bandwidth.share()
        follower = threading.Thread(target=follow_settings, name="download-settings", daemon=True)
        follower.start()

        def on_event(event: Any) -> None:
            if event[0] == "bytes":
                on_bytes(int(event[1]))

        try:
            outcome, exitcode = run_child(
                child_main,
                request,
                token,
                on_event,
                is_final=lambda event: event[0] != "bytes",
                grace=GRACE,
                name=f"download {target.name}",
            )
        finally:
            stop.set()
            follower.join(1)
    if outcome is None:
        if token.cancelled:
            token.raise_if_cancelled()
        raise NetworkError(
            f"The download process for {target.name} ended unexpectedly ({describe_exit(exitcode)}).",
            hint="Resume the download: the ranges already fetched are kept.",
        )
    kind = outcome[0]
    if kind == "done":
        return
    if kind == "unsupported":
        raise RangesUnsupported()
    if kind == "stopped":
        token.raise_if_cancelled()
        raise NetworkError(f"The download of {target.name} stopped.", hint="Resume it.")
    _, code, message, hint = outcome
    raise _error_class(code)(message, hint=hint or None)


def _zero() -> int:
    return 0


def _transfer_lock(target: FileTarget) -> FileLock:
    """Held by the child while it writes the part: a child left behind by a killed parent (it notices within a
    tenth of a second and exits) must be gone before another one starts."""
    return FileLock(target.part.parent / ".transfer")


def _wait_for_orphans(target: FileTarget, token: CancelToken) -> None:
    lock = _transfer_lock(target)
    target.part.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + 10
    while not lock.acquire():
        if time.monotonic() > deadline:
            raise NetworkError(
                f"Another process is still writing {target.name}.", hint="Wait a moment, then resume the download."
            )
        if token.wait(0.05):
            token.raise_if_cancelled()
    lock.release()


def _exit_with_parent() -> None:
    """A child outlives a parent killed with SIGKILL; it must not keep writing the part: it exits at once."""
    parent = os.getppid()
    while True:
        time.sleep(0.05)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)  # now: no clean-up, no last record written
            return


def _error_class(code: str) -> type[HangarError]:
    from core import errors

    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, HangarError) and value.code == code:
            return value
    return HangarError


def child_main(request: ChildRequest, events: Any, cancel: Any) -> None:
    """The child: run the ranged download, report bytes, and end with one final event."""
    from core.downloads.ranges import RangedDownload, RangesUnsupported
    from core.downloads.transfer import disk_free
    from core.hub.client import translate_error

    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()
    lock = _transfer_lock(request.target)
    deadline = time.monotonic() + 10
    while not lock.acquire():  # the parent checked it was free: only a racing orphan could hold it, briefly
        if time.monotonic() > deadline:
            events.put(("error", "network", f"Another process is still writing {request.target.name}.", ""))
            return
        time.sleep(0.05)
    token = CancelToken()

    def watch_cancel() -> None:
        # Polled, never waited on: a process that ends while blocked in a multiprocessing Event's wait leaves the
        # Event's condition expecting it, and the parent's later set() would wait for it forever.
        while not cancel.is_set():
            time.sleep(0.05)
        token.cancel(pause=True)

    threading.Thread(target=watch_cancel, name="cancel", daemon=True).start()
    options = replace(
        request.options,
        connections=lambda: int(request.connections.value),
        bandwidth=Bandwidth(lambda: float(request.limit.value)),
    )
    download = RangedDownload(
        request.target,
        lambda: request.headers,
        token,
        lambda count: events.put(("bytes", count)),
        retry=request.retry,
        options=options,
        free_space=disk_free,
        reserve=request.reserve,
        on_error=lambda exc: translate_error(
            exc, request.repo_id, endpoint=request.endpoint, had_token=request.had_token
        ),
    )
    try:
        download.run()
        events.put(("done",))
    except RangesUnsupported:
        events.put(("unsupported",))
    except CancelledError:
        events.put(("stopped",))
    except HangarError as exc:
        events.put(("error", exc.code, exc.message, exc.hint or ""))
    except Exception as exc:
        logging.getLogger(__name__).exception("download child failed")
        events.put(("error", "", f"Unexpected error in the download process: {type(exc).__name__}: {exc}", ""))


__all__ = ["child_main", "run_ranged_in_child"]
