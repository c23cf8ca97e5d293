"""Fixtures of the chat feature: a tiny Hugging Face-format model folder, made once a session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_hf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real llama folder (config.json, safetensors, tokenizer.json, ChatML template), random weights."""
    from core.devkit.modelgen_hf import write_tiny_hf_model

    return write_tiny_hf_model(tmp_path_factory.mktemp("hf-models") / "tiny-llama-hf")


@pytest.fixture(scope="session")
def mid_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A larger random GGUF (9 MB, ~1-3k tokens/s here): long greedy replies take seconds, so a test can stop
    one mid-stream without racing the engine."""
    from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf

    config = TinyModelConfig(n_embd=256, n_layer=4, n_ff=1024, n_head=4, n_head_kv=4)
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "mid-llama-F16.gguf", config)


def write_tiny_mlx_adapter(folder: Path, n_layer: int = 2, n_embd: int = 64, kv_dim: int = 32, rank: int = 4) -> Path:
    """A real mlx-lm LoRA adapter (adapter_config.json + adapters.safetensors) for the tiny HF model: rank-4
    updates of q_proj and v_proj with random, non-zero B matrices, so it visibly changes what the model says."""
    import json

    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(5)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "fine_tune_type": "lora",
        "num_layers": n_layer,
        "lora_parameters": {
            "rank": rank,
            "scale": 10.0,
            "dropout": 0.0,
            "keys": ["self_attn.q_proj", "self_attn.v_proj"],
        },
    }
    (folder / "adapter_config.json").write_text(json.dumps(config))
    tensors = {}
    for i in range(n_layer):
        for name, out in (("q_proj", n_embd), ("v_proj", kv_dim)):
            prefix = f"model.layers.{i}.self_attn.{name}"
            tensors[f"{prefix}.lora_a"] = rng.standard_normal((n_embd, rank)).astype(np.float32) * 0.1
            tensors[f"{prefix}.lora_b"] = rng.standard_normal((rank, out)).astype(np.float32) * 0.1
    save_file(tensors, str(folder / "adapters.safetensors"))
    return folder


def write_tiny_gguf_lora(path: Path, n_layer: int = 2, n_embd: int = 64, rank: int = 4) -> Path:
    """A real llama.cpp LoRA adapter GGUF (what convert_lora_to_gguf writes) for the tiny GGUF: rank-4 updates of
    attn_q with random, non-zero B matrices."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(6)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 16.0)
    for i in range(n_layer):
        # numpy shapes are ggml's reversed: A is [in, rank] and B is [rank, out] in ggml terms
        writer.add_tensor(f"blk.{i}.attn_q.weight.lora_a", rng.standard_normal((rank, n_embd)).astype(np.float32) * 0.2)
        writer.add_tensor(f"blk.{i}.attn_q.weight.lora_b", rng.standard_normal((n_embd, rank)).astype(np.float32) * 0.2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
