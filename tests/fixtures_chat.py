"""Fixtures of the chat feature: a tiny Hugging Face-format model folder, made once a session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_hf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real llama folder (config.json, safetensors, tokenizer.json, ChatML template), random weights."""
    from core.modelgen_hf import write_tiny_hf_model

    return write_tiny_hf_model(tmp_path_factory.mktemp("hf-models") / "tiny-llama-hf")
