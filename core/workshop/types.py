"""The Workshop's values: llama.cpp's quant types, the requests a workshop child process runs, the events it sends
back and the results it produces. Plain frozen dataclasses: they cross the process boundary by pickling."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class QuantType:
    name: str
    ftype: int  # llama_ftype in llama.h
    bits_per_weight: float  # about, for the size preflight (llama-quantize's own table)
    needs_imatrix: bool = False


#: The targets ``llama-quantize`` offers (``tools/quantize/quantize.cpp``), with llama.h's ftype numbers.
QUANT_TYPES: tuple[QuantType, ...] = (
    QuantType("F32", 0, 32.0),
    QuantType("F16", 1, 16.0),
    QuantType("BF16", 32, 16.0),
    QuantType("Q8_0", 7, 8.5),
    QuantType("Q6_K", 18, 6.56),
    QuantType("Q5_K_M", 17, 5.69),
    QuantType("Q5_K_S", 16, 5.54),
    QuantType("Q5_1", 9, 6.0),
    QuantType("Q5_0", 8, 5.5),
    QuantType("Q4_K_M", 15, 4.89),
    QuantType("Q4_K_S", 14, 4.58),
    QuantType("Q4_1", 3, 5.0),
    QuantType("Q4_0", 2, 4.5),
    QuantType("IQ4_NL", 25, 4.5),
    QuantType("IQ4_XS", 30, 4.25),
    QuantType("Q3_K_L", 13, 4.27),
    QuantType("Q3_K_M", 12, 3.91),
    QuantType("Q3_K_S", 11, 3.5),
    QuantType("IQ3_M", 27, 3.66),
    QuantType("IQ3_S", 26, 3.44),
    QuantType("IQ3_XS", 22, 3.3),
    QuantType("IQ3_XXS", 23, 3.06, needs_imatrix=True),
    QuantType("Q2_K", 10, 3.0),
    QuantType("Q2_K_S", 21, 2.96, needs_imatrix=True),
    QuantType("IQ2_M", 29, 2.7, needs_imatrix=True),
    QuantType("IQ2_S", 28, 2.5, needs_imatrix=True),
    QuantType("IQ2_XS", 20, 2.31, needs_imatrix=True),
    QuantType("IQ2_XXS", 19, 2.06, needs_imatrix=True),
    QuantType("IQ1_M", 31, 1.75, needs_imatrix=True),
    QuantType("IQ1_S", 24, 1.56, needs_imatrix=True),
    QuantType("TQ2_0", 37, 2.06),
    QuantType("TQ1_0", 36, 1.69),
)
_ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}
#: Source file types that quantize without losing anything already lost.
FULL_PRECISION = frozenset({"F32", "F16", "BF16", "ALL_F32"})


def quant_type(name: str) -> QuantType | None:
    wanted = _ALIASES.get(name.strip().upper(), name.strip().upper())
    return next((q for q in QUANT_TYPES if q.name == wanted), None)


class Task(enum.StrEnum):
    EVAL = "eval"
    BENCH = "bench"
    QUANTIZE = "quantize"
    CONVERT = "convert"


# -- requests (parent -> child) ------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalRequest:
    model: str
    text: str
    ctx: int = 512
    chunks: int | None = None  # None: every whole chunk of the text
    reference: str | None = None
    threads: int | None = None
    scratch_dir: str | None = None  # where the reference's log-probabilities wait for the second pass
    extra_buffers: bool = True  # False: llama.cpp's repacked CPU weights (AMX, CPU_REPACK) off, after a crash


@dataclass(frozen=True)
class BenchRequest:
    model: str
    n_prompt: int = 512
    n_gen: int = 128
    depths: tuple[int, ...] = (0, 1024)
    repetitions: int = 2
    threads: int | None = None
    extra_buffers: bool = True


@dataclass(frozen=True)
class QuantizeRequest:
    source: str
    output: str  # the temporary name; the parent renames it when the child reports success
    type_name: str
    ftype: int
    requantize: bool = False
    imatrix: str | None = None
    threads: int | None = None


@dataclass(frozen=True)
class ConvertRequest:
    folder: str
    output: str  # the temporary name, as for quantize
    weight_type: str = "F16"


WorkshopRequest = EvalRequest | BenchRequest | QuantizeRequest | ConvertRequest


# -- results ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalResult:
    """What ``llama-perplexity`` prints, for the same method (and, with a reference, its KL-divergence block)."""

    perplexity: float
    perplexity_error: float
    ctx: int
    chunks: int
    tokens_scored: int
    text_tokens: int
    seconds: float
    reference: str | None = None
    reference_perplexity: float | None = None
    kl_divergence: float | None = None
    kl_divergence_error: float | None = None
    same_top_p: float | None = None  # share of positions whose most likely token is the reference's
    rms_delta_p: float | None = None  # root mean square of p(correct) - p_ref(correct)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SpeedPoint:
    depth: int  # tokens already in the context
    pp_tokens_per_second: float
    tg_tokens_per_second: float


@dataclass(frozen=True)
class BenchResult:
    n_prompt: int
    n_gen: int
    threads: int
    points: tuple[SpeedPoint, ...]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- events (child -> parent) ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkProgress:
    done: int
    total: int
    message: str


@dataclass(frozen=True)
class WorkFailed:
    code: str
    message: str


@dataclass(frozen=True)
class WorkFinished:
    """The end of a task: ``result`` is an ``EvalResult``/``BenchResult``, or None for quantize and convert."""

    result: EvalResult | BenchResult | None = None
    stopped: bool = False  # the child stopped on a cancel
    details: dict[str, Any] = field(default_factory=dict)


WorkEvent = WorkProgress | WorkFailed | WorkFinished


def is_final(event: object) -> bool:
    return isinstance(event, WorkFailed | WorkFinished)
