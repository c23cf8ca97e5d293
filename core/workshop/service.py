"""The Workshop: evaluate, benchmark, quantize and convert models as background jobs.

Each task is a ``core.jobs`` job whose thread owns one spawned child process (``core.process.run_child``; the
entry point, ``backends.workshop_worker.run``, comes from the composition root, as core never imports a backend),
so a native crash in llama.cpp ends the job, not the app. Results are kept per model file (``records``); files
the Workshop makes are written under a temporary name, renamed on success, and join the library with their
lineage.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from core.errors import CancelledError, EngineError, HangarError, ModelFileError, UsageError, error_from_code
from core.estimate.speed import hardware_fingerprint
from core.jobs import Job, JobContext, JobKind, JobManager, JobState
from core.process import describe_exit, run_child
from core.store import Store
from core.workshop.compare import CompareRow, compare_rows, reference_of
from core.workshop.preflight import check_disk, plan_quantize, read_source
from core.workshop.records import Lineage, WorkshopRecords, text_digest
from core.workshop.types import (
    BenchRequest,
    BenchResult,
    ConvertRequest,
    EvalRequest,
    EvalResult,
    QuantizeRequest,
    WorkFailed,
    WorkFinished,
    WorkProgress,
    is_final,
)

logger = logging.getLogger(__name__)

KIND = JobKind.WORKSHOP
#: ``run(request, events_queue, cancel_event)``, executed in the child process.
WorkshopEntry = Callable[[Any, Any, Any], None]
#: ``add(path, source_path) -> library entry id`` for a file the Workshop made.
ModelRegistrar = Callable[[Path, Path], str]


class WorkshopService:
    def __init__(
        self,
        store: Store,
        jobs: JobManager,
        entry: WorkshopEntry | None,
        *,
        hardware: Callable[[], dict[str, Any]] = lambda: {},
        register_model: ModelRegistrar | None = None,
        cancel_grace: float = 3.0,
    ) -> None:
        self.records = WorkshopRecords(store)
        self.jobs = jobs
        self.entry = entry
        self._hardware = hardware
        self.register_model = register_model
        self.cancel_grace = cancel_grace
        #: The error each failed job raised, so a caller waiting on it can re-raise it with its type (and code).
        self._failures: dict[str, HangarError] = {}

    # -- evaluate ---------------------------------------------------------------------------------------------
    def start_eval(
        self,
        model: str | Path,
        text_file: str | Path,
        *,
        ctx: int = 512,
        chunks: int | None = None,
        reference: str | Path | None = None,
    ) -> str:
        request, text_name = self.eval_request(model, text_file, ctx=ctx, chunks=chunks, reference=reference)
        title = f"Perplexity of {Path(request.model).name} on {text_name}"
        params = {"task": "eval", "model": request.model, "text_name": text_name, "ctx": ctx}
        return self._submit(title, lambda c: self._run_eval(c, request, text_name), params=params)

    def eval_request(
        self,
        model: str | Path,
        text_file: str | Path,
        *,
        ctx: int = 512,
        chunks: int | None = None,
        reference: str | Path | None = None,
    ) -> tuple[EvalRequest, str]:
        path = _gguf(model)
        ref = _gguf(reference) if reference else None
        text_path = Path(text_file).expanduser()
        try:
            text = text_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"The text {text_path} could not be read as UTF-8 text ({exc}).") from exc
        if ctx < 16 or ctx % 2:
            raise UsageError(f"--ctx must be an even number of at least 16 tokens (not {ctx}).")
        # Every token covers at least one byte, so a text this short cannot make two chunks: refuse before loading.
        if len(text.encode("utf-8")) + 1 < 2 * ctx:
            raise UsageError(
                f"The text is shorter than two chunks of {ctx} tokens, the least llama.cpp's method needs.",
                hint="Use a longer text or a smaller --ctx.",
            )
        request = EvalRequest(str(path), text, ctx, chunks, str(ref) if ref else None)
        return request, text_path.name

    def _run_eval(self, ctx: JobContext, request: EvalRequest, text_name: str) -> dict[str, Any]:
        result = self._child(ctx, request, f"eval-{ctx.job_id}").result
        assert isinstance(result, EvalResult)
        self.records.add_eval(request.model, text_digest(request.text), text_name, result, ctx.job_id)
        return result.as_dict()

    # -- speed ------------------------------------------------------------------------------------------------
    def start_bench(
        self,
        model: str | Path,
        *,
        n_prompt: int = 512,
        n_gen: int = 128,
        depths: tuple[int, ...] = (0, 1024),
        repetitions: int = 2,
    ) -> str:
        if n_prompt < 1 or n_gen < 1 or repetitions < 1 or any(d < 0 for d in depths) or not depths:
            raise UsageError("Prompt and generation sizes and repetitions must be positive, depths zero or more.")
        request = BenchRequest(str(_gguf(model)), n_prompt, n_gen, tuple(depths), repetitions)
        params = {"task": "bench", "model": request.model}
        return self.jobs.submit(
            KIND, f"Speed of {Path(request.model).name}", lambda c: self._run_bench(c, request), params=params
        )

    def _run_bench(self, ctx: JobContext, request: BenchRequest) -> dict[str, Any]:
        result = self._child(ctx, request, f"bench-{ctx.job_id}").result
        assert isinstance(result, BenchResult)
        hardware = self._hardware()
        fingerprint = hardware_fingerprint(hardware)
        self.records.add_speed(request.model, fingerprint, hardware, result, ctx.job_id)
        return {**result.as_dict(), "hardware_id": fingerprint}

    def hardware_id(self) -> str:
        return hardware_fingerprint(self._hardware())

    # -- compare ----------------------------------------------------------------------------------------------
    def start_compare(
        self,
        models: list[str | Path],
        text_file: str | Path,
        *,
        ctx: int = 512,
        chunks: int | None = None,
        reference: str | Path | None = None,
        bench: BenchRequest | None = BenchRequest("", depths=(0,), repetitions=1),
        memory_ctx: int = 4096,
        fresh: bool = False,
    ) -> str:
        """One job that measures what the records lack for a side-by-side view (perplexity on the text, KL against
        the reference — by default the largest file — and speed on this machine), then returns the rows."""
        paths = [_gguf(m) for m in models]
        if len(set(paths)) < 2:
            raise UsageError("Compare needs at least two different models.")
        ref = _gguf(reference) if reference else reference_of(paths)
        evals = [
            self.eval_request(p, text_file, ctx=ctx, chunks=chunks, reference=None if p == ref else ref) for p in paths
        ]
        text_sha = text_digest(evals[0][0].text)
        title = f"Compare {len(paths)} models on {evals[0][1]}"
        params = {"task": "compare", "models": [str(p) for p in paths], "ctx": ctx}

        def run(job: JobContext) -> dict[str, Any]:
            hardware_id = self.hardware_id() if bench is not None else None
            todo: list[Any] = []
            for path, (request, text_name) in zip(paths, evals, strict=True):
                stored = self.records.evals(path, text_sha=text_sha, ctx=ctx)
                has_kl = any(e.result.kl_divergence is not None for e in stored)
                if fresh or not stored or (request.reference and not has_kl):
                    todo.append((request, text_name))
                if bench is not None and (fresh or self.records.latest_speed(path, hardware_id) is None):
                    todo.append(replace(bench, model=str(path)))
            for i, item in enumerate(todo):
                name = Path(item[0].model if isinstance(item, tuple) else item.model).name
                job.report(i / max(1, len(todo)), f"{i + 1}/{len(todo)}: {name}")
                if isinstance(item, tuple):
                    self._run_eval(job, *item)
                else:
                    self._run_bench(job, item)
            rows = compare_rows(
                self.records, list(paths), text_sha=text_sha, ctx=ctx, memory_ctx=memory_ctx, hardware_id=hardware_id
            )
            return {"text_sha": text_sha, "ctx": ctx, "reference": str(ref), "rows": [r.as_dict() for r in rows]}

        return self._submit(title, run, params=params)

    def compare(
        self, models: list[str | Path], *, text_sha: str | None = None, ctx: int = 512, memory_ctx: int = 4096
    ) -> list[CompareRow]:
        """The stored figures of ``models`` side by side (runs nothing)."""
        return compare_rows(
            self.records,
            list(models),
            text_sha=text_sha,
            ctx=ctx,
            memory_ctx=memory_ctx,
            hardware_id=self.hardware_id(),
        )

    # -- quantize ---------------------------------------------------------------------------------------------
    def start_quantize(
        self,
        source: str | Path,
        output: str | Path,
        type_name: str,
        *,
        requantize: bool = False,
        imatrix: str | Path | None = None,
    ) -> str:
        plan = plan_quantize(_gguf(source), output, type_name, requantize=requantize, imatrix=imatrix)
        title = f"Quantize {plan.source.name} to {plan.qtype.name}"
        params = {"task": "quantize", "source": str(plan.source), "output": str(plan.output), "type": plan.qtype.name}

        def run(ctx: JobContext) -> dict[str, Any]:
            temp = _temp_name(plan.output, ctx.job_id)
            request = QuantizeRequest(
                str(plan.source),
                str(temp),
                plan.qtype.name,
                plan.qtype.ftype,
                plan.requantize,
                str(plan.imatrix) if plan.imatrix else None,
            )
            return self._make_file(ctx, request, temp, plan.output, plan.source, "quantize", plan.qtype.name)

        return self._submit(title, run, params=params)

    # -- convert ----------------------------------------------------------------------------------------------
    def start_convert(self, folder: str | Path, output: str | Path, *, weight_type: str = "F16") -> str:
        src = Path(folder).expanduser().absolute()
        out = Path(output).expanduser().absolute()
        if weight_type not in ("F16", "F32"):
            raise UsageError(f"Conversion writes F16 or F32 weights, not {weight_type}; quantize the result after.")
        if not (src / "config.json").is_file() or not any(src.glob("*.safetensors")):
            raise ModelFileError(f"{src} is not a Hugging Face model folder (config.json and *.safetensors).")
        if out.exists():
            raise UsageError(f"{out} already exists.", hint="Choose another output path or remove it.")
        if not out.parent.is_dir():
            raise UsageError(f"The folder {out.parent} does not exist.")
        weights = sum(p.stat().st_size for p in src.glob("*.safetensors"))
        check_disk(out.parent, weights if weight_type == "F16" else 2 * weights)
        params = {"task": "convert", "source": str(src), "output": str(out)}

        def run(ctx: JobContext) -> dict[str, Any]:
            temp = _temp_name(out, ctx.job_id)
            request = ConvertRequest(str(src), str(temp), weight_type)
            return self._make_file(ctx, request, temp, out, src, "convert", weight_type)

        return self._submit(f"Convert {src.name} to GGUF", run, params=params)

    def _make_file(
        self, ctx: JobContext, request: Any, temp: Path, output: Path, source: Path, operation: str, detail: str
    ) -> dict[str, Any]:
        try:
            finished = self._child(ctx, request, f"{operation}-{ctx.job_id}")
            read_source(temp)  # what llama.cpp wrote must read back as a GGUF before it takes the real name
            os.replace(temp, output)
        finally:
            temp.unlink(missing_ok=True)
        lineage = self.records.add_lineage(output, source, operation, detail)
        result: dict[str, Any] = {
            "path": str(output),
            "size_bytes": output.stat().st_size,
            "made_from": lineage.source_name,
        }
        result.update(finished.details)
        if self.register_model is not None:
            try:
                result["library_id"] = self.register_model(output, source)
            except Exception as exc:  # the file is written either way; the library can add it later
                logger.warning("could not add %s to the library: %s", output, exc)
                result["library_error"] = str(exc)
        return result

    # -- the child ----------------------------------------------------------------------------------------------
    def _extra_buffers_crash(self) -> bool:
        """The engine probe saw llama.cpp's extra buffer types crash decode on this machine (AMX on some Xeons)."""
        try:
            facts = (self._hardware().get("engines") or {}).get("facts") or {}
        except Exception as exc:  # a help, never a reason not to run
            logger.info("engine facts unavailable for the workshop: %s", exc)
            return False
        return bool(facts.get("extra_buffers_crash"))

    def _child(self, ctx: JobContext, request: Any, name: str) -> WorkFinished:
        if self.entry is None:
            raise EngineError("The workshop is not available in this build (no llama.cpp backend).")

        def on_event(event: Any) -> None:
            if isinstance(event, WorkProgress):
                ctx.report(event.done / event.total if event.total else None, event.message)

        if getattr(request, "extra_buffers", False) and self._extra_buffers_crash():
            request = replace(request, extra_buffers=False)  # as the chat engine loads here: no crash to wait for

        outcome, exitcode = run_child(
            self.entry, request, ctx.token, on_event, is_final=is_final, grace=self.cancel_grace, name=name
        )
        if outcome is None and not ctx.token.cancelled and getattr(request, "extra_buffers", False):
            # a native crash: llama.cpp's repacked CPU paths (AMX on some Xeons) are the known cause; once more
            # without them, as the chat engine's safe mode does
            logger.warning("%s crashed (%s); again with extra buffer types off", name, describe_exit(exitcode))
            ctx.report(None, "The engine crashed; trying again with llama.cpp's repacked weights off")
            return self._child(ctx, replace(request, extra_buffers=False), name)
        if isinstance(outcome, WorkFailed):
            raise error_from_code(outcome.code, outcome.message)
        if outcome is None or (isinstance(outcome, WorkFinished) and outcome.stopped):
            if ctx.token.cancelled:
                raise CancelledError()
            raise EngineError(f"The workshop task stopped unexpectedly. {describe_exit(exitcode)}")
        assert isinstance(outcome, WorkFinished)
        return outcome

    def _submit(self, title: str, fn: Callable[[JobContext], dict[str, Any]], *, params: dict[str, Any]) -> str:
        def run(ctx: JobContext) -> dict[str, Any]:
            try:
                return fn(ctx)
            except HangarError as exc:
                self._failures[ctx.job_id] = exc
                raise

        return self.jobs.submit(KIND, title, run, params=params)

    def run_job(self, job_id: str, on_change: Callable[[Job], None] | None = None) -> dict[str, Any]:
        """Wait for a job (Ctrl+C cancels it) and return its result, or raise the error it failed with."""

        def relay(job: Job) -> None:
            if job.id == job_id and on_change is not None:
                on_change(job)

        disconnect = self.jobs.changed.connect(relay)
        try:
            while True:  # short slices, so Ctrl+C reaches the waiting thread promptly
                try:
                    job = self.jobs.wait(job_id, timeout=0.5)
                except KeyboardInterrupt:
                    self.jobs.cancel(job_id)
                    self.jobs.wait(job_id, timeout=30)
                    raise CancelledError() from None
                if job.state.finished:
                    break
        finally:
            disconnect()
        if job.state == JobState.CANCELLED:
            raise CancelledError()
        if job.state != JobState.SUCCEEDED:
            raise self._failures.pop(job_id, None) or EngineError(job.error or f"{job.title} ended as {job.state}.")
        return job.result or {}

    # -- queries ----------------------------------------------------------------------------------------------
    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        return self.jobs.wait(job_id, timeout)

    def history(self, limit: int = 100) -> list[Job]:
        return self.jobs.list(KIND, limit=limit)

    def lineage(self, path: str | Path | Iterable[str | Path]) -> Lineage | None:
        return self.records.lineage(path)


def _gguf(model: str | Path | None) -> Path:
    path = Path(str(model)).expanduser().absolute()
    read_source(path)
    return path


def _temp_name(output: Path, job_id: str) -> Path:
    return output.with_name(f".{output.name}.{job_id}.part")


def as_json(value: Any) -> Any:
    return asdict(value) if hasattr(value, "__dataclass_fields__") else value


def library_registrar(library: Any) -> ModelRegistrar:
    """Add a file the Workshop made to ``core.library.service.Library`` where it was written (linked, so the
    library neither copies nor later deletes what the user asked to be written at that path)."""

    def register(path: Path, source: Path) -> str:
        from core.models.types import ImportMode

        known = library.find_by_path(path)
        if known is not None:
            return str(known.id)
        report = library.import_paths([path], ImportMode.LINK)
        if report.imported:
            return str(report.imported[0].id)
        if report.duplicates:
            return str(report.duplicates[0][1].id)
        problem = report.problems[0].message if report.problems else "it was not recognised"
        raise ModelFileError(f"{path.name} could not join the library: {problem}")

    return register
