"""Fine-tune values: the settings of a LoRA job, the request the training child gets and the events it sends.

Everything here is a plain, picklable dataclass: it crosses the process boundary between the app and the child
that trains (``backends.finetune_worker.run``, handed to core by the composition root). The job orchestration
lives in ``core.finetune.service``; the checkpoint layout both sides agree on is at the bottom of this module.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from core.errors import FinetuneError
from core.finetune.datasets import Example, TokenStats


class FinetuneBackend(enum.StrEnum):
    MLX = "mlx"  # mlx-lm's LoRA trainer (Apple Silicon; the Linux CPU build in tests)
    PEFT = "peft"  # PyTorch + PEFT (NVIDIA GPUs; CPU torch in tests)


class LrSchedule(enum.StrEnum):
    CONSTANT = "constant"
    COSINE = "cosine"
    LINEAR = "linear"


#: Every linear projection of a llama-style block (attention and MLP): what PEFT's and Unsloth's guides adapt and
#: what mlx-lm adapts when it is given no keys.
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class FinetuneConfig:
    """Hyper-parameters of a LoRA run. The defaults are the PEFT/Unsloth starting point (r 16, alpha 32, lr 2e-4,
    every linear projection, linear decay after a short warm-up); ``core.finetune.presets.default_config`` gives
    each backend its own field defaults (mlx-lm's for MLX)."""

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    #: Linear layers that get adapters (Hugging Face names; the MLX backend maps them).
    target_modules: tuple[str, ...] = ALL_LINEAR
    #: Adapt only the last N transformer blocks; -1 for all of them.
    num_layers: int = -1
    learning_rate: float = 2e-4
    schedule: LrSchedule = LrSchedule.LINEAR
    warmup_steps: int = 5
    iters: int = 200
    #: When set, the run lasts this many passes over the training rows instead of ``iters`` steps.
    epochs: float | None = None
    batch_size: int = 4
    max_length: int = 1024
    seed: int = 0
    checkpoint_every: int = 50
    eval_every: int = 50
    #: Validation batches per evaluation (-1: the whole validation set).
    val_batches: int = 8
    valid_fraction: float = 0.1
    #: Train only on the answers (chat and prompt/completion rows), not on the prompts.
    mask_prompt: bool = True
    #: QLoRA: 4-bit base weights (bitsandbytes on CUDA; with MLX, pick an already quantized model instead).
    quantize_4bit: bool = False
    grad_checkpoint: bool = False

    @property
    def scale(self) -> float:
        """LoRA's multiplier alpha / rank (mlx-lm calls it ``scale``)."""
        return self.alpha / self.rank

    def total_steps(self, train_rows: int) -> int:
        if self.epochs is None:
            return self.iters
        batches_per_epoch = max(1, train_rows // self.batch_size)
        return max(1, math.ceil(self.epochs * batches_per_epoch))

    def validate(self) -> FinetuneConfig:
        problems = []
        if self.rank < 1 or self.rank > 1024:
            problems.append(f"rank must be between 1 and 1024 (got {self.rank})")
        if self.alpha <= 0:
            problems.append("alpha must be positive")
        if not 0.0 <= self.dropout < 1.0:
            problems.append("dropout must be at least 0 and below 1")
        if not self.target_modules:
            problems.append("choose at least one target module")
        if not 0 < self.learning_rate < 1:
            problems.append(f"the learning rate {self.learning_rate} is out of range (try 1e-5 to 1e-3)")
        if self.epochs is None and self.iters < 1:
            problems.append("iterations must be at least 1")
        if self.epochs is not None and self.epochs <= 0:
            problems.append("epochs must be positive")
        if self.batch_size < 1:
            problems.append("batch size must be at least 1")
        if self.max_length < 8:
            problems.append("maximum length must be at least 8 tokens")
        if self.checkpoint_every < 1 or self.eval_every < 1:
            problems.append("checkpoint and evaluation intervals must be at least 1 step")
        if self.warmup_steps < 0:
            problems.append("warm-up steps cannot be negative")
        if self.num_layers == 0 or self.num_layers < -1:
            problems.append("layers must be -1 (all) or a positive number")
        if problems:
            raise FinetuneError("These fine-tune settings are not valid: " + "; ".join(problems) + ".")
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        data["schedule"] = str(self.schedule)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "target_modules" in values:
            values["target_modules"] = tuple(values["target_modules"])
        if "schedule" in values:
            values["schedule"] = LrSchedule(values["schedule"])
        return cls(**values)

    def with_(self, **changes: Any) -> FinetuneConfig:
        return replace(self, **changes)


def learning_rate_at(config: FinetuneConfig, step: int, total_steps: int) -> float:
    """The learning rate for (0-based) optimizer step ``step``: linear warm-up, then the chosen decay.

    Both backends use this one function, so a run's schedule is the same whichever trains it."""
    base = config.learning_rate
    if config.warmup_steps and step < config.warmup_steps:
        return base * (step + 1) / config.warmup_steps
    if config.schedule == LrSchedule.CONSTANT:
        return base
    span = max(1, total_steps - config.warmup_steps)
    progress = min(1.0, max(0.0, (step - config.warmup_steps) / span))
    if config.schedule == LrSchedule.LINEAR:
        return base * (1.0 - progress)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


class ExportFormat(enum.StrEnum):
    MERGED = "merged"  # base + adapter as one model folder (MLX fuse, or PEFT merge_and_unload → safetensors)
    GGUF_LORA = "gguf-lora"  # the adapter as a GGUF LoRA that llama.cpp applies to the base GGUF
    GGUF_BASE = "gguf-base"  # the base model as an F16 GGUF (to pair with the GGUF LoRA)


# -- the jobs -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainJobParams:
    """Everything a training job needs to (re)start, persisted with the job (so it resumes after a restart)."""

    backend: FinetuneBackend
    base_model: str
    dataset: str
    run_dir: str
    config: FinetuneConfig
    total_steps: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": str(self.backend),
            "base_model": self.base_model,
            "dataset": self.dataset,
            "run_dir": self.run_dir,
            "config": self.config.to_dict(),
            "total_steps": self.total_steps,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainJobParams:
        try:
            return cls(
                backend=FinetuneBackend(data.get("backend") or FinetuneBackend.PEFT),
                base_model=str(data.get("base_model", "")),
                dataset=str(data.get("dataset", "")),
                run_dir=str(data.get("run_dir", "")),
                config=FinetuneConfig.from_dict(data.get("config", {})),
                total_steps=int(data.get("total_steps", 0)),
            )
        except (ValueError, TypeError) as exc:
            raise FinetuneError(f"This fine-tune's saved settings cannot be read ({exc}).") from exc


@dataclass(frozen=True)
class ExportJobParams:
    source_job: str
    format: ExportFormat
    output: str

    def to_dict(self) -> dict[str, Any]:
        return {"source_job": self.source_job, "format": str(self.format), "output": self.output}


# -- what the child receives ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class FinetuneRequest:
    backend: FinetuneBackend
    base_model: str  # a Hugging Face / MLX model folder
    data_dir: str  # train.jsonl and valid.jsonl, already validated and split
    run_dir: str  # checkpoints/, adapter/ and the run's log go here
    config: FinetuneConfig
    total_steps: int
    #: Continue from this checkpoint folder (``checkpoint_dir``), or start fresh.
    resume_from: str | None = None
    #: The app's log file: the child sends its own output there (engine chatter never reaches stdout).
    log_file: str | None = None


@dataclass(frozen=True)
class ExportRequest:
    format: ExportFormat
    backend: FinetuneBackend  # the backend that trained the adapter
    base_model: str
    adapter: str
    output: str
    log_file: str | None = None


@dataclass(frozen=True)
class TokenStatsRequest:
    """Count the tokens of dataset rows with the base model's tokenizer and chat template (in the child:
    core cannot load a tokenizer)."""

    base_model: str
    examples: tuple[Example, ...]
    max_length: int
    mask_prompt: bool = True
    log_file: str | None = None


# -- what the child sends back ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingStarted:
    total_steps: int
    start_step: int
    trainable_parameters: int
    total_parameters: int
    train_rows: int
    valid_rows: int
    device: str
    #: The token-length warning from ``core.finetune.datasets.TokenStats`` (rows longer than the maximum length).
    length_warning: str | None = None
    max_tokens: int = 0
    mean_tokens: float = 0.0
    #: The training process (the parent uses its own handle; this is for logs and tests).
    pid: int = 0


@dataclass(frozen=True)
class TrainingProgress:
    step: int
    epoch: float
    train_loss: float
    learning_rate: float
    tokens_per_second: float
    peak_memory_bytes: int
    #: Seconds per step over the last report window (the parent turns it into an ETA).
    seconds_per_step: float
    #: Filled in by the parent, which sees the whole run (resumes included).
    eta_seconds: float | None = None


@dataclass(frozen=True)
class ValidationReport:
    step: int
    val_loss: float


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str


@dataclass(frozen=True)
class TrainingLog:
    message: str
    level: str = "info"


@dataclass(frozen=True)
class TrainingFinished:
    step: int
    adapter_path: str
    #: True when the run stopped on request (a checkpoint of this step was saved first).
    stopped: bool = False


@dataclass(frozen=True)
class ExportFinished:
    path: str


@dataclass(frozen=True)
class TokenStatsReady:
    stats: TokenStats


@dataclass(frozen=True)
class TrainingFailed:
    code: str
    message: str


TrainingEvent = (
    TrainingStarted
    | TrainingProgress
    | ValidationReport
    | CheckpointSaved
    | TrainingLog
    | TrainingFinished
    | TrainingFailed
    | ExportFinished
    | TokenStatsReady
)


def is_final(event: object) -> bool:
    """The event that ends a training, export or token-count child."""
    return isinstance(event, (TrainingFinished, TrainingFailed, ExportFinished, TokenStatsReady))


# -- the checkpoint layout (shared by both backends and the parent) ------------------------------------------
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
STATE_FILE = "trainer_state.json"


@dataclass(frozen=True)
class CheckpointInfo:
    step: int
    path: Path
    extra: dict[str, Any] = field(default_factory=dict)


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:07d}"


def write_checkpoint_state(folder: Path, step: int, **extra: Any) -> None:
    """Written last, so a checkpoint without it (a crash while saving) is ignored."""
    tmp = folder / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps({"step": step, **extra}), encoding="utf-8")
    tmp.replace(folder / STATE_FILE)


def latest_checkpoint(run_dir: str | Path) -> CheckpointInfo | None:
    """The newest complete checkpoint of a run, if any."""
    root = Path(run_dir) / CHECKPOINTS
    best: CheckpointInfo | None = None
    if not root.is_dir():
        return None
    for folder in root.iterdir():
        state = folder / STATE_FILE
        if not state.is_file():
            continue
        try:
            data = json.loads(state.read_text(encoding="utf-8"))
            step = int(data["step"])
        except (ValueError, KeyError, OSError):
            continue
        if best is None or step > best.step:
            best = CheckpointInfo(step, folder, data)
    return best


def read_checkpoint_step(folder: str | Path) -> int:
    try:
        return int(json.loads((Path(folder) / STATE_FILE).read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError) as exc:
        raise FinetuneError(f"The checkpoint {folder} is incomplete ({exc}); it cannot be resumed.") from exc
