"""The Workshop: evaluate, benchmark, quantize and convert models as background jobs.

Each task is a ``core.jobs`` job whose thread owns one spawned child process (``core.process.run_child``; the
entry point, ``backends.workshop_worker.run``, comes from the composition root, as core never imports a backend),
so a native crash in llama.cpp ends the job, not the app. Results are kept per model file (``records``); files
the Workshop makes are written under a temporary name, renamed on success, and join the library with their
lineage.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.errors import CancelledError, EngineError, ModelFileError, UsageError, error_from_code
from core.jobs import Job, JobContext, JobManager
from core.process import describe_exit, run_child
from core.store import Store
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

KIND = "workshop"
#: ``run(request, events_queue, cancel_event)``, executed in the child process.
WorkshopEntry = Callable[[Any, Any, Any], None]
#: ``add(path, source_path) -> library entry id`` for a file the Workshop made.
ModelRegistrar = Callable[[Path, Path], str]


def hardware_fingerprint(hardware: dict[str, Any]) -> str:
    """A stable id of the machine a speed was measured on: CPU, threads, memory size, GPUs (not free memory)."""
    gpus = [(g.get("name"), g.get("memory_total_bytes") or g.get("total_bytes")) for g in hardware.get("gpus", [])]
    key = (hardware.get("cpu_name"), hardware.get("cpu_threads"), hardware.get("ram_total_bytes"), gpus)
    return hashlib.sha256(repr(key).encode()).hexdigest()[:12]


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
        return self.jobs.submit(KIND, title, lambda c: self._run_eval(c, request, text_name), params=params)

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

        return self.jobs.submit(KIND, title, run, params=params)

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

        return self.jobs.submit(KIND, f"Convert {src.name} to GGUF", run, params=params)

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
    def _child(self, ctx: JobContext, request: Any, name: str) -> WorkFinished:
        if self.entry is None:
            raise EngineError("The workshop is not available in this build (no llama.cpp backend).")

        def on_event(event: Any) -> None:
            if isinstance(event, WorkProgress):
                ctx.report(event.done / event.total if event.total else None, event.message)

        outcome, exitcode = run_child(
            self.entry, request, ctx.token, on_event, is_final=is_final, grace=self.cancel_grace, name=name
        )
        if isinstance(outcome, WorkFailed):
            raise error_from_code(outcome.code, outcome.message)
        if outcome is None or (isinstance(outcome, WorkFinished) and outcome.stopped):
            if ctx.token.cancelled:
                raise CancelledError()
            raise EngineError(f"The workshop task stopped unexpectedly. {describe_exit(exitcode)}")
        assert isinstance(outcome, WorkFinished)
        return outcome

    # -- queries ----------------------------------------------------------------------------------------------
    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        return self.jobs.wait(job_id, timeout)

    def history(self, limit: int = 100) -> list[Job]:
        return self.jobs.list(KIND, limit=limit)

    def lineage(self, path: str | Path) -> Lineage | None:
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
