"""What the local Hub serves: repositories of files, access tokens, and the faults to inject.

Everything here is plain data that the tests build and the server reads; the server never invents content.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LFS_THRESHOLD = 10 * 1024  # files above this are served like the Hub serves LFS files (redirect to a "CDN")


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob: what the Hub reports as ``blobId``/``oid`` for a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubFile:
    path: str
    #: Content in memory, or ``source`` on disk (large sparse files are never read into memory).
    data: bytes | None = None
    source: Path | None = None
    #: Forced LFS treatment; by default files above LFS_THRESHOLD are LFS.
    lfs: bool | None = None
    #: Precomputed sha256 (large files); computed from the content when None.
    sha256_hex: str | None = None

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.source is not None
        return self.source.stat().st_size

    @property
    def is_lfs(self) -> bool:
        return self.lfs if self.lfs is not None else self.size > LFS_THRESHOLD

    @property
    def sha256(self) -> str:
        if self.sha256_hex is None:
            digest = hashlib.sha256()
            if self.data is not None:
                digest.update(self.data)
            else:
                assert self.source is not None
                with self.source.open("rb") as handle:
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
            self.sha256_hex = digest.hexdigest()
        return self.sha256_hex

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n".encode()

    @property
    def blob_id(self) -> str:
        if self.is_lfs:
            return git_blob_oid(self.pointer)
        assert self.data is not None, "small files are kept in memory"
        return git_blob_oid(self.data)

    @property
    def etag(self) -> str:
        return self.sha256 if self.is_lfs else self.blob_id

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``."""
        if self.data is not None:
            return self.data[start:end]
        assert self.source is not None
        with self.source.open("rb") as handle:
            handle.seek(start)
            return handle.read(end - start)


@dataclass
class HubRepo:
    repo_id: str
    files: list[HubFile] = field(default_factory=list)
    #: False, "auto" or "manual", as the Hub reports it.
    gated: bool | str = False
    private: bool = False
    downloads: int = 0
    likes: int = 0
    trending_score: int = 0
    last_modified: str = "2025-01-01T00:00:00.000Z"
    created_at: str = "2024-06-01T00:00:00.000Z"
    tags: list[str] = field(default_factory=list)
    pipeline_tag: str | None = "text-generation"
    library_name: str | None = None
    #: ``gguf`` summary as in model_info (total, architecture, context_length, ...).
    gguf: dict[str, Any] | None = None
    #: ``safetensors`` summary: {"parameters": {"F16": n}, "total": n}.
    safetensors: dict[str, Any] | None = None
    card_data: dict[str, Any] | None = None
    commit: str = ""

    def __post_init__(self) -> None:
        if not self.commit:
            self.commit = hashlib.sha1(self.repo_id.encode()).hexdigest()

    @property
    def author(self) -> str:
        return self.repo_id.split("/")[0]

    @property
    def num_parameters(self) -> int | None:
        if self.safetensors:
            return int(self.safetensors["total"])
        if self.gguf and "total" in self.gguf:
            return int(self.gguf["total"])
        return None

    def file(self, path: str) -> HubFile | None:
        return next((f for f in self.files if f.path == path), None)


@dataclass
class Faults:
    """Faults the server injects. Keys are repo file paths ("org/name/file.gguf"). Counts go down as used."""

    #: Cut the connection once the response body passes this absolute file offset, for the next N requests.
    drop_at: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Answer 503 to the next N requests for the file.
    unavailable: dict[str, int] = field(default_factory=dict)
    #: Serve content with one byte flipped (the advertised sha256 stays that of the real content).
    corrupt: set[str] = field(default_factory=set)
    #: Bytes per second for every file body, per connection: each response is paced on its own, as CDNs cap
    #: each connection (None: full speed).
    throttle_bps: int | None = None
    #: Files whose server ignores Range and always answers 200 with the whole file.
    ignore_range: set[str] = field(default_factory=set)
    #: Files answered with this body (status 200, its own length) instead of the file: a captive portal's page.
    portal: dict[str, bytes] = field(default_factory=dict)
    #: Files whose every CDN request is first redirected to a fresh one-time URL (a signed URL per request).
    redirect_each: set[str] = field(default_factory=set)
    #: Files whose CDN URL redirects to itself forever.
    redirect_forever: set[str] = field(default_factory=set)
    #: Set once the body bytes sent for a file pass the threshold in ``watch``.
    watch: dict[str, tuple[int, threading.Event]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        #: Body bytes sent per file, and the most responses for one file streaming at the same time.
        self.body_bytes: dict[str, int] = {}
        self.peak_streams: dict[str, int] = {}
        self._streams: dict[str, int] = {}

    def stream_started(self, key: str) -> None:
        with self._lock:
            self._streams[key] = self._streams.get(key, 0) + 1
            self.peak_streams[key] = max(self.peak_streams.get(key, 0), self._streams[key])

    def stream_ended(self, key: str) -> None:
        with self._lock:
            self._streams[key] -= 1

    def active_streams(self, key: str) -> int:
        with self._lock:
            return self._streams.get(key, 0)

    def count_body(self, key: str, count: int) -> None:
        with self._lock:
            self.body_bytes[key] = self.body_bytes.get(key, 0) + count

    def take(self, table: dict[str, Any], key: str) -> Any:
        """Consume one use of a counted fault; returns its value or None."""
        if key not in table:
            return None
        value = table[key]
        count = value[1] if isinstance(value, tuple) else value
        remaining = count - 1
        if remaining <= 0:
            del table[key]
        else:
            table[key] = (value[0], remaining) if isinstance(value, tuple) else remaining
        return value

    def sent(self, key: str, offset: int) -> None:
        watched = self.watch.get(key)
        if watched and offset >= watched[0]:
            watched[1].set()

    def wait_until_sent(self, key: str, offset: int, timeout: float = 30.0) -> bool:
        event = threading.Event()
        self.watch[key] = (offset, event)
        return event.wait(timeout)


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    range: str | None
    authorization: bool
    status: int
    at: float = field(default_factory=time.monotonic)
