"""What the person sets for downloads, read live: how many connections per file, and a global bandwidth limit
shared by every connection of every download."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from core.downloads.transfer import DISK_CHECK_EVERY
from core.jobs import CancelToken

MB = 1_000_000


class Bandwidth:
    """A token bucket over all connections. ``rate`` is read on every call (bytes per second, 0: no limit), so a
    changed setting applies at once. A connection that takes more than its share waits out the debt."""

    BURST = 0.1  # seconds of credit a quiet bucket may hold

    def __init__(self, rate: Callable[[], float]) -> None:
        self._rate = rate
        self._lock = threading.Lock()
        self._credit = 0.0
        self._last = time.monotonic()
        self._users = 0

    @property
    def rate(self) -> float:
        return max(0.0, float(self._rate()))

    @contextlib.contextmanager
    def user(self) -> Iterator[None]:
        """A download in a child process, which paces itself at ``share()`` of the limit while it runs."""
        with self._lock:
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1

    def share(self) -> float:
        """Each child download's part of the global limit (0: no limit)."""
        with self._lock:
            return self.rate / max(1, self._users)

    def take(self, count: int, token: CancelToken | None = None) -> None:
        rate = self._rate()
        if rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._credit = min(rate * self.BURST, self._credit + (now - self._last) * rate) - count
            self._last = now
            debt = -self._credit
        if debt > 0:
            wait = min(debt / rate, 5.0)
            if token is not None:
                token.wait(wait)
            else:
                time.sleep(wait)


@dataclass(frozen=True)
class TransferOptions:
    #: Connections per file: 0 adapts (from ``start_connections`` up to ``max_connections`` while throughput
    #: grows), 1 is one stream, more is that many. Read live.
    connections: Callable[[], int] = lambda: 0
    bandwidth: Bandwidth | None = None
    start_connections: int = 4
    max_connections: int = 16
    #: Connections added at each step while throughput grows.
    step: int = 2
    #: Files smaller than this go in one stream (a few requests' overhead is not worth it).
    split_min: int = 16 * 1024**2
    #: The smallest range an idle connection takes over from a busy one.
    piece_min: int = 2 * 1024**2
    #: The most one request asks for; a connection asks again (kept alive) for the rest of its range, and a busy
    #: range is only ever split past what was asked, so no byte is sent twice.
    request_max: int = 32 * 1024**2
    check_every: int = DISK_CHECK_EVERY
    #: Run ranged downloads in a child process (the app's settings turn it on; see ``from_settings``) when the
    #: file is at least ``child_min`` bytes: the child costs ~0.5-0.8 s to start, nothing against a long download
    #: that would otherwise hold the window's interpreter, too much for a file done in a second.
    in_child: bool = False
    child_min: int = 1024**3


def from_settings(settings: Callable[[], object]) -> TransferOptions:
    """Options that follow the live settings (``download_connections``, ``download_limit_mbps``)."""

    def connections() -> int:
        return int(getattr(settings(), "download_connections", 0) or 0)

    def rate() -> float:
        return float(getattr(settings(), "download_limit_mbps", 0) or 0) * MB

    # Ranged downloads run in a child process (core.downloads.child): every network read of every connection
    # takes the interpreter, and with 8-16 connections in the window's own process the GUI thread waits behind
    # them. With the local Hub moved out of the measuring process (bench/gui_lag.py), 8 uncapped connections
    # stalled the window 94-303 ms in process and 58-189 ms from a child, run for run (see the README).
    return TransferOptions(connections=connections, bandwidth=Bandwidth(rate), in_child=True)


__all__ = ["Bandwidth", "TransferOptions", "from_settings"]
