"""Parallel ranged download of one file: several connections fetch parts of it at once into one preallocated
``.part``, with a small durable record of the byte ranges already written (``<part>.ranges``).

A kill, a dropped connection, a pause or a restart loses at most the bytes in flight; nothing already recorded is
fetched again. Idle connections take half of the largest range still running, so all of them stay busy to the
end. The count of connections adapts (more while total throughput grows) unless the person fixed it, and a global
bandwidth limit paces every connection; both are read live. The SHA-256 is computed in file order while the
ranges arrive, so little is left to hash once the last byte lands.

A server that ignores Range (or answers 200 with another length, or sends a wrong Content-Range) on the first
request makes the caller fall back to one stream; nothing is retried without a bound.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx2
from huggingface_hub.utils import get_session

from core.downloads.limits import Bandwidth, TransferOptions
from core.downloads.plan import Plan, Segment, bytes_present, load_record, record_path, save_record
from core.downloads.transfer import (
    FileTarget,
    FreeSpace,
    Retryable,
    RetryPolicy,
    check_space,
    describe,
    fetch,
    http_error,
    raise_if_disk_full,
    retry_after,
    verify_digest,
)
from core.downloads.verify import Digest
from core.errors import CancelledError, HangarError, NetworkError
from core.jobs import CancelToken

logger = logging.getLogger(__name__)

#: How often the record of completed ranges is written: a killed process loses at most this much (the kernel keeps
#: the writes); every ``SYNC_EVERY`` the data is flushed to disk first, so a power cut loses at most that much
#: (flushing a fast link's quarter-gigabyte twice a second cost more than the download on loopback).
RECORD_EVERY = 0.5
SYNC_EVERY = 5.0
#: How often the adaptive controller looks at the total throughput.
ADAPT_EVERY = 1.0
#: The first connection alone for this long decides how to start: at or above ``FAST_SINGLE`` bytes/s one stream
#: already runs at line speed (more would only share the CPU: on loopback four were 40% slower), and the controller
#: tries more later; below it (a per-connection cap, as CDNs set) ``start_connections`` start at once.
PROBE_SECONDS = 0.3
FAST_SINGLE = 60e6


class RangesUnsupported(Exception):
    """The server does not serve byte ranges properly: the caller downloads in one stream instead."""


# -- the download -----------------------------------------------------------------------------------------------
class RangedDownload:
    def __init__(
        self,
        target: FileTarget,
        headers: Callable[[], dict[str, str]],
        token: CancelToken,
        on_bytes: Callable[[int], None],
        *,
        retry: RetryPolicy,
        options: TransferOptions,
        free_space: FreeSpace,
        reserve: int,
        on_error: Callable[[Exception], HangarError] | None,
    ) -> None:
        self.target, self.headers, self.token, self.on_bytes = target, headers, token, on_bytes
        self.retry, self.options, self.free_space, self.reserve = retry, options, free_space, reserve
        self.on_error = on_error
        self.bandwidth: Bandwidth = options.bandwidth or Bandwidth(lambda: 0.0)
        self._error: BaseException | None = None
        self._unsupported = False
        self._confirmed = threading.Event()
        self._responses: dict[int, Any] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # a connection ended: the orchestrator looks at once (the last one: done)
        self._failures = 0
        self._best = 0
        self._next_worker = 0
        self.want = 1
        self.reported = 0
        self.peak_connections = 0

    # The orchestrating loop runs on the job's thread; workers each own one connection.
    def run(self) -> None:
        target = self.target
        target.part.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target.part, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            done = load_record(target, fd)
            if os.fstat(fd).st_size < target.size:
                os.ftruncate(fd, target.size)  # sparse: the real space is taken as the ranges arrive
            self.fd = fd
            self.plan = Plan(target.size, self.options.piece_min, self.options.request_max, done)
            self._best = self.plan.done_bytes
            self.on_bytes(self.plan.done_bytes)
            self.reported = self.plan.done_bytes
            digest = Digest.for_file(target.sha256, target.blob_id, target.size)
            hasher = _OrderedHasher(fd, self.plan, digest)
            try:
                self._orchestrate()
                if not self._unsupported:
                    hasher.finish(self.token)
            finally:
                hasher.stop()
                self._stop.set()
                self._close_all()
                for thread in list(self._threads.values()):
                    thread.join(5)
                try:
                    # Flushed when the download stops short (a resume trusts it); a complete file is verified
                    # next and its record removed: flushing a quarter-gigabyte then cost more than the transfer.
                    save_record(target, fd, self.plan.snapshot(), sync=not self.plan.complete())
                except OSError as exc:
                    logger.warning("could not save the range record of %s: %s", target.name, exc)
            actual = digest.hexdigest()
        finally:
            os.close(fd)
        if self._unsupported:
            self.on_bytes(-self.reported)
            raise RangesUnsupported()
        try:
            verify_digest(target, digest.kind, digest.expected, actual)
        finally:
            record_path(target.part).unlink(missing_ok=True)

    def _orchestrate(self) -> None:
        plan = self.plan
        target = self.target
        fixed = self.options.connections()
        want = fixed if fixed > 0 else self.options.start_connections
        last_record = last_adapt = last_sync = time.monotonic()
        last_done = plan.done_bytes
        best_rate, settled = 0.0, fixed > 0
        best_want = want
        since_check = 0
        probe: tuple[float, int] | None = None  # (when, bytes) the first connection's rate is measured from
        decided = fixed > 0
        self._spawn(1)  # one connection first: it tells whether the server honours Range at all
        while not plan.complete():
            self._wake.wait(0.1)
            self._wake.clear()
            if self.token.cancelled:
                self._close_all()
                self.token.raise_if_cancelled()
            if self._error is not None:
                raise self._error
            if self._unsupported:
                return
            done_now = plan.done_bytes
            if done_now != self.reported:
                self.on_bytes(done_now - self.reported)
                since_check += done_now - self.reported
                self.reported = done_now
            if since_check >= self.options.check_every:
                since_check = 0
                check_space(target, plan.done_bytes, self.free_space, self.reserve)
            now = time.monotonic()
            fixed = self.options.connections()
            if fixed > 0:
                want, settled = fixed, True
            elif now - last_adapt >= ADAPT_EVERY and self._confirmed.is_set():
                rate = (done_now - last_done) / (now - last_adapt)
                if not settled and len(self._threads) >= want:
                    if rate > best_rate * 1.15 and want < self.options.max_connections:
                        best_rate, best_want = rate, want
                        want = min(self.options.max_connections, want + self.options.step)
                        logger.info("%s: %.1f MB/s; trying %d connections", target.name, rate / 1e6, want)
                    else:
                        # No real gain from the last step: go back to the count that gave the best rate (extra
                        # connections would cost the server, and the GUI's interpreter time, for nothing).
                        settled = True
                        want = best_want if rate <= best_rate * 1.15 else want
                        logger.info("%s: settled at %d connections (%.1f MB/s)", target.name, want, rate / 1e6)
                last_adapt, last_done = now, done_now
            if not decided and self._confirmed.is_set():
                if probe is None:
                    probe = (now, done_now)
                elif now - probe[0] >= PROBE_SECONDS:
                    decided = True
                    single = (done_now - probe[1]) / (now - probe[0])
                    if single >= FAST_SINGLE and not settled:
                        want, best_want = 1, 1  # the controller still tries more after ADAPT_EVERY
                        last_adapt, last_done = now, done_now
                        logger.info("%s: one stream runs %.0f MB/s; no more yet", target.name, single / 1e6)
            self.want = want if decided else 1
            alive = self._prune()
            if plan.work_left():
                self._spawn(self.want)
            elif alive == 0 and not plan.complete():
                raise NetworkError(f"Downloading {target.name} stopped with ranges missing.")
            if now - last_record >= RECORD_EVERY:
                sync = now - last_sync >= SYNC_EVERY
                last_record, last_sync = now, (now if sync else last_sync)
                save_record(target, self.fd, plan.snapshot(), sync=sync)
        self.on_bytes(plan.done_bytes - self.reported)
        self.reported = plan.done_bytes

    def _prune(self) -> int:
        with self._lock:
            self._threads = {w: t for w, t in self._threads.items() if t.is_alive()}
            return len(self._threads)

    def _excess(self, worker: int) -> bool:
        """Fewer connections are wanted now (the setting changed): this one leaves."""
        with self._lock:
            if len(self._threads) > self.want and worker in self._threads:
                del self._threads[worker]
                return True
            return False

    def _spawn(self, want: int) -> None:
        with self._lock:
            while len(self._threads) < want and not self._stop.is_set():
                worker = self._next_worker
                self._next_worker += 1
                thread = threading.Thread(target=self._work, args=(worker,), name=f"range-{worker}", daemon=True)
                self._threads[worker] = thread
                thread.start()
            self.peak_connections = max(self.peak_connections, len(self._threads))

    def _work(self, worker: int) -> None:
        try:
            while not self._stop.is_set() and not self.token.cancelled:
                if self._excess(worker):
                    return
                segment = self.plan.claim(worker)
                if segment is None:
                    return
                try:
                    self._fetch(worker, segment)
                except (httpx2.TransportError, Retryable, OSError) as exc:
                    if isinstance(exc, OSError) and not isinstance(exc, httpx2.TransportError):
                        raise_if_disk_full(exc, self.target)
                        raise
                    if self._stop.is_set() or self.token.cancelled:
                        return
                    self.plan.release(worker)
                    delay = self._failed(exc)
                    logger.info("range of %s failed (%s); retrying in %.2fs", self.target.name, describe(exc), delay)
                    if self.token.wait(delay):
                        return
                finally:
                    self.plan.release(worker)
        except RangesUnsupported:
            self._unsupported = True
        except httpx2.TooManyRedirects:
            self._fail(
                NetworkError(
                    f"The server of {self.target.name} keeps redirecting the download to another address.",
                    hint="Check your network (a proxy or captive portal?) and resume the download.",
                )
            )
        except (httpx2.TransportError, Retryable) as exc:
            if not (self._stop.is_set() or self.token.cancelled):
                self._fail(
                    NetworkError(
                        f"Downloading {self.target.name} failed ({describe(exc)}).",
                        hint="Resume the download to continue from there.",
                    )
                )
        except BaseException as exc:
            if not (self._stop.is_set() or self.token.cancelled) or not isinstance(exc, Exception):
                self._fail(exc)
        finally:
            with self._lock:
                self._responses.pop(worker, None)
            self._wake.set()

    def _failed(self, exc: Exception) -> float:
        """Count a failure unless the file gained bytes since the last one; give up after the usual attempts."""
        with self._lock:
            done = self.plan.done_bytes
            self._failures = 1 if done > self._best else self._failures + 1
            self._best = max(self._best, done)
            failures = self._failures
        if failures >= self.retry.attempts:
            self._fail(
                NetworkError(
                    f"Downloading {self.target.name} kept failing ({describe(exc)}); "
                    f"{done:,} of {self.target.size:,} bytes are kept.",
                    hint="Resume the download to continue from there.",
                )
            )
            return 0.0
        return max(self.retry.delay(failures), getattr(exc, "retry_after", 0.0))

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = exc
        self._stop.set()
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            responses = list(self._responses.values())
        for response in responses:
            try:
                response.close()
            except Exception:  # the worker may be closing it at the same moment
                pass

    def _fetch(self, worker: int, segment: Segment) -> None:
        """Fetch ``segment`` in requests of at most ``request_max`` bytes over this worker's kept-alive connection."""
        while segment.pos < segment.end and not self._stop.is_set():
            if self._excess(worker):
                return
            asked = self.plan.ask(segment, self.options.request_max)
            self._request(worker, segment, asked)

    def _request(self, worker: int, segment: Segment, asked: int) -> None:
        target = self.target
        request_headers = {
            **self.headers(),
            "Accept-Encoding": "identity",
            "Range": f"bytes={segment.pos}-{asked - 1}",
        }
        with get_session().stream("GET", target.url, headers=request_headers, timeout=30.0) as response:
            with self._lock:
                self._responses[worker] = response
            if self._stop.is_set():
                return
            status = response.status_code
            if status in (429, 500, 502, 503, 504):
                raise Retryable(f"HTTP {status}", retry_after=retry_after(response))
            if status >= 400 and status != 416:
                response.read()
                error = http_error(response)
                raise self.on_error(error) if self.on_error else NetworkError(f"The Hub answered {status}.")
            expected = f"bytes {segment.pos}-{asked - 1}/{target.size}"
            if status != 206 or response.headers.get("Content-Range", "") != expected:
                if not self._confirmed.is_set():
                    logger.info(
                        "%s: the server does not serve ranges (HTTP %d, %r); one stream instead",
                        target.name,
                        status,
                        response.headers.get("Content-Range"),
                    )
                    raise RangesUnsupported()
                raise Retryable(f"unexpected answer to a range request (HTTP {status})")
            self._confirmed.set()
            self._wake.set()  # the other connections may start now
            for data in response.iter_raw():
                allowed = self.plan.allow(segment, min(len(data), asked - segment.pos))
                if allowed:
                    self.bandwidth.take(allowed, self.token)
                    _write_at(self.fd, memoryview(data)[:allowed], segment.pos)
                    self.plan.advance(segment, allowed)
                if segment.pos >= min(asked, segment.end) or self._stop.is_set():
                    return  # this request is done (or the rest of the range went to another connection)
        if segment.pos < min(asked, segment.end):
            raise Retryable("the connection ended early")


def _write_at(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


class _OrderedHasher:
    """Hashes the part in file order as its prefix completes, on its own thread (hashlib releases the GIL)."""

    BLOCK = 8 << 20

    def __init__(self, fd: int, plan: Plan, digest: Digest) -> None:
        self.fd, self.plan, self.digest = fd, plan, digest
        self.hashed = 0
        self._stopped = threading.Event()
        self._kick = threading.Event()  # the download is complete: hash the rest now, not at the next look
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="range-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopped.is_set() and self.hashed < self.plan.size:
                limit = self.plan.prefix()
                # Large blocks, looked for a few times a second: a wake-up per network read would compete with
                # the GUI thread for the interpreter.
                if limit - self.hashed < self.BLOCK and limit < self.plan.size:
                    self._kick.wait(0.05)
                    continue
                self._hash_to(limit)
        except BaseException as exc:
            self._error = exc

    def _hash_to(self, limit: int) -> None:
        while self.hashed < limit and not self._stopped.is_set():
            data = os.pread(self.fd, min(8 << 20, limit - self.hashed), self.hashed)
            if not data:
                raise OSError(f"short read at {self.hashed}")
            self.digest.update(data)
            self.hashed += len(data)

    def finish(self, token: CancelToken) -> None:
        """Wait until the whole file is hashed (the download is complete)."""
        self._kick.set()
        while self._thread.is_alive() and self.hashed < self.plan.size:
            if token.cancelled:
                raise CancelledError("Paused." if token.pause_requested else "Cancelled.")
            self._thread.join(0.01)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        self._stopped.set()
        self._kick.set()
        self._thread.join(5)


def fetch_file(
    target: FileTarget,
    headers: Callable[[], dict[str, str]],
    token: CancelToken,
    on_bytes: Callable[[int], None],
    *,
    retry: RetryPolicy,
    options: TransferOptions,
    free_space: FreeSpace,
    reserve: int,
    on_error: Callable[[Exception], HangarError] | None,
    origin: tuple[str, str, bool] | None = None,
) -> None:
    """Download and verify one file: in parallel ranges when it is large enough and the server allows, else (or
    when the server turns out not to serve ranges) in one stream. ``origin`` (repo id, Hub endpoint, whether a
    token is sent) lets a child process put the Hub's errors in words; with it and ``options.in_child``, the ranges
    are fetched in a child process."""
    # Ranges already begun go on as ranges, holes and all.
    ranged = (target.size >= options.split_min and options.connections() != 1) or record_path(target.part).exists()
    if ranged and options.in_child and origin is not None and target.size >= options.child_min:
        from core.downloads.child import run_ranged_in_child

        try:
            run_ranged_in_child(
                target,
                headers,
                token,
                on_bytes,
                retry=retry,
                options=options,
                reserve=reserve,
                repo_id=origin[0],
                endpoint=origin[1],
                had_token=origin[2],
            )
            return
        except RangesUnsupported:
            target.part.unlink(missing_ok=True)
            record_path(target.part).unlink(missing_ok=True)
            ranged = False
    if ranged:
        download = RangedDownload(
            target,
            headers,
            token,
            on_bytes,
            retry=retry,
            options=options,
            free_space=free_space,
            reserve=reserve,
            on_error=on_error,
        )
        try:
            download.run()
            return
        except RangesUnsupported:
            target.part.unlink(missing_ok=True)  # the server cannot resume what the ranges left anyway
            record_path(target.part).unlink(missing_ok=True)
    fetch(
        target,
        headers,
        token,
        on_bytes,
        retry=retry,
        free_space=free_space,
        reserve=reserve,
        on_error=on_error,
        check_every=options.check_every,
    )


__all__ = ["RangedDownload", "RangesUnsupported", "bytes_present", "fetch_file", "record_path"]
