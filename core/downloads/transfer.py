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


class _Retryable(Exception):
    def __init__(self, message: str, *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(response: Any) -> float:
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
    """Bring ``target.part`` to the full size and verify it. ``on_bytes`` hears every chunk written (and the bytes
    already on disk once, at start). Raises CancelledError, DiskFullError, IntegrityError or NetworkError."""
    target.part.parent.mkdir(parents=True, exist_ok=True)
    checksum = _Checksum(target)
    try:
        offset = _prime(target, checksum)
        on_bytes(offset)
        failures = 0
        while offset < target.size:
            token.raise_if_cancelled()
            _check_space(target, offset, free_space, reserve)
            before = offset
            try:
                offset = _attempt(
                    target, headers, token, on_bytes, checksum, offset, free_space, reserve, on_error, check_every
                )
            except _RestartFromZero:
                target.part.unlink(missing_ok=True)
                checksum.close()
                checksum = _Checksum(target)
                on_bytes(-offset)
                offset = 0
                failures += 1
                if failures >= retry.attempts:
                    raise NetworkError(f"The server keeps ignoring range requests for {target.name}.") from None
            except (httpx2.TransportError, _Retryable) as exc:
                if token.cancelled:
                    token.raise_if_cancelled()
                offset = target.part.stat().st_size if target.part.exists() else 0
                failures = 0 if offset > before else failures + 1
                if failures >= retry.attempts:
                    raise NetworkError(
                        f"Downloading {target.name} kept failing ({_describe(exc)}); "
                        f"{offset:,} of {target.size:,} bytes are kept.",
                        hint="Resume the download to continue from there.",
                    ) from None
                delay = max(retry.delay(failures), getattr(exc, "retry_after", 0.0))
                logger.info("download of %s interrupted (%s); retrying in %.2fs", target.name, _describe(exc), delay)
                if token.wait(delay):
                    token.raise_if_cancelled()
        actual = checksum.hexdigest()
    finally:
        checksum.close()
    if checksum.expected and actual != checksum.expected:
        target.part.unlink(missing_ok=True)
        raise IntegrityError(
            f"{target.name} failed its integrity check: the Hub lists {checksum.kind} {checksum.expected[:16]}…, "
            f"the downloaded data has {actual[:16]}…. The data was discarded and nothing entered your models folder.",
            hint="Retry the download.",
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


def _check_space(target: FileTarget, offset: int, free_space: FreeSpace, reserve: int) -> None:
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
    on_bytes: Callable[[int], None],
    checksum: _Checksum,
    offset: int,
    free_space: FreeSpace,
    reserve: int,
    on_error: Callable[[Exception], HangarError] | None,
    check_every: int,
) -> int:
    request_headers = {**headers(), "Accept-Encoding": "identity"}
    if offset:
        request_headers["Range"] = f"bytes={offset}-"
    with get_session().stream("GET", target.url, headers=request_headers, timeout=30.0) as response:
        if response.status_code == 416 and offset >= target.size:
            return offset
        if response.status_code in (429, 500, 502, 503, 504):
            raise _Retryable(f"HTTP {response.status_code}", retry_after=_retry_after(response))
        if response.status_code >= 400:
            response.read()
            error = _http_error(response)
            raise on_error(error) if on_error else NetworkError(f"The Hub answered {response.status_code}.")
        if offset and response.status_code == 200:
            logger.info("server ignored the range for %s; starting over", target.name)
            raise _RestartFromZero()
        if offset and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            raise _Retryable("unexpected Content-Range")
        done = threading.Event()
        watcher = threading.Thread(target=_close_on_cancel, args=(token, response, done), daemon=True)
        watcher.start()
        try:
            # Network reads as they arrive (a dropped connection loses nothing already received); the file and
            # the checksum get them in batches of about CHUNK bytes.
            with target.part.open("ab", buffering=CHUNK) as handle:
                since_check = 0
                pending = bytearray()
                try:
                    for data in response.iter_raw():
                        handle.write(data)
                        pending += data
                        offset += len(data)
                        since_check += len(data)
                        on_bytes(len(data))
                        if len(pending) >= CHUNK:
                            checksum.update(bytes(pending))
                            pending.clear()
                        if since_check >= check_every:
                            since_check = 0
                            handle.flush()
                            _check_space(target, offset, free_space, reserve)
                finally:
                    if pending:
                        checksum.update(bytes(pending))
                    try:
                        handle.flush()
                    except OSError as exc:
                        _raise_if_disk_full(exc, target)
                        raise
        except OSError as exc:
            _raise_if_disk_full(exc, target)
            raise
        except Exception:
            if token.cancelled:  # the watcher closed the stream under the reader
                token.raise_if_cancelled()
            raise
        finally:
            done.set()
    if offset < target.size:
        raise _Retryable("the connection ended early")
    return offset


def _raise_if_disk_full(exc: OSError, target: FileTarget) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DiskFullError(
            f"The disk filled up while downloading {target.name}. The download is paused and keeps what it has.",
            hint="Free some space, then resume it.",
        ) from None


class _RestartFromZero(_Retryable):
    def __init__(self) -> None:
        super().__init__("the server ignored the range")


def _close_on_cancel(token: CancelToken, response: Any, done: threading.Event) -> None:
    """Closing the response from here wakes a read blocked on a slow server, so cancel is prompt."""
    while not done.is_set():
        if token.wait(0.05):
            if not done.is_set():
                try:
                    response.close()
                except Exception:  # the reader may be closing it at the same moment
                    pass
            return


def _http_error(response: Any) -> Exception:
    from huggingface_hub.utils import hf_raise_for_status

    try:
        hf_raise_for_status(response)
    except Exception as exc:
        return exc
    return NetworkError(f"The Hub answered {response.status_code}.")


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, _Retryable) else type(exc).__name__


__all__ = ["CancelledError", "FileTarget", "RetryPolicy", "disk_free", "fetch"]
