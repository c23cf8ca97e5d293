"""Fixtures of the chat feature: a tiny Hugging Face-format model folder, made once a session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_hf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real llama folder (config.json, safetensors, tokenizer.json, ChatML template), random weights."""
    from core.modelgen_hf import write_tiny_hf_model

    return write_tiny_hf_model(tmp_path_factory.mktemp("hf-models") / "tiny-llama-hf")


@pytest.fixture(scope="session")
def mid_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A larger random GGUF (9 MB, ~1-3k tokens/s here): long greedy replies take seconds, so a test can stop
    one mid-stream without racing the engine."""
    from core.modelgen import TinyModelConfig, write_tiny_gguf

    config = TinyModelConfig(n_embd=256, n_layer=4, n_ff=1024, n_head=4, n_head_kv=4)
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "mid-llama-F16.gguf", config)
