"""Checksums of model files: the Hub's SHA-256 for LFS files, the git blob id for small ones; and the check that a
file already in the models folder is the one the Hub lists (so it is never fetched again)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class Digest:
    def __init__(self, kind: str, expected: str, hasher: Any) -> None:
        self.kind, self.expected, self._hash = kind, expected, hasher

    @classmethod
    def for_file(cls, sha256: str | None, blob_id: str | None, size: int) -> Digest:
        if sha256:
            return cls("SHA-256", sha256.lower(), hashlib.sha256())
        if blob_id:
            return cls("git blob id", blob_id.lower(), hashlib.sha1(b"blob %d\0" % size))
        return cls("", "", hashlib.sha256())

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)

    def hexdigest(self) -> str:
        return str(self._hash.hexdigest())


def is_installed(path: Path, size: int | None, sha256: str | None, blob_id: str | None) -> bool:
    """True when ``path`` is a regular file of the listed size whose checksum matches the Hub's. Without a
    checksum to compare, the size alone cannot prove it: False."""
    try:
        if not path.is_file() or size is None or path.stat().st_size != size:
            return False
    except OSError:
        return False
    digest = Digest.for_file(sha256, blob_id, size)
    if not digest.expected:
        return False
    with path.open("rb") as handle:
        while data := handle.read(8 << 20):
            digest.update(data)
    matches = digest.hexdigest() == digest.expected
    if not matches:
        logger.info("%s is in the models folder but is not the file the Hub lists; fetching it", path)
    return matches


__all__ = ["Digest", "is_installed"]
