"""Fine-tune jobs: validate and split the data, train in a child process, stream progress, cancel and resume.

A run is a ``core.jobs`` job of kind ``"finetune"`` whose params hold everything needed to (re)start it, so a
cancelled, paused, crashed or interrupted run resumes from its last checkpoint, even after a restart. The job's
thread owns one spawned child process (the entry point comes from the composition root; core never imports a
backend). Each progress event is persisted (the loss curves) and announced on ``FinetuneService.events``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.errors import CancelledError, FinetuneError, HangarError, NotFoundError, error_from_code
from core.events import EventHook
from core.finetune.datasets import CsvColumns, Dataset, TokenStats, load_dataset, split_dataset, write_split
from core.finetune.types import (
    ADAPTER,
    CheckpointSaved,
    ExportFormat,
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
    ValidationReport,
    is_final,
    latest_checkpoint,
)
from core.jobs import CancelToken, Job, JobContext, JobKind, JobManager
from core.process import describe_exit, run_child
from core.store import Store

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class LossPoint:
    step: int
    loss: float


@dataclass(frozen=True)
class FinetuneRun:
    """A run as the history shows it: the job, its settings and its curves."""

    job: Job
    backend: str
    base_model: str
    dataset: str
    run_dir: Path
    config: FinetuneConfig
    total_steps: int
    train_curve: tuple[LossPoint, ...] = ()
    val_curve: tuple[LossPoint, ...] = ()

    @property
    def adapter_path(self) -> Path | None:
        result = self.job.result or {}
        return Path(result["adapter_path"]) if result.get("adapter_path") else None


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
    ) -> None:
        self._store = store
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
        config: FinetuneConfig = FinetuneConfig(),
        *,
        backend: FinetuneBackend | str = FinetuneBackend.PEFT,
        name: str | None = None,
        columns: CsvColumns | None = None,
    ) -> str:
        """Validate everything that can be checked here, write the split data, and queue the job."""
        backend = FinetuneBackend(backend)
        config.validate()
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
        params = {
            "backend": str(backend),
            "base_model": str(base),
            "dataset": str(data.source),
            "run_dir": str(run_dir),
            "config": config.to_dict(),
            "total_steps": config.total_steps(len(split.train)),
        }
        return self.jobs.submit(KIND, f"Fine-tune {title}", params=params, resumable=True)

    def cancel(self, job_id: str) -> None:
        self.jobs.cancel(job_id)

    def resume(self, job_id: str) -> None:
        """Continue a cancelled, paused or failed run from its last checkpoint."""
        self.jobs.resume(job_id)

    def export(self, job_id: str, fmt: ExportFormat | str, output: str | Path | None = None) -> str:
        """Start exporting a finished run (``core.finetune.export``); returns the export job's id."""
        from core.finetune.export import start_export

        return start_export(self, job_id, fmt, output)

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
        if self.entry is None:
            raise FinetuneError("Fine-tuning is not available in this build (no training backend).")
        data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, columns=columns)
        request = TokenStatsRequest(str(base_model), data.examples, max_length, mask_prompt)
        outcome, exitcode = run_child(
            self.entry, request, CancelToken(), lambda e: None, is_final=is_final, grace=2.0, name="tokens"
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
        p = job.params
        if points is None:
            rows = self._store.query(
                "SELECT step, kind, loss FROM finetune_points WHERE job_id = ? ORDER BY step", (job.id,)
            )
            train = tuple(LossPoint(r["step"], r["loss"]) for r in rows if r["kind"] == "train")
            val = tuple(LossPoint(r["step"], r["loss"]) for r in rows if r["kind"] == "val")
        else:
            train, val = tuple(points), ()
        return FinetuneRun(
            job=job,
            backend=p.get("backend", ""),
            base_model=p.get("base_model", ""),
            dataset=p.get("dataset", ""),
            run_dir=Path(p.get("run_dir", "")),
            config=FinetuneConfig.from_dict(p.get("config", {})),
            total_steps=int(p.get("total_steps", 0)),
            train_curve=train,
            val_curve=val,
        )

    # -- the job ---------------------------------------------------------------------------------------------
    def _runner(self, params: dict[str, Any]) -> Callable[[JobContext], dict[str, Any]]:
        return lambda ctx: self._train(ctx, params)

    def _train(self, ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
        if self.entry is None:
            raise FinetuneError("Fine-tuning is not available in this build (no training backend).")
        run_dir = Path(params["run_dir"])
        checkpoint = latest_checkpoint(run_dir)
        resume_step = checkpoint.step if checkpoint else 0
        # Curves past the checkpoint are replaced by the resumed run's own points.
        self._store.execute("DELETE FROM finetune_points WHERE job_id = ? AND step > ?", (ctx.job_id, resume_step))
        if checkpoint:
            self._log(ctx.job_id, TrainingLog(f"Resuming from the checkpoint at step {checkpoint.step}."))
        request = FinetuneRequest(
            backend=params["backend"],
            base_model=params["base_model"],
            data_dir=str(run_dir / "data"),
            run_dir=str(run_dir),
            config=FinetuneConfig.from_dict(params["config"]),
            total_steps=int(params["total_steps"]),
            resume_from=str(checkpoint.path) if checkpoint else None,
        )
        ctx.report(resume_step / request.total_steps, "Starting…")
        return self._supervise(ctx, request, resume_step)

    def _supervise(self, ctx: JobContext, request: FinetuneRequest, resume_step: int) -> dict[str, Any]:
        assert self.entry is not None
        last_step = resume_step

        def on_event(event: TrainingEvent) -> None:
            nonlocal last_step
            if isinstance(event, TrainingProgress):
                last_step = event.step
            self._handle(ctx, request, event)

        outcome, exitcode = run_child(
            self.entry,
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
            self._store.execute(
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
        elif isinstance(event, ValidationReport):
            self._store.execute(
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
        self._store.execute(
            "INSERT INTO finetune_log (job_id, at, level, message) VALUES (?, ?, ?, ?)",
            (job_id, time.time(), entry.level, entry.message),
        )
        self.events.emit(job_id, entry)

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
