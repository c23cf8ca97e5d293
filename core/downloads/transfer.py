"""The transfer loop for one file: HTTP Range continuation into a ``.part`` file, retry with backoff on resets and
5xx, free-space watching, and a running checksum (SHA-256 for LFS files, the git blob id for small ones).

huggingface_hub's own download does not verify what it received, resumes only within one call and does not
retry a reset or a 503, so Hangar owns this loop; the library still provides the session and headers.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import queue
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub.utils import get_session

from core.errors import CancelledError, DiskFullError, HangarError, IntegrityError, NetworkError
from core.jobs import CancelToken

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
FreeSpace = Callable[[Path], int]
#: Keep this much free on the disk: a download never fills it to the last byte.
DEFAULT_RESERVE = 64 * 1024**2
DISK_CHECK_EVERY = 32 * 1024**2


def disk_free(path: Path) -> int:
    """Free bytes on the filesystem holding ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return shutil.disk_usage(probe).free


@dataclass(frozen=True)
class RetryPolicy:
    #: Consecutive failed attempts (without new bytes) before giving up.
    attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** max(0, attempt - 1))


@dataclass(frozen=True)
class FileTarget:
    url: str
    part: Path
    size: int
    #: Shown in messages: the file's name in its repo.
    name: str
    sha256: str | None = None
    blob_id: str | None = None


class _Checksum:
    """Hashes on a helper thread (hashlib releases the GIL) so checksumming overlaps the network."""

    def __init__(self, target: FileTarget) -> None:
        if target.sha256:
            self.kind, self.expected = "SHA-256", target.sha256.lower()
            self._hash = hashlib.sha256()
        elif target.blob_id:
            self.kind, self.expected = "git blob id", target.blob_id.lower()
            self._hash = hashlib.sha1(b"blob %d\0" % target.size)
        else:
            self.kind, self.expected = "", ""
            self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=64)
        self._thread = threading.Thread(target=self._run, name="checksum", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            self._hash.update(data)

    def update(self, data: bytes) -> None:
        self._queue.put(data)

    def hexdigest(self) -> str:
        self.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class Retryable(Exception):
    def __init__(self, message: str, *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after(response: Any) -> float:
    """The server's Retry-After in seconds (capped: a long wait is better done as a paused download)."""
    try:
        return min(60.0, max(0.0, float(response.headers.get("Retry-After", 0))))
    except ValueError:
        return 0.0


def fetch(
    target: FileTarget,
    headers: Callable[[], dict[str, str]],
    token: CancelToken,
    on_bytes: Callable[[int], None],
    *,
    retry: RetryPolicy = RetryPolicy(),
    free_space: FreeSpace = disk_free,
    reserve: int = DEFAULT_RESERVE,
    on_error: Callable[[Exception], HangarError] | None = None,
    check_every: int = DISK_CHECK_EVERY,
) -> None:
    """Bring ``target.part`` to the full size over one connection and verify it. ``on_bytes`` hears every chunk
    written (and the bytes already on disk once, at start). Raises CancelledError, DiskFullError, IntegrityError or
    NetworkError.

    Failures are counted until the file grows past the most it ever held: a server that ignores Range and drops
    the connection sends the same first bytes again and again, which is not progress."""
    target.part.parent.mkdir(parents=True, exist_ok=True)
    stream = _Stream(target, on_bytes)
    try:
        stream.offset = _prime(target, stream.checksum)
        on_bytes(stream.offset)
        failures, best = 0, stream.offset
        while stream.offset < target.size:
            token.raise_if_cancelled()
            check_space(target, stream.offset, free_space, reserve)
            try:
                _attempt(target, headers, token, stream, free_space, reserve, on_error, check_every)
            except (httpx2.TransportError, Retryable) as exc:
                if token.cancelled:
                    token.raise_if_cancelled()
                stream.offset = target.part.stat().st_size if target.part.exists() else 0
                failures = 0 if stream.offset > best else failures + 1
                best = max(best, stream.offset)
                if failures >= retry.attempts:
                    raise NetworkError(
                        f"Downloading {target.name} kept failing ({describe(exc)}); "
                        f"{stream.offset:,} of {target.size:,} bytes are kept.",
                        hint="Resume the download to continue from there.",
                    ) from None
                delay = max(retry.delay(max(1, failures)), getattr(exc, "retry_after", 0.0))
                logger.info("download of %s interrupted (%s); retrying in %.2fs", target.name, describe(exc), delay)
                if token.wait(delay):
                    token.raise_if_cancelled()
            except httpx2.TooManyRedirects:
                raise NetworkError(
                    f"The server of {target.name} keeps redirecting the download to another address.",
                    hint="Check your network (a proxy or captive portal?) and resume the download.",
                ) from None
        actual = stream.checksum.hexdigest()
    finally:
        stream.checksum.close()
    verify_digest(target, stream.checksum.kind, stream.checksum.expected, actual)


def verify_digest(target: FileTarget, kind: str, expected: str, actual: str) -> None:
    if expected and actual != expected:
        target.part.unlink(missing_ok=True)
        raise IntegrityError(
            f"{target.name} failed its integrity check: the Hub lists {kind} {expected[:16]}…, "
            f"the downloaded data has {actual[:16]}…. The data was discarded and nothing entered your models folder.",
            hint="Retry the download.",
        )


class _Stream:
    """The state of a one-connection download: where it is, and the running checksum."""

    def __init__(self, target: FileTarget, on_bytes: Callable[[int], None]) -> None:
        self.target, self.on_bytes = target, on_bytes
        self.checksum = _Checksum(target)
        self.offset = 0

    def restart(self) -> None:
        """The server sends the whole file again: start the part and the checksum over."""
        self.target.part.unlink(missing_ok=True)
        self.checksum.close()
        self.checksum = _Checksum(self.target)
        self.on_bytes(-self.offset)
        self.offset = 0


def check_whole_response(response: Any, target: FileTarget) -> None:
    """A 200 must carry exactly the file: anything else (a captive portal's login page, a proxy's error page, another
    file) is refused before a byte of it is written."""
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) != target.size:
        raise Retryable(
            f"the server sent {int(length):,} bytes ({response.headers.get('Content-Type', 'unknown type')}) "
            f"instead of the {target.size:,}-byte file; a captive portal or proxy may be in the way"
        )


def _prime(target: FileTarget, checksum: _Checksum) -> int:
    """Feed what is already in the part file to the checksum; returns its length."""
    if not target.part.exists():
        return 0
    if target.part.stat().st_size > target.size:
        target.part.unlink()  # longer than the file: not ours to trust
        return 0
    length = target.part.stat().st_size
    offset = 0
    # Read no more than the size on disk: a part that is not a regular file must not feed us forever.
    with target.part.open("rb") as handle:
        while offset < length and (data := handle.read(min(CHUNK * 8, length - offset))):
            checksum.update(data)
            offset += len(data)
    return offset


def check_space(target: FileTarget, offset: int, free_space: FreeSpace, reserve: int) -> None:
    remaining = target.size - offset
    free = free_space(target.part.parent)
    if free - remaining < reserve:
        raise DiskFullError(
            f"Not enough disk space for {target.name}: {remaining / 1e9:.2f} GB still to download, "
            f"{max(0, free) / 1e9:.2f} GB free on {target.part.parent}. The download is paused and keeps what it has.",
            hint="Free some space, then resume it.",
        )


def _attempt(
    target: FileTarget,
    headers: Callable[[], dict[str, str]],
    token: CancelToken,
    stream: _Stream,
    free_space: FreeSpace,
    reserve: int,
    on_error: Callable[[Exception], HangarError] | None,
    check_every: int,
) -> None:
    offset = stream.offset
    request_headers = {**headers(), "Accept-Encoding": "identity"}
    if offset:
        request_headers["Range"] = f"bytes={offset}-"
    with get_session().stream("GET", target.url, headers=request_headers, timeout=30.0) as response:
        if response.status_code == 416 and offset >= target.size:
            return
        if response.status_code in (429, 500, 502, 503, 504):
            raise Retryable(f"HTTP {response.status_code}", retry_after=retry_after(response))
        if response.status_code >= 400:
            response.read()
            error = http_error(response)
            raise on_error(error) if on_error else NetworkError(f"The Hub answered {response.status_code}.")
        if response.status_code == 200:
            check_whole_response(response, target)
            if offset:
                logger.info("server ignored the range for %s; taking the whole file it sends", target.name)
                stream.restart()
                offset = 0
        elif not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            raise Retryable("unexpected Content-Range")
        done = threading.Event()
        watcher = threading.Thread(target=close_on_cancel, args=(token, response, done), daemon=True)
        watcher.start()
        checksum = stream.checksum
        try:
            # Network reads as they arrive (a dropped connection loses nothing already received); the file and
            # the checksum get them in batches of about CHUNK bytes.
            with target.part.open("ab", buffering=CHUNK) as handle:
                since_check = 0
                pending = bytearray()
                try:
                    for data in response.iter_raw():
                        if offset + len(data) > target.size:
                            raise Retryable("the server sent more than the file's size")
                        handle.write(data)
                        pending += data
                        offset += len(data)
                        stream.offset = offset
                        since_check += len(data)
                        stream.on_bytes(len(data))
                        if len(pending) >= CHUNK:
                            checksum.update(bytes(pending))
                            pending.clear()
                        if since_check >= check_every:
                            since_check = 0
                            handle.flush()
                            check_space(target, offset, free_space, reserve)
                finally:
                    if pending:
                        checksum.update(bytes(pending))
                    try:
                        handle.flush()
                    except OSError as exc:
                        raise_if_disk_full(exc, target)
                        raise
        except OSError as exc:
            raise_if_disk_full(exc, target)
            raise
        except Exception:
            if token.cancelled:  # the watcher closed the stream under the reader
                token.raise_if_cancelled()
            raise
        finally:
            done.set()
    if offset < target.size:
        raise Retryable("the connection ended early")


def raise_if_disk_full(exc: OSError, target: FileTarget) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        raise DiskFullError(
            f"The disk filled up while downloading {target.name}. The download is paused and keeps what it has.",
            hint="Free some space, then resume it.",
        ) from None


def close_on_cancel(token: CancelToken, response: Any, done: threading.Event) -> None:
    """Closing the response from here wakes a read blocked on a slow server, so cancel is prompt."""
    while not done.is_set():
        if token.wait(0.05):
            if not done.is_set():
                try:
                    response.close()
                except Exception:  # the reader may be closing it at the same moment
                    pass
            return


def http_error(response: Any) -> Exception:
    from huggingface_hub.utils import hf_raise_for_status

    try:
        hf_raise_for_status(response)
    except Exception as exc:
        return exc
    return NetworkError(f"The Hub answered {response.status_code}.")


def describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, Retryable) else type(exc).__name__


__all__ = ["CancelledError", "FileTarget", "RetryPolicy", "disk_free", "fetch"]
