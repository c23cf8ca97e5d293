"""The download manager: a persisted queue of model downloads with progress, speed, ETA, pause, resume, cancel
and retry, that survives an app restart or a kill.

Each download is one row the person chose (a quant, a split set, an MLX model): a record in SQLite plus a job of
kind ``download`` in the JobManager (which gives the concurrency limit and restart recovery). Data goes to
``.part`` files under ``paths.downloads_dir/<id>/``; each file is verified against the Hub's checksum and only then
moved atomically into ``models/<org>/<repo>/``.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from core.downloads.fs import DestinationLock, PartLock, install_files, part_path, remove_parts
from core.downloads.items import STATE_OF_JOB, DownloadItem, DownloadState, LiveProgress
from core.downloads.limits import TransferOptions
from core.downloads.plan import bytes_present
from core.downloads.ranges import fetch_file
from core.downloads.transfer import (
    DEFAULT_RESERVE,
    DISK_CHECK_EVERY,
    FileTarget,
    FreeSpace,
    RetryPolicy,
    disk_free,
)
from core.downloads.verify import is_installed
from core.errors import (
    AuthError,
    CancelledError,
    DiskFullError,
    HangarError,
    JobError,
    NotFoundError,
    UnsafePathError,
    UsageError,
)
from core.events import EventHook
from core.hub.client import HubClient, ModelDetail, gated_message, translate_error
from core.hub.files import FileGroup, GroupKind, RemoteFile, find_group
from core.hub.vision import with_remote_projector
from core.jobs import Job, JobContext, JobKind, JobManager
from core.paths import AppPaths, safe_join
from core.store import Store

logger = logging.getLogger(__name__)

KIND = JobKind.DOWNLOAD
#: The rows that are a whole model: a GGUF quant (or split set), an MLX folder, a safetensors folder (fine-tuning).
MODEL_KINDS = (GroupKind.QUANT, GroupKind.MLX, GroupKind.SAFETENSORS)
#: The longest file name (one path component, in bytes) common file systems store.
NAME_MAX = 255
SCHEMA = [
    """
    CREATE TABLE downloads (
        id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL,
        repo_id TEXT NOT NULL,
        revision TEXT NOT NULL,
        label TEXT NOT NULL,
        files TEXT NOT NULL,
        destination TEXT NOT NULL,
        total INTEGER NOT NULL,
        user_paused INTEGER NOT NULL DEFAULT 0,
        note TEXT NOT NULL DEFAULT '',
        error_code TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    """,
]


class DownloadManager:
    def __init__(
        self,
        jobs: JobManager,
        store: Store,
        paths: AppPaths,
        hub: HubClient,
        *,
        models_dir: Path | Callable[[], Path] | None = None,
        free_space: FreeSpace = disk_free,
        reserve: int = DEFAULT_RESERVE,
        retry: RetryPolicy = RetryPolicy(),
        auto_resume: bool = True,
        disk_check_every: int = DISK_CHECK_EVERY,
        options: TransferOptions | None = None,
    ) -> None:
        self._jobs, self._store, self._paths, self.hub = jobs, store, paths, hub
        #: The models folder, or a function giving it now (the app's one owner: Settings can move it any time).
        self._models_dir: Path | Callable[[], Path] = models_dir or paths.models_dir
        self.free_space, self.reserve, self.retry = free_space, reserve, retry
        # A child process can only watch the real disk: a given free-space probe keeps downloads in this process.
        self._custom_free_space = free_space is not disk_free
        self.disk_check_every = disk_check_every
        self.options = dataclasses.replace(options or TransferOptions(), check_every=disk_check_every)
        self._live: dict[str, LiveProgress] = {}
        # How a download ended when the database could not record it (a full disk): kept here so this process
        # still reports it (``get``/``wait``) instead of showing it running forever.
        self._outcomes: dict[str, tuple[DownloadState, str, str]] = {}
        self._running: set[str] = set()
        self._lock = threading.Lock()
        # Held while a job is submitted and its record written, so the job's thread never runs ahead of it.
        self._enqueue_lock = threading.Lock()
        #: Emitted with a fresh ``DownloadItem`` on every change (throttled to ~10 per second for progress).
        self.changed: EventHook[[DownloadItem]] = EventHook()
        store.migrate("downloads", SCHEMA)
        jobs.register_runner(KIND, self._runner)
        jobs.changed.connect(self._job_changed)
        if auto_resume:
            self.resume_interrupted()

    @property
    def models_dir(self) -> Path:
        return self._models_dir() if callable(self._models_dir) else self._models_dir

    # -- queries ------------------------------------------------------------------------------------------------
    def get(self, download_id: str) -> DownloadItem:
        row = self._store.query_one("SELECT * FROM downloads WHERE id = ?", (download_id,))
        if row is None:
            raise NotFoundError(f"There is no download {download_id!r}.")
        return self._effective(self._item(row))

    def _effective(self, item: DownloadItem) -> DownloadItem:
        with self._lock:
            outcome = self._outcomes.get(item.id)
            running = item.id in self._running
        if outcome is None or running or item.state not in (DownloadState.QUEUED, DownloadState.RUNNING):
            return item
        state, message, code = outcome
        return dataclasses.replace(item, state=state, message=message, error_code=code, speed=0.0)

    def list(self) -> list[DownloadItem]:
        return [self._item(r) for r in self._store.query("SELECT * FROM downloads ORDER BY created_at DESC")]

    def find_by_job(self, job_id: str) -> DownloadItem | None:
        row = self._store.query_one("SELECT * FROM downloads WHERE job_id = ?", (job_id,))
        return self._item(row) if row else None

    # -- actions ------------------------------------------------------------------------------------------------
    def enqueue(
        self,
        repo_id: str,
        *,
        file: str | None = None,
        quant: str | None = None,
        group: FileGroup | None = None,
        detail: ModelDetail | None = None,
    ) -> DownloadItem:
        """Queue the row holding ``file``, the quant ``quant``, or ``group``; an MLX repo needs none of them.
        An unfinished download of the same files resumes instead of starting over."""
        detail = detail or self.hub.model_detail(repo_id)
        group = group or self._choose(detail, file=file, quant=quant)
        group = with_remote_projector(self.hub, repo_id, detail.commit, list(detail.groups), group)  # vision quants
        if not group.downloadable:
            raise safe_join_error(group)
        if detail.summary.gated and not self.hub.headers()[1]:
            raise AuthError(gated_message(repo_id, self.hub.endpoint, had_token=False))
        if group.kind not in MODEL_KINDS:
            raise UsageError(
                f"{group.label} is not a model Hangar can use (a GGUF model, an MLX model folder or a safetensors "
                "model folder), so it was not downloaded.",
                hint="Pick a GGUF file or quant (see `hangar search`), or fetch other files with the Hub's own tools.",
            )
        destination = safe_join(self.models_dir, repo_id)
        for remote in group.files:
            safe_join(destination, remote.path)  # refuse before anything is written
            too_long = [p for p in remote.path.split("/") if len(p.encode("utf-8")) > NAME_MAX]
            if too_long:
                raise UnsafePathError(
                    f"Refused {remote.path[:60]}…: a name of {len(too_long[0].encode('utf-8'))} bytes is longer than "
                    f"file systems allow ({NAME_MAX}); nothing was downloaded.",
                    hint="Ask the repository's owner to rename it, or pick another file.",
                )
        existing = self._existing(repo_id, detail.commit, group)
        if existing is not None:
            if existing.state in (DownloadState.PAUSED, DownloadState.FAILED, DownloadState.CANCELLED):
                self.resume(existing.id)
                return self.get(existing.id)
            return existing
        total = sum(f.size or 0 for f in group.files)
        self._require_space(total, label=group.label)
        download_id = uuid.uuid4().hex[:12]
        label = f"{repo_id} · {group.quant or group.label}"
        files_json = json.dumps([f.__dict__ for f in group.files])
        with self._enqueue_lock:
            job_id = self._jobs.submit(
                KIND,
                f"Download {label}",
                self._runner({"download_id": download_id}),
                params={"download_id": download_id},
                resumable=True,
            )
            self._store.execute(
                "INSERT INTO downloads (id, job_id, repo_id, revision, label, files, destination, total, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    download_id,
                    job_id,
                    repo_id,
                    detail.commit,
                    label,
                    files_json,
                    str(destination),
                    total,
                    time.time(),
                ),
            )
        item = self.get(download_id)
        self.changed.emit(item)
        return item

    def pause(self, download_id: str) -> None:
        item = self.get(download_id)
        self._store.execute("UPDATE downloads SET user_paused = 1 WHERE id = ?", (download_id,))
        if item.state in (DownloadState.QUEUED, DownloadState.RUNNING):
            self._jobs.pause(item.job_id)

    def resume(self, download_id: str) -> None:
        item = self.get(download_id)
        if item.state in (DownloadState.QUEUED, DownloadState.RUNNING, DownloadState.DONE):
            return
        self._store.execute(
            "UPDATE downloads SET user_paused = 0, note = '', error_code = '' WHERE id = ?", (download_id,)
        )
        with self._lock:
            self._outcomes.pop(download_id, None)
        self._jobs.resume(item.job_id)

    retry_download = resume

    def cancel(self, download_id: str) -> None:
        """Stop and discard the partial data (finished downloads are left alone: delete them in the library)."""
        item = self.get(download_id)
        if item.state == DownloadState.DONE:
            return
        self._jobs.cancel(item.job_id)
        if self._jobs.get(item.job_id).state.finished or item.state != DownloadState.RUNNING:
            remove_parts(self._paths.downloads_dir, download_id)
        self._emit(download_id, force=True)

    def wait(self, download_id: str, timeout: float | None = None) -> DownloadItem:
        self._jobs.wait(self.get(download_id).job_id, timeout)
        return self.get(download_id)

    def pending_bytes(self, download_id: str) -> int:
        """Bytes of ``download_id`` already downloaded and kept (for tests and the record of a paused one)."""
        item = self.get(download_id)
        return _bytes_on_disk(self._paths.downloads_dir, item.id, len(item.files))

    def resume_interrupted(self) -> builtins.list[str]:
        """Restart downloads that were running when Hangar last stopped (not those the person paused)."""
        resumed = []
        for item in self.list():
            row = self._store.query_one("SELECT user_paused, note FROM downloads WHERE id = ?", (item.id,))
            if item.state == DownloadState.PAUSED and row and not row["user_paused"] and not row["note"]:
                logger.info("resuming interrupted download %s (%s)", item.id, item.label)
                self._jobs.resume(item.job_id)
                resumed.append(item.id)
        return resumed

    # -- internals ----------------------------------------------------------------------------------------------
    def _choose(self, detail: ModelDetail, *, file: str | None, quant: str | None) -> FileGroup:
        groups = list(detail.groups)
        if file is not None or quant is not None:
            found = find_group(groups, file=file, quant=quant)
            if found is None:
                raise NotFoundError(
                    f"{detail.summary.repo_id} has no {'file ' + file if file else 'quant ' + str(quant)}.",
                    hint=_choices(groups),
                )
            return found
        models = [g for g in groups if g.kind in MODEL_KINDS]
        if len(models) == 1:
            return models[0]
        if not models:
            raise NotFoundError(f"{detail.summary.repo_id} has no GGUF, MLX or safetensors model files Hangar can use.")
        raise UsageError(f"{detail.summary.repo_id} has {len(models)} quants; choose one.", hint=_choices(groups))

    def _existing(self, repo_id: str, revision: str, group: FileGroup) -> DownloadItem | None:
        wanted = sorted(f.path for f in group.files)
        for row in self._store.query(
            "SELECT * FROM downloads WHERE repo_id = ? AND revision = ? ORDER BY created_at DESC",
            (repo_id, revision),
        ):
            item = self._item(row)
            if sorted(f.path for f in item.files) == wanted and item.state != DownloadState.DONE:
                return item
            if sorted(f.path for f in item.files) == wanted and all(p.exists() for p in item.paths):
                return item
        return None

    def _require_space(self, needed: int, *, label: str) -> None:
        for folder in (self._paths.downloads_dir, self.models_dir):
            free = self.free_space(folder)
            if free - needed < self.reserve:
                raise DiskFullError(
                    f"Not enough disk space for {label}: it needs {needed / 1e9:.2f} GB, "
                    f"{max(free, 0) / 1e9:.2f} GB is free on {folder}.",
                    hint="Free some space or choose a smaller quant.",
                )

    def _runner(self, params: dict[str, Any]) -> Callable[[JobContext], dict[str, Any] | None]:
        download_id = str(params["download_id"])
        return lambda ctx: self._run(download_id, ctx)

    def _run(self, download_id: str, ctx: JobContext) -> dict[str, Any]:
        with self._enqueue_lock:
            pass
        with self._lock:
            self._outcomes.pop(download_id, None)
            self._running.add(download_id)
        try:
            return self._run_locked(download_id, ctx)
        finally:
            with self._lock:
                self._running.discard(download_id)

    def _run_locked(self, download_id: str, ctx: JobContext) -> dict[str, Any]:
        item = self.get(download_id)
        lock = PartLock(self._paths.downloads_dir, download_id)
        if not lock.acquire():
            raise JobError(
                f"{item.label} is being downloaded by another Hangar process.",
                hint="Let that one finish, or close it and resume here.",
            )
        live = LiveProgress()
        with self._lock:
            self._live[download_id] = live

        def on_bytes(count: int) -> None:
            live.add(count)
            now = time.monotonic()
            if now - live.last_emit > 0.1:
                live.last_emit = now
                # The job's change event carries this to listeners (see _job_changed).
                ctx.report(live.done / item.total if item.total else None, f"{live.speed / 1e6:.1f} MB/s")

        def on_error(exc: Exception) -> HangarError:
            return translate_error(exc, item.repo_id, endpoint=self.hub.endpoint, had_token=self.hub.headers()[1])

        had_token = self.hub.headers()[1]
        places: list[DestinationLock] = []
        try:
            for index, remote in enumerate(item.files):
                final = safe_join(item.destination, remote.path)
                part = part_path(self._paths.downloads_dir, download_id, index)
                places.append(self._claim_place(final, remote.path, ctx))
                if not part.exists() and is_installed(final, remote.size, remote.sha256, remote.blob_id):
                    logger.info("%s is already installed and verified; not fetched again", remote.path)
                    on_bytes(remote.size or 0)
                    continue
                target = FileTarget(
                    url=self.hub.file_url(item.repo_id, remote.path, item.revision),
                    part=part,
                    size=remote.size or 0,
                    name=remote.path,
                    sha256=remote.sha256,
                    blob_id=remote.blob_id,
                )
                fetch_file(
                    target,
                    lambda: self.hub.headers()[0],
                    ctx.token,
                    on_bytes,
                    retry=self.retry,
                    options=self.options,
                    free_space=self.free_space,
                    reserve=self.reserve,
                    on_error=on_error,
                    origin=None if self._custom_free_space else (item.repo_id, self.hub.endpoint, had_token),
                )
                logger.info("verified %s (%s)", remote.path, final.name)
            ctx.token.raise_if_cancelled()
            item = self._follow_models_dir(item)
            install_files(self._paths.downloads_dir, download_id, item, self.free_space)
            with self._lock:
                self._outcomes[download_id] = (DownloadState.DONE, "", "")
            return {"paths": [str(p) for p in item.paths]}
        except sqlite3.OperationalError as exc:
            # The database could not be written: on a full disk ("database or disk is full") the download pauses
            # like any other disk-full stop; anything else fails it. Either way it is reported, never left running.
            error: HangarError = (
                DiskFullError(
                    f"The disk is full: Hangar's database could not record {item.label}. "
                    "The download is paused and keeps what it has.",
                    hint="Free some space, then run the same command again.",
                )
                if "full" in str(exc)
                else JobError(f"Hangar's database could not be written ({exc}).")
            )
            self._conclude(download_id, error, ctx)
        except DiskFullError as exc:
            self._conclude(download_id, exc, ctx)
        except CancelledError:
            if not ctx.token.pause_requested:
                remove_parts(self._paths.downloads_dir, download_id)
            raise
        except HangarError as exc:
            self._note(download_id, exc, state=DownloadState.FAILED, note=False)
            raise
        finally:
            for place in places:
                place.release()
            lock.release()
            with self._lock:
                self._live.pop(download_id, None)

    def _claim_place(self, final: Path, name: str, ctx: JobContext) -> DestinationLock:
        """One download per file, across rows and processes: wait while another one fetches it."""
        place = DestinationLock(self.models_dir, final)
        waited = False
        while not place.acquire():
            if not waited:
                logger.info("%s is being downloaded by another download; waiting for it", name)
                ctx.report(None, f"Waiting: {name} is being downloaded by another download.")
                waited = True
            if ctx.token.wait(0.2):
                ctx.token.raise_if_cancelled()
        return place

    def _conclude(self, download_id: str, exc: HangarError, ctx: JobContext) -> NoReturn:
        """Stop the download as paused (disk full) or failed, and raise what the job system expects."""
        paused = isinstance(exc, DiskFullError)
        self._note(download_id, exc, state=DownloadState.PAUSED if paused else DownloadState.FAILED, note=paused)
        if paused:
            ctx.token.cancel(pause=True)
            raise CancelledError("Paused.") from None
        raise exc

    def _note(self, download_id: str, exc: HangarError, *, state: DownloadState, note: bool) -> None:
        with self._lock:
            self._outcomes[download_id] = (state, str(exc), exc.code)
        try:
            if note:
                self._store.execute(
                    "UPDATE downloads SET note = ?, error_code = ? WHERE id = ?", (str(exc), exc.code, download_id)
                )
            else:
                self._store.execute("UPDATE downloads SET error_code = ? WHERE id = ?", (exc.code, download_id))
        except sqlite3.Error as error:
            logger.warning("could not record how download %s ended (%s)", download_id, error)

    def _follow_models_dir(self, item: DownloadItem) -> DownloadItem:
        """Install into the models folder as it is now: it may have moved since the download was queued."""
        current = safe_join(self.models_dir, item.repo_id)
        if current == item.destination or any(p.exists() for p in item.paths):
            return item
        self._store.execute("UPDATE downloads SET destination = ? WHERE id = ?", (str(current), item.id))
        logger.info("download %s now goes to %s (the models folder moved)", item.id, current)
        return dataclasses.replace(item, destination=current)

    def _job_changed(self, job: Job) -> None:
        if job.kind != KIND:
            return
        item = self.find_by_job(job.id)
        if item is not None:
            self._emit(item.id, force=True, job=job)

    def _emit(self, download_id: str, *, force: bool = False, job: Job | None = None) -> None:
        try:
            row = self._store.query_one("SELECT * FROM downloads WHERE id = ?", (download_id,))
            if row is not None:
                self.changed.emit(self._item(row, job))
        except HangarError:
            logger.exception("could not report download %s", download_id)

    def _item(self, row: Any, job: Job | None = None) -> DownloadItem:
        job = job or self._jobs.get(row["job_id"])
        state = STATE_OF_JOB[job.state]
        files = tuple(RemoteFile(**f) for f in json.loads(row["files"]))
        with self._lock:
            live = self._live.get(row["id"])
        if state == DownloadState.DONE:
            done = int(row["total"])
        elif live is not None:
            done = live.done
        else:
            done = _bytes_on_disk(self._paths.downloads_dir, row["id"], len(files))
        message = row["note"] or job.error or ("" if job.message in ("Paused.", "Cancelled.") else job.message)
        if state == DownloadState.RUNNING:
            message = ""
        return DownloadItem(
            id=row["id"],
            job_id=row["job_id"],
            repo_id=row["repo_id"],
            revision=row["revision"],
            label=row["label"],
            files=files,
            destination=Path(row["destination"]),
            state=state,
            total=int(row["total"]),
            done=min(done, int(row["total"])),
            speed=live.speed if live is not None and state == DownloadState.RUNNING else 0.0,
            message=message,
            error_code=row["error_code"] if state in (DownloadState.FAILED, DownloadState.PAUSED) else "",
            created_at=row["created_at"],
        )


def _bytes_on_disk(downloads_dir: Path, download_id: str, count: int) -> int:
    return sum(bytes_present(part_path(downloads_dir, download_id, index)) for index in range(count))


def _choices(groups: list[FileGroup]) -> str:
    quants = [g.quant or g.label for g in groups if g.kind == GroupKind.QUANT]
    return "Available: " + ", ".join(quants) if quants else "Pick a file with --file."


def safe_join_error(group: FileGroup) -> HangarError:
    from core.errors import UnsafePathError

    return UnsafePathError(f"Refused the file name {group.label!r}: it would leave the models folder.")


__all__ = ["DownloadItem", "DownloadManager", "DownloadState"]


def failure_of(item: DownloadItem) -> HangarError:
    """The error that stopped ``item``, as the HangarError class its code names (for the CLI's exit and JSON)."""
    from core import errors

    classes = {
        cls.code: cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, HangarError) and cls is not CancelledError
    }
    return classes.get(item.error_code, HangarError)(item.message or f"The download is {item.state}.")
