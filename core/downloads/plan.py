"""The plan of a ranged download (which bytes are done, which are being fetched, which are still to take) and its
durable record beside the part file (``<part>.ranges``): JSON of the completed byte ranges, replaced atomically after
the data is flushed, so it never claims bytes that are not on disk."""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from core.downloads.transfer import FileTarget

logger = logging.getLogger(__name__)

ALIGN = 64 * 1024


def record_path(part: Path) -> Path:
    return part.with_name(part.name + ".ranges")


def bytes_present(part: Path) -> int:
    """Bytes really downloaded into ``part``: its recorded ranges when it has a record (a preallocated part is
    full-sized from the start), else its length."""
    record = record_path(part)
    if record.exists():
        try:
            return sum(b - a for a, b in json.loads(record.read_text())["done"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0
    return part.stat().st_size if part.exists() else 0


# -- the plan: which bytes are done, which are being fetched, which are still to take ----------------------------
@dataclass
class Segment:
    start: int
    pos: int
    end: int
    #: Bytes past ``pos`` that a connection has been allowed to write (so a split never cuts below them).
    reserved: int = 0
    #: The end of the bytes asked of the server now: a split lands past it, so no byte asked for is wasted.
    asked: int = 0


@dataclass
class Plan:
    size: int
    piece_min: int
    piece_max: int
    done: list[list[int]] = field(default_factory=list)
    todo: list[list[int]] = field(default_factory=list)
    active: dict[int, Segment] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = threading.Condition()
        self.done = _merge(self.done)
        self.todo, last = [], 0
        for a, b in self.done:
            if a > last:
                self.todo.append([last, a])
            last = b
        if last < self.size:
            self.todo.append([last, self.size])
        self.done_bytes = sum(b - a for a, b in self.done)

    def claim(self, worker: int) -> Segment | None:
        with self.lock:
            if self.todo:
                # Pieces in file order: every connection works near the front, so the completed prefix (which
                # is hashed as it grows) follows the download closely.
                a, b = self.todo[0]
                end = min(b, a + self.piece_max)
                if end == b:
                    self.todo.pop(0)
                else:
                    self.todo[0][0] = end
                segment = Segment(a, a, end)
            else:
                victim = max(self.active.values(), key=lambda s: s.end - max(s.pos + s.reserved, s.asked), default=None)
                if victim is None:
                    return None
                base = max(victim.pos + victim.reserved, victim.asked)
                if victim.end - base < 2 * self.piece_min:
                    return None
                mid = base + (victim.end - base) // 2
                mid -= mid % ALIGN
                if mid <= base:
                    return None
                segment = Segment(mid, mid, victim.end)
                victim.end = mid
            self.active[worker] = segment
            return segment

    def allow(self, segment: Segment, count: int) -> int:
        with self.lock:
            allowed = max(0, min(count, segment.end - segment.pos))
            segment.reserved = allowed
            return allowed

    def advance(self, segment: Segment, count: int) -> None:
        with self.lock:
            if count:
                self._add(segment.pos, segment.pos + count)
                segment.pos += count
            segment.reserved = 0

    def ask(self, segment: Segment, most: int) -> int:
        """The end of the next request for ``segment``: at most ``most`` bytes, never past its (moving) end."""
        with self.lock:
            segment.asked = min(segment.end, segment.pos + most)
            return segment.asked

    def release(self, worker: int) -> None:
        """The worker stops: what it did not fetch goes back to be taken again."""
        with self.lock:
            segment = self.active.pop(worker, None)
            if segment is not None and segment.pos < segment.end:
                self.todo.insert(0, [segment.pos, segment.end])
                self.todo.sort()

    def prefix(self) -> int:
        """The end of the completed run from byte 0: what can be hashed in order."""
        with self.lock:
            return self.done[0][1] if self.done and self.done[0][0] == 0 else 0

    def complete(self) -> bool:
        with self.lock:
            return self.done_bytes >= self.size

    def work_left(self) -> bool:
        with self.lock:
            return bool(self.todo) or any(
                s.end - max(s.pos, s.asked) >= 2 * self.piece_min for s in self.active.values()
            )

    def snapshot(self) -> list[list[int]]:
        with self.lock:
            return [list(r) for r in self.done]

    def _add(self, a: int, b: int) -> None:
        self.done.append([a, b])
        self.done = _merge(self.done)
        self.done_bytes = sum(y - x for x, y in self.done)


def _merge(ranges: list[list[int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        elif b > a:
            merged.append([a, b])
    return merged


# -- the record on disk -----------------------------------------------------------------------------------------
def load_record(target: FileTarget, fd: int) -> list[list[int]]:
    """The ranges already on disk: from the record, or a part written by one stream (its length is a prefix)."""
    record = record_path(target.part)
    length = os.fstat(fd).st_size
    if record.exists():
        try:
            data = json.loads(record.read_text())
            if data.get("size") == target.size and data.get("sha256") == target.sha256 and length == target.size:
                ranges = [[int(a), int(b)] for a, b in data["done"]]
                if all(0 <= a < b <= target.size for a, b in ranges):
                    return _merge(ranges)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        logger.info("the range record of %s does not match; starting it over", target.name)
        os.ftruncate(fd, 0)
        return []
    if 0 < length <= target.size:
        return [[0, length]]  # a part from a one-stream download: its bytes are a prefix of the file
    if length > target.size:
        os.ftruncate(fd, 0)
    return []


def save_record(target: FileTarget, fd: int, ranges: list[list[int]], *, sync: bool) -> None:
    """Replace the record with ``ranges``, all of them already written to the part (a killed process loses nothing
    recorded: the kernel keeps its writes). ``sync`` first flushes the data to the disk, so a power cut cannot leave
    the record claiming bytes that never reached it (and if one did, the whole-file SHA-256 would catch it)."""
    if sync:
        os.fsync(fd)
    record = record_path(target.part)
    staging = record.with_name(record.name + ".tmp")
    staging.write_text(json.dumps({"size": target.size, "sha256": target.sha256, "done": ranges}))
    os.replace(staging, record)


__all__ = ["Plan", "Segment", "bytes_present", "load_record", "record_path", "save_record"]
