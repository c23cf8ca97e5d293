"""Fine-tune jobs: validate and split the data, train in a child process, stream progress, cancel and resume.

A run is a ``core.jobs`` job of kind ``FinetuneJobKind.TRAIN`` whose params (``TrainJobParams``) hold everything
needed to (re)start it, so a cancelled, paused, crashed or interrupted run resumes from its last checkpoint, even
after a restart. The job's thread owns one spawned child process (the entry point comes from the composition root;
core never imports a backend). Each progress event is persisted (the loss curves) and announced on
``FinetuneService.events``. ``close`` stops the runs and lets their last writes land before the database closes.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.errors import CancelledError, FinetuneError, HangarError, NotFoundError, error_from_code
from core.events import EventHook
from core.finetune.datasets import CsvColumns, Dataset, TokenStats, load_dataset, split_dataset, write_split
from core.finetune.export import export_request, run_export
from core.finetune.presets import default_config
from core.finetune.runs import FinetuneRun, LossPoint
from core.finetune.types import (
    ADAPTER,
    CheckpointSaved,
    ExportFormat,
    ExportJobParams,
    FinetuneBackend,
    FinetuneConfig,
    FinetuneRequest,
    TokenStatsReady,
    TokenStatsRequest,
    TrainingEvent,
    TrainingFailed,
    TrainingFinished,
    TrainingLog,
    TrainingProgress,
    TrainingStarted,
    TrainJobParams,
    ValidationReport,
    is_final,
    latest_checkpoint,
)
from core.jobs import CancelToken, Job, JobContext, JobKind, JobManager
from core.process import describe_exit, run_child
from core.store import Store

logger = logging.getLogger(__name__)

__all__ = ["FinetuneRun", "FinetuneService", "LossPoint", "adapter_dir", "library_registrar"]

KIND = JobKind.FINETUNE
#: ``register(adapter folder, base model folder) -> library entry id``.
AdapterRegistrar = Callable[[Path, str], str]
#: ``run(request, events_queue, cancel_event)``, executed in the child process.
FinetuneEntry = Callable[[Any, Any, Any], None]

FINETUNE_SCHEMA = [
    """
    CREATE TABLE finetune_points (
        job_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        kind TEXT NOT NULL,            -- 'train' or 'val'
        loss REAL NOT NULL,
        learning_rate REAL,
        tokens_per_second REAL,
        peak_memory INTEGER,
        epoch REAL,
        at REAL NOT NULL,
        PRIMARY KEY (job_id, kind, step)
    );
    CREATE TABLE finetune_log (
        job_id TEXT NOT NULL,
        at REAL NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX finetune_log_by_job ON finetune_log(job_id, at);
    """,
]


class FinetuneService:
    def __init__(
        self,
        store: Store,
        jobs: JobManager,
        adapters_dir: Path,
        entry: FinetuneEntry | None,
        *,
        cancel_grace: float = 10.0,
        register_adapter: AdapterRegistrar | None = None,
        log_file: Path | None = None,
    ) -> None:
        self._store = store
        #: Where the children send their own output (engine chatter); None: their stderr.
        self.log_file = str(log_file) if log_file is not None else None
        #: Whether ``close`` has ended this service's writes (the lock makes the check and a write one step).
        self._write_lock = threading.RLock()
        self._closed = False
        self.jobs = jobs
        self._adapters_dir = adapters_dir
        self.entry = entry
        self.cancel_grace = cancel_grace
        self.register_adapter = register_adapter
        self._step_seconds: dict[str, float] = {}
        #: ``(job_id, event)`` for every event of every run, on the job's thread.
        self.events: EventHook[[str, TrainingEvent]] = EventHook()
        store.migrate("finetune", FINETUNE_SCHEMA)
        jobs.register_runner(KIND, self._runner)

    # -- starting --------------------------------------------------------------------------------------------
    def start(
        self,
        base_model: str | Path,
        dataset: str | Path | Dataset,
        config: FinetuneConfig | None = None,
        *,
        backend: FinetuneBackend | str = FinetuneBackend.PEFT,
        name: str | None = None,
        columns: CsvColumns | None = None,
    ) -> str:
        """Validate everything that can be checked here, write the split data, and queue the job. Without a
        ``config`` the backend's defaults (``core.finetune.presets.default_config``) apply."""
        backend = FinetuneBackend(backend)
        config = (config or default_config(backend)).validate()
        base = Path(base_model).expanduser()
        if not (base / "config.json").is_file():
            raise FinetuneError(
                f"{base} is not a Hugging Face or MLX model folder (it has no config.json).",
                hint="Fine-tuning needs safetensors weights; GGUF files cannot be trained.",
            )
        _check_backend_fits_model(base, backend)
        data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, columns=columns)
        split = split_dataset(data, config.valid_fraction, seed=config.seed)
        if len(split.train) < config.batch_size:
            raise FinetuneError(
                f"The training split has {len(split.train)} rows but the batch size is {config.batch_size}.",
                hint="Lower the batch size or add rows.",
            )
        title = name or f"{base.name} · {Path(data.source).stem}"
        run_dir = self._new_run_dir(title)
        write_split(split, run_dir / "data")
        params = TrainJobParams(
            backend=backend,
            base_model=str(base),
            dataset=str(data.source),
            run_dir=str(run_dir),
            config=config,
            total_steps=config.total_steps(len(split.train)),
        )
        return self.jobs.submit(KIND, f"Fine-tune {title}", params=params.to_dict(), resumable=True)

    def cancel(self, job_id: str) -> None:
        self.jobs.cancel(job_id)

    def resume(self, job_id: str) -> None:
        """Continue a cancelled, paused or failed run from its last checkpoint."""
        self.jobs.resume(job_id)

    def export(self, job_id: str, fmt: ExportFormat | str, output: str | Path | None = None) -> str:
        """Start exporting a finished run (``core.finetune.export``); returns the export job's id. The job's
        result is ``{"path", "format"}`` (and ``library_id`` for a GGUF LoRA)."""
        entry = self._require_entry()
        run = self.run(job_id)
        request = export_request(run, fmt, output, log_file=self.log_file)
        title = f"Export {request.format} of {run.job.title.removeprefix('Fine-tune ')}"
        params = ExportJobParams(job_id, request.format, request.output)
        register = self.register_adapter

        return self.jobs.submit(
            JobKind.FINETUNE_EXPORT,
            title,
            lambda ctx: run_export(ctx, request, entry, register),
            params=params.to_dict(),
        )

    def measure_tokens(
        self,
        base_model: str | Path,
        dataset: str | Path | Dataset,
        max_length: int,
        *,
        mask_prompt: bool = True,
        columns: CsvColumns | None = None,
    ) -> TokenStats:
        """Token lengths of the dataset's rows with the base model's tokenizer (a short-lived child process;
        blocking, so the UI calls it in the background). Rows longer than ``max_length`` keep their lines."""
        entry = self._require_entry()
        data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, columns=columns)
        request = TokenStatsRequest(str(base_model), data.examples, max_length, mask_prompt, self.log_file)
        outcome, exitcode = run_child(
            entry, request, CancelToken(), lambda e: None, is_final=is_final, grace=2.0, name="tokens"
        )
        if isinstance(outcome, TrainingFailed):
            raise error_from_code(outcome.code, outcome.message)
        if not isinstance(outcome, TokenStatsReady):
            raise FinetuneError(f"Counting tokens failed. {describe_exit(exitcode)}")
        return outcome.stats

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        return self.jobs.wait(job_id, timeout)

    # -- history ---------------------------------------------------------------------------------------------
    def runs(self, limit: int = 100, *, curves: bool = False) -> list[FinetuneRun]:
        """The history, newest first. Without ``curves`` each run carries only its last training point (the
        list view's "last loss"), which keeps a long history cheap to show."""
        jobs = self.jobs.list(KIND, limit=limit)
        if curves:
            return [self._to_run(job) for job in jobs]
        last = {
            r["job_id"]: LossPoint(r["step"], r["loss"])
            for r in self._store.query(
                "SELECT job_id, step, loss FROM finetune_points p WHERE kind = 'train' AND step = "
                "(SELECT MAX(step) FROM finetune_points q WHERE q.job_id = p.job_id AND q.kind = 'train')"
            )
        }
        return [self._to_run(job, points=[last[job.id]] if job.id in last else []) for job in jobs]

    def run(self, job_id: str) -> FinetuneRun:
        job = self.jobs.get(job_id)
        if job.kind != KIND:
            raise NotFoundError(f"Job {job_id} is not a fine-tune.")
        return self._to_run(job)

    def log(self, job_id: str) -> list[str]:
        rows = self._store.query("SELECT level, message FROM finetune_log WHERE job_id = ? ORDER BY at", (job_id,))
        return [f"{r['level']}: {r['message']}" if r["level"] != "info" else r["message"] for r in rows]

    def _to_run(self, job: Job, points: list[LossPoint] | None = None) -> FinetuneRun:
        if points is None:
            rows = self._store.query(
                "SELECT step, kind, loss FROM finetune_points WHERE job_id = ? ORDER BY step", (job.id,)
            )
            train = tuple(LossPoint(r["step"], r["loss"]) for r in rows if r["kind"] == "train")
            val = tuple(LossPoint(r["step"], r["loss"]) for r in rows if r["kind"] == "val")
        else:
            train, val = tuple(points), ()
        return FinetuneRun(job, TrainJobParams.from_dict(job.params), train, val)

    # -- the job ---------------------------------------------------------------------------------------------
    def _runner(self, params: dict[str, Any]) -> Callable[[JobContext], dict[str, Any]]:
        typed = TrainJobParams.from_dict(params)
        return lambda ctx: self._train(ctx, typed)

    def _train(self, ctx: JobContext, params: TrainJobParams) -> dict[str, Any]:
        entry = self._require_entry()
        if self._closed:  # queued behind another run when the app closed: start nothing now
            raise CancelledError("Paused.")
        run_dir = Path(params.run_dir)
        checkpoint = latest_checkpoint(run_dir)
        resume_step = checkpoint.step if checkpoint else 0
        # Curves past the checkpoint are replaced by the resumed run's own points.
        self._write("DELETE FROM finetune_points WHERE job_id = ? AND step > ?", (ctx.job_id, resume_step))
        if checkpoint:
            self._log(ctx.job_id, TrainingLog(f"Resuming from the checkpoint at step {checkpoint.step}."))
        request = FinetuneRequest(
            backend=params.backend,
            base_model=params.base_model,
            data_dir=str(run_dir / "data"),
            run_dir=str(run_dir),
            config=params.config,
            total_steps=params.total_steps,
            resume_from=str(checkpoint.path) if checkpoint else None,
            log_file=self.log_file,
        )
        ctx.report(resume_step / request.total_steps, "Starting…")
        return self._supervise(ctx, entry, request, resume_step)

    def _supervise(
        self, ctx: JobContext, entry: FinetuneEntry, request: FinetuneRequest, resume_step: int
    ) -> dict[str, Any]:
        last_step = resume_step

        def on_event(event: TrainingEvent) -> None:
            nonlocal last_step
            if isinstance(event, TrainingProgress):
                last_step = event.step
            self._handle(ctx, request, event)

        outcome, exitcode = run_child(
            entry,
            request,
            ctx.token,
            on_event,
            is_final=is_final,
            grace=self.cancel_grace,
            name=f"finetune-{ctx.job_id}",
        )
        if isinstance(outcome, TrainingFailed):
            raise error_from_code(outcome.code, outcome.message)
        if outcome is None:
            if ctx.token.cancelled:
                raise CancelledError()
            saved = latest_checkpoint(request.run_dir)
            where = f"step {saved.step}" if saved else "the start"
            raise FinetuneError(
                f"Training stopped unexpectedly at step {last_step}. {describe_exit(exitcode)}",
                hint=f"Resume to continue from {where}.",
            )
        assert isinstance(outcome, TrainingFinished)
        if outcome.stopped:
            raise CancelledError("Paused." if ctx.token.pause_requested else "Cancelled.")
        result: dict[str, Any] = {"adapter_path": outcome.adapter_path, "steps": outcome.step}
        if self.register_adapter is not None:
            try:
                result["library_id"] = self.register_adapter(Path(outcome.adapter_path), request.base_model)
                self._log(ctx.job_id, TrainingLog("The adapter is in your library, linked to its base model."))
            except HangarError as exc:  # the adapter is saved either way; the library can add it later
                self._log(ctx.job_id, TrainingLog(f"The adapter could not be added to the library: {exc}", "warning"))
        return result

    def _handle(self, ctx: JobContext, request: FinetuneRequest, event: TrainingEvent) -> None:
        now = time.time()
        total = request.total_steps
        if isinstance(event, TrainingProgress):
            # A moving average of the step time: single steps jump when an evaluation or another program
            # competes for the machine, and an ETA should not.
            previous = self._step_seconds.get(ctx.job_id)
            pace = event.seconds_per_step if previous is None else 0.9 * previous + 0.1 * event.seconds_per_step
            self._step_seconds[ctx.job_id] = pace
            eta = max(0, total - event.step) * pace
            event = replace(event, eta_seconds=eta)
            self._write(
                "INSERT OR REPLACE INTO finetune_points "
                "(job_id, step, kind, loss, learning_rate, tokens_per_second, peak_memory, epoch, at) "
                "VALUES (?, ?, 'train', ?, ?, ?, ?, ?, ?)",
                (
                    ctx.job_id,
                    event.step,
                    event.train_loss,
                    event.learning_rate,
                    event.tokens_per_second,
                    event.peak_memory_bytes,
                    event.epoch,
                    now,
                ),
            )
            ctx.report(
                event.step / total,
                f"Step {event.step}/{total} · loss {event.train_loss:.3f} · ETA {eta:.0f} s",
            )
        elif isinstance(event, ValidationReport) and not math.isfinite(event.val_loss):
            self._log(ctx.job_id, TrainingLog(f"The validation loss at step {event.step} is not a number.", "warning"))
        elif isinstance(event, ValidationReport):
            self._write(
                "INSERT OR REPLACE INTO finetune_points (job_id, step, kind, loss, at) VALUES (?, ?, 'val', ?, ?)",
                (ctx.job_id, event.step, event.val_loss, now),
            )
        elif isinstance(event, TrainingStarted):
            self._log(
                ctx.job_id,
                TrainingLog(
                    f"Training {event.trainable_parameters:,} of {event.total_parameters:,} parameters on "
                    f"{event.device}: {event.train_rows} training rows, {event.valid_rows} validation rows, "
                    f"{event.total_steps} steps. Rows are up to {event.max_tokens} tokens long "
                    f"(mean {event.mean_tokens:.0f})."
                ),
            )
            if event.length_warning:
                self._log(ctx.job_id, TrainingLog(event.length_warning, "warning"))
        elif isinstance(event, CheckpointSaved):
            self._log(ctx.job_id, TrainingLog(f"Checkpoint saved at step {event.step}."))
        elif isinstance(event, TrainingLog):
            self._log(ctx.job_id, event)
            return  # _log announced it
        elif isinstance(event, TrainingFailed):
            self._log(ctx.job_id, TrainingLog(event.message, "error"))
        elif isinstance(event, TrainingFinished):
            verb = "Stopped" if event.stopped else "Finished"
            self._log(ctx.job_id, TrainingLog(f"{verb} at step {event.step}."))
        self.events.emit(ctx.job_id, event)

    def _log(self, job_id: str, entry: TrainingLog) -> None:
        self._write(
            "INSERT INTO finetune_log (job_id, at, level, message) VALUES (?, ?, ?, ?)",
            (job_id, time.time(), entry.level, entry.message),
        )
        self.events.emit(job_id, entry)

    # -- shutting down ---------------------------------------------------------------------------------------
    def close(self, timeout: float | None = None) -> None:
        """Stop this service's jobs before the database closes (``AppContext.close`` calls this before the job
        manager's short shutdown and the store's close). A training run is paused: its child saves a checkpoint
        and stops, or is terminated after ``cancel_grace``; an export is cancelled. Each job's last writes (the
        final log line, the paused state) land before this returns; a job that outlives ``timeout`` (default:
        the grace period plus the child's termination) has its later writes skipped, never sent to a closed
        database."""
        kinds = (JobKind.FINETUNE, JobKind.FINETUNE_EXPORT)
        active = [job for kind in kinds for job in self.jobs.list(kind, limit=50) if job.state.active]
        for job in active:  # queued ones too, so none starts a child after this
            try:
                if job.resumable:
                    self.jobs.pause(job.id)
                else:
                    self.jobs.cancel(job.id)
            except HangarError as exc:
                logger.warning("could not stop job %s: %s", job.id, exc)
        deadline = time.monotonic() + (timeout if timeout is not None else self.cancel_grace + 10.0)
        for job in active:
            self.jobs.wait(job.id, max(0.0, deadline - time.monotonic()))
        with self._write_lock:
            self._closed = True

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        # The lock makes "closed?" and the write one step, so the store cannot close between them.
        with self._write_lock:
            if self._closed:
                logger.info("skipped a write after shutdown: %s", sql.split("(", 1)[0].strip())
                return
            self._store.execute(sql, params)

    def _require_entry(self) -> FinetuneEntry:
        if self.entry is None:
            raise FinetuneError("Fine-tuning is not available in this build (no training backend).")
        return self.entry

    def _new_run_dir(self, title: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", title).strip("-")[:60] or "run"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder = self._adapters_dir / f"{slug}-{stamp}"
        n = 1
        while folder.exists():
            n += 1
            folder = self._adapters_dir / f"{slug}-{stamp}-{n}"
        folder.mkdir(parents=True)
        return folder


def _check_backend_fits_model(base: Path, backend: FinetuneBackend) -> None:
    import json

    try:
        config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FinetuneError(f"{base / 'config.json'} could not be read: {exc}") from exc
    if backend == FinetuneBackend.PEFT and isinstance(config.get("quantization"), dict):
        raise FinetuneError(
            f"{base.name} is quantized for MLX; PyTorch/PEFT cannot train it.",
            hint="Choose the MLX backend (QLoRA on the quantized weights), or a full-precision base model.",
        )


def library_registrar(library: Any) -> AdapterRegistrar:
    """Register finished adapters in ``core.library.service.Library``, linked to the base model's entry when the base
    folder is in the library (a base used straight from a folder leaves the adapter unlinked)."""

    def register(adapter: Path, base_model: str) -> str:
        base = library.find_by_path(Path(base_model))
        entry = library.register_adapter(adapter, base.id if base is not None else None)
        return str(entry.id)

    return register


def adapter_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / ADAPTER
