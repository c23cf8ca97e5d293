"""Where header bytes come from: a local file or a remote file read with HTTP Range requests.

A ``Cursor`` reads forward through a source and fetches more bytes only when the parser needs them, growing
each remote request (64 KiB, then doubling up to 8 MiB) so a small header costs one request and a
256k-vocabulary header a handful, never the whole file.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import struct
from typing import Any, Protocol

from core.errors import AuthError, HangarError, ModelFileError, NetworkError, NotFoundError

logger = logging.getLogger(__name__)

#: A header larger than this is refused: real ones stay below ~40 MiB even with 256k-token vocabularies.
MAX_HEADER_BYTES = 512 * 1024 * 1024
_FIRST_REMOTE_CHUNK = 64 * 1024
_MAX_REMOTE_CHUNK = 8 * 1024 * 1024
#: Without Range support, read at most this much from the start of a file before giving up.
MAX_NO_RANGE_BYTES = 64 * 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def require_regular_file(path: Any) -> None:
    """Refuse anything but a regular file (or a link to one) before it is opened: a FIFO blocks ``open()``
    forever, a device never ends."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise NotFoundError(f"{path} does not exist.") from None
    except OSError as exc:
        raise ModelFileError(f"{path} cannot be read: {exc.strerror or exc}.") from None
    if stat.S_ISDIR(mode):
        raise ModelFileError(f"{path} is a folder, not a model file.")
    if not stat.S_ISREG(mode):
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a device or socket"
        raise ModelFileError(f"{path} is {kind}, not a model file; Hangar reads only regular files.")


class ByteSource(Protocol):
    name: str

    def size(self) -> int | None: ...

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (fewer only at the end of the file)."""
        ...

    def close(self) -> None: ...


class FileSource:
    def __init__(self, path: Any) -> None:
        from pathlib import Path

        self.path = Path(path)
        self.name = self.path.name
        require_regular_file(self.path)  # before open(): opening a FIFO would block until a writer comes
        try:
            self._handle = self.path.open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"{self.path} does not exist.") from None
        except IsADirectoryError:
            raise ModelFileError(f"{self.path} is a folder, not a model file.") from None
        except OSError as exc:
            raise ModelFileError(f"{self.path} cannot be read: {exc.strerror or exc}.") from None
        self._size = os.fstat(self._handle.fileno()).st_size

    def size(self) -> int | None:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        self._handle.seek(offset)
        return self._handle.read(length)

    def close(self) -> None:
        self._handle.close()


class HttpSource:
    """A remote file read with ``Range: bytes=a-b`` through a huggingface_hub (httpx) session."""

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        session: Any = None,
        name: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        if session is None:
            from huggingface_hub import get_session

            session = get_session()
        self.url = url
        self.name = name or url.rsplit("/", 1)[-1]
        self._session = session
        self._headers = dict(headers or {})
        self._timeout = timeout
        self._size: int | None = None
        self.requests = 0  # how many Range requests were made (tests check that only the header is fetched)
        self.bytes_fetched = 0

    def size(self) -> int | None:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        if self._size is not None:
            if offset >= self._size:
                return b""
            length = min(length, self._size - offset)
        headers = {**self._headers, "Range": f"bytes={offset}-{offset + length - 1}"}
        self.requests += 1
        try:
            # Streamed and capped: a server that ignores Range (or lies) can never make us hold a whole file.
            with self._session.stream(
                "GET", self.url, headers=headers, follow_redirects=True, timeout=self._timeout
            ) as response:
                body = self._body(response, offset, length)
        except HangarError:
            raise
        except Exception as exc:  # httpx raises many transport errors; all mean the same to the user
            raise NetworkError(f"Could not reach {_host(self.url)} to read {self.name}: {exc}") from exc
        self.bytes_fetched += len(body)
        return body[:length]

    def _body(self, response: Any, offset: int, length: int) -> bytes:
        _raise_for_status(response, self.name)
        status = response.status_code
        if status == 416:  # range past the end: an empty tail
            return b""
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
            if match and match.group(3) != "*":
                self._size = int(match.group(3))
            if match and int(match.group(1)) != offset:
                raise NetworkError(f"The server answered the wrong byte range for {self.name}.")
            return _read_capped(response, length)
        if status == 200:
            # The server ignored Range and sends the file from its start: read up to what was asked, then stop.
            if offset + length > MAX_NO_RANGE_BYTES:
                raise NetworkError(
                    f"The server of {self.name} does not support partial downloads (Range), "
                    "so its header cannot be read without downloading the file."
                )
            declared = response.headers.get("content-length")
            data = _read_capped(response, offset + length)
            if declared and declared.isdigit():
                self._size = int(declared)
            elif len(data) < offset + length:
                self._size = len(data)
            return data[offset:]
        raise NetworkError(f"Unexpected HTTP {status} while reading {self.name}.")

    def close(self) -> None:
        pass


def _read_capped(response: Any, cap: int) -> bytes:
    chunks: list[bytes] = []
    received = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        received += len(chunk)
        if received >= cap:
            break
    return b"".join(chunks)[:cap]


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc or url


def _raise_for_status(response: Any, name: str) -> None:
    status = response.status_code
    if status < 400 or status == 416:
        return
    if status in (401, 403):
        raise AuthError(
            f"{name} needs permission: the server answered {status}.",
            hint="Log in with a Hugging Face token that has access to this repository.",
        )
    if status == 404:
        raise NotFoundError(f"{name} was not found on the server (HTTP 404).")
    raise NetworkError(f"The server answered HTTP {status} while reading {name}.")


class Cursor:
    """Reads little-endian values forward through a source, buffering what was fetched."""

    def __init__(self, source: ByteSource, *, chunk: int | None = None) -> None:
        self.source = source
        self.name = source.name
        self._buf = b""
        self._buf_start = 0
        self.pos = 0
        self._remote = not isinstance(source, FileSource)
        self._chunk = chunk or (_FIRST_REMOTE_CHUNK if self._remote else 1024 * 1024)

    def _need(self, n: int) -> None:
        end = self.pos + n
        if end > MAX_HEADER_BYTES:
            raise ModelFileError(
                f"{self.name}: the header claims more than {MAX_HEADER_BYTES // 2**20} MiB of metadata; "
                "the file is damaged or not a real model."
            )
        buf_end = self._buf_start + len(self._buf)
        if end <= buf_end:
            return
        size = self.source.size()
        if size is not None and end > size:
            raise ModelFileError(
                f"{self.name} is truncated: the header runs past the end of the file ({size} bytes).",
                hint="Download the file again.",
            )
        # Drop consumed bytes, then fetch at least what is needed, growing remote requests geometrically.
        keep_from = self.pos - self._buf_start
        self._buf = self._buf[keep_from:]
        self._buf_start = self.pos
        missing = end - (self._buf_start + len(self._buf))
        want = max(missing, self._chunk)
        data = self.source.read_at(self._buf_start + len(self._buf), want)
        if self._remote:
            self._chunk = min(self._chunk * 2, _MAX_REMOTE_CHUNK)
        self._buf += data
        if self._buf_start + len(self._buf) < end:
            raise ModelFileError(f"{self.name} is truncated: the header ends early.", hint="Download the file again.")

    def take(self, n: int) -> bytes:
        self._need(n)
        start = self.pos - self._buf_start
        self.pos += n
        return self._buf[start : start + n]

    def skip(self, n: int) -> None:
        size = self.source.size()
        if size is not None and self.pos + n > size:
            raise ModelFileError(
                f"{self.name} is truncated: the header runs past the end of the file.",
                hint="Download the file again.",
            )
        buf_end = self._buf_start + len(self._buf)
        if self.pos + n <= buf_end or self._remote:
            # Remote: skipped bytes are still fetched (the server has no "seek"), but never kept as objects.
            self._need(n)
        self.pos += n

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        st = _STRUCTS.get(fmt)
        if st is None:
            st = _STRUCTS[fmt] = struct.Struct("<" + fmt)
        data = self.take(st.size)
        return st.unpack(data)

    def u32(self) -> int:
        return int(self.unpack("I")[0])

    def u64(self) -> int:
        return int(self.unpack("Q")[0])


_STRUCTS: dict[str, struct.Struct] = {}
