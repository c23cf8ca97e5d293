"""The generated Hugging Face folder is a real model: MLX and transformers both load and run it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.devkit.modelgen import TinyModelConfig
from core.devkit.modelgen_hf import EOS_TOKEN, write_tiny_hf_model

MESSAGES = [{"role": "user", "content": "hello world"}]


@pytest.fixture(scope="module")
def f32_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # float32 so both frameworks compute the same greedy continuation.
    config = TinyModelConfig(weight_type="F32", seed=3)
    return write_tiny_hf_model(tmp_path_factory.mktemp("hf") / "m", config)


def _greedy_mlx(folder: Path, n: int) -> tuple[list[int], list[int]]:
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.generate import generate_step
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = load(str(folder))
    prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True)
    out = []
    steps = generate_step(mx.array(prompt), model, sampler=make_sampler(0.0))
    for (token, _), _ in zip(steps, range(n), strict=False):
        out.append(int(token))
    return list(prompt), out


def test_files_and_config_agree(tiny_hf_model: Path) -> None:
    names = {p.name for p in tiny_hf_model.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    config = json.loads((tiny_hf_model / "config.json").read_text())
    tokenizer = json.loads((tiny_hf_model / "tokenizer.json").read_text())
    from tokenizers import Tokenizer

    assert Tokenizer.from_file(str(tiny_hf_model / "tokenizer.json")).get_vocab_size() == config["vocab_size"]
    assert any(t["content"] == EOS_TOKEN and t["special"] for t in tokenizer["added_tokens"])


def test_mlx_and_transformers_load_and_generate_the_same_tokens(f32_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    mlx_prompt, mlx_tokens = _greedy_mlx(f32_model, 8)
    assert len(mlx_tokens) == 8

    tokenizer = AutoTokenizer.from_pretrained(f32_model)
    model = AutoModelForCausalLM.from_pretrained(f32_model)
    prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert prompt == "<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    assert ids[0].tolist() == mlx_prompt  # same tokenizer behaviour in both stacks
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    tf_tokens = out[0, ids.shape[1] :].tolist()
    assert tf_tokens == mlx_tokens  # same weights read the same way
    assert isinstance(tokenizer.decode(tf_tokens), str)


def test_without_chat_template(tmp_path: Path) -> None:
    folder = write_tiny_hf_model(tmp_path / "plain", TinyModelConfig(chat_template=None, n_vocab=300))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert "chat_template" not in config
    assert json.loads((folder / "config.json").read_text())["vocab_size"] == 300


def test_too_small_vocab_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_vocab"):
        write_tiny_hf_model(tmp_path / "x", TinyModelConfig(n_vocab=100))
