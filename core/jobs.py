"""Background jobs: downloads, imports, fine-tunes. Each has an id, kind, state, progress, a cancel token and a
result or error, and is persisted so the app can show history and resume what can be resumed after a restart.

A job runs a plain function ``fn(ctx: JobContext) -> dict | None`` on a worker thread. Concurrency is limited per
kind (one queue per resource, as Vorta does for borg): two downloads may run while a third waits; ``set_limit``
changes a limit while jobs run (the parallel-downloads setting follows the Settings page live).
"""

from __future__ import annotations

import enum
import json
import logging
import os
import sqlite3
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from core.errors import CancelledError, HangarError, JobError, NotFoundError
from core.events import EventHook
from core.store import Store

logger = logging.getLogger(__name__)

JOBS_SCHEMA = [
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        state TEXT NOT NULL,
        progress REAL,
        message TEXT NOT NULL DEFAULT '',
        params TEXT NOT NULL DEFAULT '{}',
        result TEXT,
        error TEXT,
        resumable INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX jobs_by_kind ON jobs(kind, created_at);
    """,
    # Which process runs a job ("pid:start-time"), so a second Hangar process (the CLI while the window is open)
    # does not mistake another live process's jobs for interrupted ones.
    "ALTER TABLE jobs ADD COLUMN owner TEXT;",
]


class JobKind(enum.StrEnum):
    """What a job does; stored as its value, so the database reads the same as before kinds were typed."""

    DOWNLOAD = "download"
    IMPORT = "import"
    MOVE_MODELS = "move-models"
    FINETUNE = "finetune"
    FINETUNE_EXPORT = "finetune-export"
    WORKSHOP = "workshop"


def job_kind(value: str) -> JobKind | str:
    """The ``JobKind`` named ``value``; an unknown kind (a test's, or a newer Hangar's) stays a plain string."""
    try:
        return JobKind(value)
    except ValueError:
        return value


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)

    @property
    def active(self) -> bool:
        return self in (JobState.QUEUED, JobState.RUNNING)


@dataclass(frozen=True)
class Job:
    id: str
    kind: JobKind | str
    title: str
    state: JobState
    progress: float | None = None
    message: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    resumable: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0


class CancelToken:
    """Cooperative cancellation. ``pause`` is a cancel that asks the job to keep what it has for a resume."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.pause_requested = False

    def cancel(self, *, pause: bool = False) -> None:
        self.pause_requested = pause
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError("Paused." if self.pause_requested else "Cancelled.")

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early on cancel; True if cancelled."""
        return self._event.wait(timeout)


@dataclass
class JobContext:
    """What a running job sees: its id and params, its cancel token, and a way to report progress."""

    job_id: str
    params: dict[str, Any]
    token: CancelToken
    _report: Callable[[float | None, str], None]

    def report(self, progress: float | None = None, message: str = "") -> None:
        self._report(progress, message)


JobFunction = Callable[[JobContext], dict[str, Any] | None]
#: Rebuilds a job's function from its persisted params, so paused or interrupted jobs resume after a restart.
JobRunnerFactory = Callable[[dict[str, Any]], JobFunction]


class JobManager:
    def __init__(self, store: Store, limits: dict[str, int] | None = None, default_limit: int = 1) -> None:
        self._store = store
        self._store.migrate("jobs", JOBS_SCHEMA)
        self._limits = dict(limits or {})
        self._default_limit = default_limit
        #: Jobs holding a slot, per kind; waiting jobs sleep on ``_slots`` until one frees or a limit grows.
        self._running: dict[str, int] = {}
        self._slots = threading.Condition(threading.Lock())
        self._tokens: dict[str, CancelToken] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._runners: dict[str, JobRunnerFactory] = {}
        self._lock = threading.RLock()
        self._last_progress_write: dict[str, float] = {}
        self._cache: dict[str, Job] = {}
        #: Emitted with the new ``Job`` after every change (state, progress, message).
        self.changed: EventHook[[Job]] = EventHook()
        self._recover_interrupted()

    # -- registration -------------------------------------------------------------------------------------------
    def register_runner(self, kind: str, factory: JobRunnerFactory, *, limit: int | None = None) -> None:
        self._runners[kind] = factory
        if limit is not None:
            self.set_limit(kind, limit)

    def set_limit(self, kind: str, limit: int) -> None:
        """How many jobs of ``kind`` may run at once, from now on: a higher limit starts waiting jobs at once, a
        lower one lets running jobs finish and holds the next ones back."""
        with self._slots:
            self._limits[kind] = max(1, int(limit))
            self._slots.notify_all()

    def limit(self, kind: str) -> int:
        with self._slots:
            return self._limits.get(kind, self._default_limit)

    # -- queries ------------------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        row = self._store.query_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise NotFoundError(f"There is no job {job_id!r}.")
        return _row_to_job(row)

    def list(self, kind: str | None = None, *, limit: int = 500) -> list[Job]:
        if kind is None:
            rows = self._store.query("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,))
        else:
            rows = self._store.query(
                "SELECT * FROM jobs WHERE kind = ? ORDER BY created_at DESC LIMIT ?", (kind, limit)
            )
        return [_row_to_job(r) for r in rows]

    def active_count(self) -> int:
        row = self._store.query_one("SELECT COUNT(*) AS n FROM jobs WHERE state IN ('queued', 'running')")
        return int(row["n"]) if row else 0

    # -- control ------------------------------------------------------------------------------------------------
    def submit(
        self,
        kind: str,
        title: str,
        fn: JobFunction | None = None,
        *,
        params: dict[str, Any] | None = None,
        resumable: bool = False,
    ) -> str:
        """Queue a job and return its id. Without ``fn``, the runner registered for ``kind`` builds it."""
        params = dict(params or {})
        if fn is None:
            fn = self._runner_for(kind)(params)
        job_id = uuid.uuid4().hex[:12]
        now = time.time()
        self._store.execute(
            "INSERT INTO jobs (id, kind, title, state, params, resumable, created_at, updated_at, owner) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, kind, title, JobState.QUEUED, json.dumps(params), int(resumable), now, now, _PROCESS_ID),
        )
        self.changed.emit(self.get(job_id))
        self._start_thread(job_id, kind, fn, params)
        return job_id

    def cancel(self, job_id: str) -> None:
        self._stop(job_id, pause=False)

    def pause(self, job_id: str) -> None:
        job = self.get(job_id)
        if not job.resumable:
            raise JobError(f"“{job.title}” cannot be paused; cancel it instead.")
        self._stop(job_id, pause=True)

    def resume(self, job_id: str) -> None:
        job = self.get(job_id)
        if job.state not in (JobState.PAUSED, JobState.FAILED, JobState.CANCELLED) or not job.resumable:
            raise JobError(f"“{job.title}” cannot be resumed (it is {job.state}).")
        fn = self._runner_for(job.kind)(job.params)
        self._store.execute("UPDATE jobs SET owner = ? WHERE id = ?", (_PROCESS_ID, job_id))
        self._update(job_id, state=JobState.QUEUED, error=None, message="")
        self._start_thread(job_id, job.kind, fn, job.params)

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
        return self.get(job_id)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Ask every running job to stop (paused when resumable) and wait a little for them."""
        with self._lock:
            items = list(self._tokens.items())
        for job_id, token in items:
            token.cancel(pause=self.get(job_id).resumable)
        deadline = time.monotonic() + timeout
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- internals ----------------------------------------------------------------------------------------------
    def _runner_for(self, kind: str) -> JobRunnerFactory:
        try:
            return self._runners[kind]
        except KeyError:
            raise JobError(f"No runner is registered for {kind!r} jobs.") from None

    def _stop(self, job_id: str, *, pause: bool) -> None:
        with self._lock:
            token = self._tokens.get(job_id)
        if token is not None:
            token.cancel(pause=pause)
            return
        job = self.get(job_id)
        if job.state == JobState.PAUSED and not pause:
            self._update(job_id, state=JobState.CANCELLED, message="Cancelled.")

    def _take_slot(self, kind: str, token: CancelToken) -> bool:
        """Wait for a free slot of ``kind``; False if the job was cancelled while it waited."""
        with self._slots:
            while self._running.get(kind, 0) >= self._limits.get(kind, self._default_limit):
                if token.cancelled:
                    return False
                self._slots.wait(0.1)
            if token.cancelled:
                return False
            self._running[kind] = self._running.get(kind, 0) + 1
            return True

    def _free_slot(self, kind: str) -> None:
        with self._slots:
            self._running[kind] -= 1
            self._slots.notify_all()

    def _start_thread(self, job_id: str, kind: str, fn: JobFunction, params: dict[str, Any]) -> None:
        token = CancelToken()
        with self._lock:
            self._tokens[job_id] = token
        thread = threading.Thread(
            target=self._run, args=(job_id, kind, fn, params, token), name=f"job-{kind}-{job_id}", daemon=True
        )
        self._threads[job_id] = thread
        thread.start()

    def _run(self, job_id: str, kind: str, fn: JobFunction, params: dict[str, Any], token: CancelToken) -> None:
        try:
            if not self._take_slot(kind, token):
                self._finish_cancelled(job_id, token)
                return
            try:
                self._update(job_id, state=JobState.RUNNING)
                ctx = JobContext(job_id, params, token, lambda p, m: self._progress(job_id, p, m))
                result = fn(ctx)
                if token.cancelled:
                    self._finish_cancelled(job_id, token)
                else:
                    self._settle(job_id, state=JobState.SUCCEEDED, progress=1.0, result=result or {}, message="")
            finally:
                self._free_slot(kind)
        except CancelledError:
            self._finish_cancelled(job_id, token)
        except HangarError as exc:
            logger.warning("job %s (%s) failed: %s", job_id, kind, exc)
            self._settle(job_id, state=JobState.FAILED, error=str(exc))
        except sqlite3.Error as exc:
            # The database itself failed (a full disk): the job's own record cannot be written either.
            logger.debug("job %s (%s) stopped on a database error", job_id, kind, exc_info=True)
            self._settle(job_id, state=JobState.FAILED, error=f"Hangar's database could not be written ({exc}).")
        except Exception as exc:
            logger.error("job %s (%s) crashed:\n%s", job_id, kind, traceback.format_exc())
            self._settle(job_id, state=JobState.FAILED, error=f"Unexpected error: {exc}")
        finally:
            with self._lock:
                self._tokens.pop(job_id, None)

    def _finish_cancelled(self, job_id: str, token: CancelToken) -> None:
        if token.pause_requested:
            self._settle(job_id, state=JobState.PAUSED, message="Paused.")
        else:
            self._settle(job_id, state=JobState.CANCELLED, message="Cancelled.")

    def _settle(self, job_id: str, **changes: Any) -> None:
        """Record how a job ended. When the database cannot be written (a full disk), listeners in this process
        still hear it and the traceback goes to the debug log: the job's owner (the download manager, the CLI)
        says what happened in one line, and the row reads as interrupted at the next start."""
        try:
            self._update(job_id, **changes)
        except sqlite3.Error as exc:
            logger.debug("could not record the end of job %s (%s)", job_id, exc, exc_info=True)
            with self._lock:
                job = self._cache.get(job_id)
                if job is None:
                    return
                new = Job(**{**job.__dict__, **changes, "updated_at": time.time()})
                self._cache[job_id] = new
            self.changed.emit(new)

    def _progress(self, job_id: str, progress: float | None, message: str) -> None:
        # Progress can arrive hundreds of times a second; listeners hear every report but the database is
        # written at most a few times a second.
        now = time.monotonic()
        persist = now - self._last_progress_write.get(job_id, 0.0) > 0.5
        if persist:
            self._last_progress_write[job_id] = now
        self._update(job_id, progress=progress, message=message, persist=persist)

    def _update(self, job_id: str, *, persist: bool = True, **changes: Any) -> None:
        with self._lock:
            job = self.get(job_id) if persist or job_id not in self._cache else self._cache[job_id]
            values = {**job.__dict__, **changes, "updated_at": time.time()}
            new = Job(**values)
            self._cache[job_id] = new
            if persist:
                self._store.execute(
                    "UPDATE jobs SET state = ?, progress = ?, message = ?, result = ?, error = ?, updated_at = ? "
                    "WHERE id = ?",
                    (
                        new.state,
                        new.progress,
                        new.message,
                        json.dumps(new.result) if new.result is not None else None,
                        new.error,
                        new.updated_at,
                        job_id,
                    ),
                )
        self.changed.emit(new)

    def _recover_interrupted(self) -> None:
        """Jobs that were queued or running when the app last stopped: resumable ones become paused."""
        rows = self._store.query("SELECT id, resumable, owner FROM jobs WHERE state IN ('queued', 'running')")
        for row in rows:
            if _owner_alive(row["owner"]):
                continue  # another Hangar process is running it right now
            if row["resumable"]:
                state, message, error = (
                    JobState.PAUSED,
                    "Interrupted when Hangar closed; resume to continue.",
                    None,
                )
            else:
                state, message, error = JobState.FAILED, "", "Hangar closed while this job was running."
            self._store.execute(
                "UPDATE jobs SET state = ?, message = ?, error = ?, updated_at = ? WHERE id = ?",
                (state, message, error, time.time(), row["id"]),
            )


def _process_id(pid: int) -> str:
    try:
        return f"{pid}:{psutil.Process(pid).create_time():.3f}"
    except psutil.Error:
        return f"{pid}:?"


_PROCESS_ID = _process_id(os.getpid())


def _owner_alive(owner: str | None) -> bool:
    if not owner or owner == _PROCESS_ID:
        return False  # our own rows at start-up are leftovers of an earlier run with a reused id, never live
    pid_text, _, _started = owner.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return psutil.pid_exists(pid) and _process_id(pid) == owner


def _row_to_job(row: Any) -> Job:
    return Job(
        id=row["id"],
        kind=job_kind(row["kind"]),
        title=row["title"],
        state=JobState(row["state"]),
        progress=row["progress"],
        message=row["message"],
        params=json.loads(row["params"] or "{}"),
        result=json.loads(row["result"]) if row["result"] else None,
        error=row["error"],
        resumable=bool(row["resumable"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
