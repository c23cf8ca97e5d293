"""Pieces both training backends share: the event reporter, reading the prepared split, tokenising rows the
way mlx-lm does (chat template, prompt masking) and the token-length check before training."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from core.errors import FinetuneError
from core.finetune.datasets import Example, TokenStats, token_stats
from core.finetune.types import FinetuneRequest, TrainingEvent


class Reporter:
    """Sends events to the parent and answers "should I stop?"."""

    def __init__(self, events: Any, cancel: Any) -> None:
        self._events = events
        self._cancel = cancel

    def emit(self, event: TrainingEvent) -> None:
        self._events.put(event)

    def should_stop(self) -> bool:
        return bool(self._cancel.is_set())


class ListReporter:
    """Collects events in-process (benchmarks and direct calls without a parent)."""

    def __init__(self) -> None:
        self.events: list[TrainingEvent] = []
        self.stop = False

    def emit(self, event: TrainingEvent) -> None:
        self.events.append(event)

    def should_stop(self) -> bool:
        return self.stop


def read_records(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_split(request: FinetuneRequest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    folder = Path(request.data_dir)
    train = read_records(folder / "train.jsonl")
    valid_file = folder / "valid.jsonl"
    valid = read_records(valid_file) if valid_file.is_file() else []
    return train, valid


def encode_record(tokenizer: Any, record: dict[str, Any], mask_prompt: bool) -> tuple[list[int], int]:
    """(token ids, index of the first token to learn) — the same tokens mlx-lm's datasets produce."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if "messages" in record or ("prompt" in record and has_template):
        messages = record.get("messages") or [
            {"role": "user", "content": record["prompt"]},
            {"role": "assistant", "content": record["completion"]},
        ]
        if not has_template:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
            return _with_eos(tokenizer, tokenizer.encode(text)), 0
        tokens = list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))
        offset = 0
        if mask_prompt:
            head = tokenizer.apply_chat_template(
                messages[:-1],
                tokenize=True,
                add_generation_prompt=messages[-1]["role"] == "assistant",
                return_dict=False,
            )
            offset = len(head)
        return tokens, offset
    if "prompt" in record:
        prompt = tokenizer.encode(record["prompt"])
        tokens = _with_eos(tokenizer, prompt + tokenizer.encode(record["completion"]))
        return tokens, len(prompt) if mask_prompt else 0
    return _with_eos(tokenizer, tokenizer.encode(record["text"])), 0


def _with_eos(tokenizer: Any, tokens: list[int]) -> list[int]:
    tokens = list(tokens)
    eos = tokenizer.eos_token_id
    if eos is not None and (not tokens or tokens[-1] != eos):
        tokens.append(eos)
    return tokens


def length_stats(tokenizer: Any, records: list[dict[str, Any]], max_length: int, mask_prompt: bool) -> TokenStats:
    examples = [Example(i + 1, r) for i, r in enumerate(records)]
    return token_stats(examples, lambda e: len(encode_record(tokenizer, e.record, mask_prompt)[0]), max_length)


def check_loss(loss: float, step: int, learning_rate: float) -> float:
    """A loss that is not a number means the run has diverged: stop with advice instead of training on."""
    if not math.isfinite(loss):
        raise FinetuneError(
            f"Training diverged at step {step}: the loss became {loss}.",
            hint=f"Lower the learning rate (it was {learning_rate:g}; try a tenth of it) or the LoRA alpha.",
        )
    return loss


class StepTimer:
    """Seconds per step and tokens per second over the steps since the last report."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._steps = 0
        self._tokens = 0

    def add(self, tokens: int) -> None:
        self._steps += 1
        self._tokens += tokens

    def take(self) -> tuple[float, float]:
        elapsed = max(1e-9, time.perf_counter() - self._start)
        per_step = elapsed / max(1, self._steps)
        per_second = self._tokens / elapsed
        self.__init__()  # type: ignore[misc]
        return per_step, per_second
