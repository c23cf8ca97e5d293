"""The values of the download manager: a download's state, the ``DownloadItem`` the UI and CLI show, and the
live progress counter (speed over a sliding window)."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from pathlib import Path

from core.hub.files import RemoteFile
from core.jobs import JobState


class DownloadState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DONE = "done"


STATE_OF_JOB = {
    JobState.QUEUED: DownloadState.QUEUED,
    JobState.RUNNING: DownloadState.RUNNING,
    JobState.PAUSED: DownloadState.PAUSED,
    JobState.FAILED: DownloadState.FAILED,
    JobState.CANCELLED: DownloadState.CANCELLED,
    JobState.SUCCEEDED: DownloadState.DONE,
}


@dataclass(frozen=True)
class DownloadItem:
    id: str
    job_id: str
    repo_id: str
    revision: str
    label: str
    files: tuple[RemoteFile, ...]
    destination: Path
    state: DownloadState
    total: int
    done: int = 0
    #: Bytes per second over the last few seconds (0 when not running).
    speed: float = 0.0
    #: A note for the person (why it is paused) or the error that ended it.
    message: str = ""
    #: The ``HangarError.code`` of the error that ended it ("auth", "integrity", "network", "disk_full", ...).
    error_code: str = ""
    created_at: float = 0.0

    @property
    def progress(self) -> float:
        return self.done / self.total if self.total else (1.0 if self.state == DownloadState.DONE else 0.0)

    @property
    def eta_seconds(self) -> float | None:
        if self.state != DownloadState.RUNNING or self.speed <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.speed)

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(self.destination / f.path for f in self.files)


@dataclass
class LiveProgress:
    done: int = 0
    speed: float = 0.0
    window: list[tuple[float, int]] | None = None
    last_emit: float = 0.0

    def add(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        window = self.window if self.window is not None else []
        window.append((now, self.done))
        while len(window) > 2 and now - window[0][0] > 3.0:
            window.pop(0)
        self.window = window
        span = now - window[0][0]
        self.speed = (self.done - window[0][1]) / span if span > 0.2 else self.speed
