"""Walking a GGUF string array (a tokenizer's 256k tokens) at numpy speed, for local files.

A Python loop over 256,000 length-prefixed strings costs about 70 ms; scanning a folder of 500 such models then
takes over half a minute. Here the short strings are found all at once and the walk only checks, in vectorised
runs, that each string ends exactly where the next begins; anything unusual (a long, empty or odd string) is
stepped over one at a time. The result is exactly the sequential walk's, whatever the data.
"""

from __future__ import annotations

import mmap
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from core.errors import ModelFileError

_FIRST_RUN = 256  # strings checked per vectorised step, growing to _MAX_RUN while the data is regular
_MAX_RUN = 1 << 16
_MIN_WINDOW = 64 << 10
_MAX_WINDOW = 64 << 20
_local = threading.local()
_KEEP_SCRATCH = 16 << 20


def skip_strings(data: Any, count: int, max_len: int) -> tuple[int, int]:
    """Walk up to ``count`` length-prefixed strings at the start of ``data`` (bytes), stopping before one that is
    not wholly inside it. Returns (strings walked, bytes they take)."""
    import numpy as np  # here, not at import: reading a header must not cost the app's start-up NumPy

    size = len(data)
    if size < 8 or count <= 0:
        return 0, 0
    raw = np.frombuffer(data, dtype=np.uint8)
    # A short string's length (1..255) is a non-zero byte followed by seven zero bytes, and text has no zero
    # bytes, so "non-zero, then zero" finds the starts. The true length at each is then read whole.
    zero, follows = _scratch(size)
    np.equal(raw, 0, out=zero)
    np.greater(zero[1 : size - 7], zero[: size - 8], out=follows)
    starts = np.flatnonzero(follows)
    lengths = np.ndarray(shape=(size - 7,), dtype="<u8", buffer=data, offset=0, strides=(1,))[starts]
    np.minimum(lengths, np.uint64(size), out=lengths)
    ends = lengths.view(np.int64)
    ends += starts
    ends += 8
    pos = walked = 0
    run_size = _FIRST_RUN
    while walked < count and pos + 8 <= size:
        k = int(np.searchsorted(starts, pos))
        if k < len(starts) and starts[k] == pos:
            # From a known start, each string's end must be the next start found; the first mismatch ends the run.
            # Runs grow while they check out and shrink after a mismatch, so odd data costs little.
            limit = min(count - walked, len(starts) - k, run_size)
            mismatch = np.flatnonzero(ends[k : k + limit - 1] != starts[k + 1 : k + limit])
            run = int(mismatch[0]) + 1 if len(mismatch) else limit
            run_size = _FIRST_RUN if len(mismatch) else min(run_size * 4, _MAX_RUN)
            end = int(ends[k + run - 1])
            if end > size:  # the run's last string spills past the window
                if run == 1:
                    break
                run -= 1
                end = int(ends[k + run - 1])
            pos = end
            walked += run
        else:
            (length,) = struct.unpack_from("<Q", data, pos)
            if length > max_len:
                raise ModelFileError(f"a string claims {length} bytes; the file is damaged.")
            if pos + 8 + length > size:
                break
            pos += 8 + length
            walked += 1
    return walked, pos


def _scratch(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two boolean work arrays for ``size`` bytes, kept per thread: fresh multi-megabyte arrays for every model
    would cost more in page faults than the work itself."""
    import numpy as np

    held = getattr(_local, "arrays", None)
    if held is None or len(held[0]) < size:
        held = (np.empty(size, dtype=bool), np.empty(size, dtype=bool))
        if size <= _KEEP_SCRATCH:  # a vocabulary of up to ~1M tokens; bigger windows are not kept
            _local.arrays = held
    return held[0][:size], held[1][: max(size - 8, 0)]


def skip_local_strings(cur: Any, count: int, max_len: int) -> int:
    """Advance the cursor (over a local file) past as many of ``count`` strings as the fast walk can; returns how
    many are left for the caller's one-by-one walk (0 unless a string is bigger than the window)."""
    size = cur.source.size()
    path = getattr(cur.source, "path", None)
    if size is None or path is None:
        return count
    remaining = count
    per_string = 16.0  # a first guess (8 bytes of length and a short token); then what was measured
    # Mapped rather than read: the array's pages are looked at in place, never copied into Python bytes.
    with _map(path) as mapped:
        while remaining:
            # About what the rest of the array takes, so the vectorised work stays on the array itself.
            want = min(size - cur.pos, max(int(remaining * per_string * 1.1) + 4096, _MIN_WINDOW), _MAX_WINDOW)
            window = mapped[cur.pos : cur.pos + want] if mapped is not None else cur.source.read_at(cur.pos, want)
            walked, used = skip_strings(window, remaining, max_len)
            del window
            if walked == 0:
                break
            cur.skip(used)
            remaining -= walked
            per_string = used / walked
    return remaining


@contextmanager
def _map(path: Any) -> Iterator[memoryview | None]:
    try:
        with open(path, "rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        yield None  # not mappable (an empty file, a special file system): plain reads
        return
    view = memoryview(mapped)
    try:
        yield view
    finally:
        view.release()
        mapped.close()
