"""Side by side: for several model files, the size, the memory at a chosen context (``core.estimate``), the speed
measured on this machine and the perplexity/KL on one text, from the Workshop's records. A data API for the
``compare`` command and the Workshop page; it runs nothing, it reads what evaluations and speed runs stored."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.errors import HangarError
from core.workshop.records import WorkshopRecords, model_key


@dataclass(frozen=True)
class CompareRow:
    model: str  # file name
    path: str
    quant: str
    file_size: int
    memory_bytes: int | None  # what loading at ``ctx`` needs (core.estimate), None when it cannot tell
    ctx: int
    pp_tokens_per_second: float | None = None
    tg_tokens_per_second: float | None = None
    perplexity: float | None = None
    perplexity_error: float | None = None
    kl_divergence: float | None = None
    same_top_p: float | None = None
    made_from: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_rows(
    records: WorkshopRecords,
    models: list[str | Path],
    *,
    text_sha: str | None = None,
    ctx: int = 512,
    memory_ctx: int = 4096,
    hardware_id: str | None = None,
) -> list[CompareRow]:
    """One row per model: stored results for the same text and context (the newest; the newest with KL when
    there is one), the speed at depth 0 on this machine, and the estimated memory at ``memory_ctx``."""
    rows: list[CompareRow] = []
    for model in models:
        path = Path(model_key(model))
        quant, size, memory = _describe(path, memory_ctx)
        evals = records.evals(path, text_sha=text_sha, ctx=ctx) if text_sha else []
        plain = evals[0].result if evals else None
        with_kl = next((e.result for e in evals if e.result.kl_divergence is not None), None)
        speed = records.latest_speed(path, hardware_id)
        first = speed.points[0] if speed and speed.points else None
        lineage = records.lineage(path)
        rows.append(
            CompareRow(
                model=path.name,
                path=str(path),
                quant=quant,
                file_size=size,
                memory_bytes=memory,
                ctx=memory_ctx,
                pp_tokens_per_second=first.pp_tokens_per_second if first else None,
                tg_tokens_per_second=first.tg_tokens_per_second if first else None,
                perplexity=plain.perplexity if plain else None,
                perplexity_error=plain.perplexity_error if plain else None,
                kl_divergence=with_kl.kl_divergence if with_kl else None,
                same_top_p=with_kl.same_top_p if with_kl else None,
                made_from=lineage.source_name if lineage else None,
            )
        )
    return rows


def _describe(path: Path, memory_ctx: int) -> tuple[str, int, int | None]:
    from core.estimate.llama import EngineSettings, estimate_llama
    from core.gguf import read_gguf

    try:
        info = read_gguf(path)
    except (HangarError, OSError):
        return "?", path.stat().st_size if path.exists() else 0, None
    try:
        memory = estimate_llama(info, EngineSettings(context_length=memory_ctx, gpu_layers=0)).total_bytes
    except HangarError:
        memory = None
    return info.quant_type, info.file_size or path.stat().st_size, memory


def reference_of(paths: list[Path]) -> Path:
    """The model the others are measured against for KL: the largest file (the F16 or Q8_0 of the set)."""
    return max(paths, key=lambda p: p.stat().st_size)
