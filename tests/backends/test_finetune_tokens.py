"""Token-length statistics with the base model's real tokenizer, counted in the fine-tune child process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_rows_longer_than_the_maximum_are_reported_by_line(ft_app, tiny_hf_model: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {
            "messages": [
                {"role": "user", "content": "tell me everything"},
                {"role": "assistant", "content": "word " * 200},
            ]
        },
        {"text": "not used"},  # a different shape: skipped with its line, measured rows keep theirs
        {"messages": [{"role": "user", "content": "bye"}, {"role": "assistant", "content": "see you"}]},
    ]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from core.finetune.datasets import load_dataset

    dataset = load_dataset(data, strict=False)
    stats = ft_app.finetune.measure_tokens(tiny_hf_model, dataset, max_length=64)
    tokenizer = AutoTokenizer.from_pretrained(tiny_hf_model)
    expected = [len(tokenizer.apply_chat_template(r["messages"], return_dict=False)) for r in rows if "messages" in r]
    assert stats.count == 3
    assert (stats.min_tokens, stats.max_tokens, stats.total_tokens) == (min(expected), max(expected), sum(expected))
    assert stats.too_long_lines == (2,)
    assert stats.warning is not None and "lines 2" in stats.warning
