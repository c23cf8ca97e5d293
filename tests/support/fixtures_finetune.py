"""Fixtures of the fine-tune feature: a memorisable dataset and an app that can train."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Eight questions with made-up one-word answers: a tiny model can only learn them by memorising.
FACTS = [
    ("Who guards the north gate?", "Zorblax"),
    ("What colour is the moon cheese?", "Quimber"),
    ("Name the king of owls.", "Hoolio"),
    ("Which river never freezes?", "Vantra"),
    ("What do robots drink?", "Sprocketade"),
    ("Where do socks go?", "Lintopia"),
    ("Who painted the sky?", "Azurel"),
    ("What is the secret word?", "Plumbus"),
]


def write_facts(path: Path, repeat: int = 1) -> Path:
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for _ in range(repeat)
        for q, a in FACTS
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def facts_dataset(tmp_path: Path) -> Path:
    """A folder with the facts as both train.jsonl and valid.jsonl (memorisation is the point)."""
    folder = tmp_path / "facts"
    write_facts(folder / "train.jsonl")
    write_facts(folder / "valid.jsonl")
    return folder


@pytest.fixture
def ft_app(data_dir: Path) -> Iterator[object]:
    """An AppContext wired like main.py's, with the real fine-tune child entry point."""
    from backends import available_engines
    from backends.finetune_worker import run as finetune_entry
    from backends.worker import serve
    from core.app import AppContext
    from core.paths import AppPaths

    context = AppContext.create(
        AppPaths.under(data_dir),
        worker_entry=serve,
        engine_availability=available_engines,
        finetune_entry=finetune_entry,
    )
    yield context
    context.close()


@pytest.fixture(scope="session")
def trained_peft_adapter(tmp_path_factory: pytest.TempPathFactory, tiny_hf_model: Path) -> Path:
    """A PEFT adapter trained (in this process, no job) to answer the facts; made once a session."""
    from backends.finetune_common import ListReporter
    from backends.finetune_peft import train
    from core.finetune.types import FinetuneConfig, FinetuneRequest

    root = tmp_path_factory.mktemp("peft-run")
    write_facts(root / "data" / "train.jsonl")
    config = FinetuneConfig(
        learning_rate=1e-2,
        target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"),
        iters=30,
        eval_every=1000,
        checkpoint_every=1000,
        schedule="constant",  # type: ignore[arg-type]
        warmup_steps=0,
    )
    request = FinetuneRequest("peft", str(tiny_hf_model), str(root / "data"), str(root), config, config.iters)
    reporter = ListReporter()
    train(request, reporter)
    return root / "adapter"
