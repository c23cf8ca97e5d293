"""Tiny but real Hugging Face-format llama folders (safetensors + tokenizer.json), written without any engine.

``mlx_lm.load`` and ``transformers.AutoModelForCausalLM`` both load these folders, so MLX chat, fine-tuning
and the smoke tests run on a model made in a fraction of a second. Weights are random (the model babbles); the
tokenizer is a byte-level BPE trained on a small word list, with ChatML special tokens and a ChatML chat
template. Shapes come from the same ``TinyModelConfig`` as ``core.devkit.modelgen.write_tiny_gguf``.

Only numpy, safetensors and tokenizers are used here (no torch, no transformers), so core stays engine-free.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.devkit.modelgen import CHATML_TEMPLATE, TinyModelConfig

#: Special tokens, in id order (ids 0..3). ``<|im_end|>`` ends a ChatML turn, so it is the EOS token.
BOS_TOKEN = "<s>"
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<pad>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, "<|im_start|>", EOS_TOKEN)

_CORPUS_TEXT = (
    "the of and to in is you that it he was for on are as with his they at be this have from or one had by "
    "word but not what all were we when your can said there use an each which she do how their if will up "
    "other about out many then them these so some her would make like him into time has look two more write "
    "go see number no way could people my than first water been call who oil its now find long down day did "
    "get come made may part hello world model token chat local fast memory json true false null user "
    "assistant system python code def return print import class"
)


def _build_tokenizer(n_vocab: int) -> object:
    """A byte-level BPE tokenizer with exactly ``n_vocab`` entries (specials + 256 bytes + merges)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    minimum = len(SPECIAL_TOKENS) + 256
    if n_vocab < minimum:
        raise ValueError(f"n_vocab must be at least {minimum} for a byte-level vocabulary")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=n_vocab,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repeat the words so common ones merge into whole-word tokens; punctuation keeps JSON cheap to write.
    corpus = [_CORPUS_TEXT] * 8
    corpus += ['{"a": 1, "b": [true, false, null]}', "def f(x):\n    return x\n"]
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    # ByteLevel post-processing keeps offsets right; BOS is added by the chat template, not the tokenizer.
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    # Fill up to n_vocab if the corpus ran out of merges, so config.vocab_size always matches the tokenizer.
    filler = 0
    while tokenizer.get_vocab_size() < n_vocab:
        tokenizer.add_tokens([f"<extra_{filler}>"])
        filler += 1
    return tokenizer


def _weights(config: TinyModelConfig) -> dict[str, object]:
    import numpy as np

    rng = np.random.default_rng(config.seed)
    dtype = np.float32 if config.weight_type == "F32" else np.float16
    head_dim = config.n_embd // config.n_head
    n_kv = config.n_head_kv * head_dim

    def matrix(rows: int, cols: int) -> object:
        return (rng.standard_normal((rows, cols)) * (1.0 / np.sqrt(cols))).astype(dtype)

    def ones(n: int) -> object:
        return np.ones(n, dtype=dtype)

    tensors: dict[str, object] = {"model.embed_tokens.weight": matrix(config.n_vocab, config.n_embd)}
    for i in range(config.n_layer):
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = ones(config.n_embd)
        tensors[p + "self_attn.q_proj.weight"] = matrix(config.n_embd, config.n_embd)
        tensors[p + "self_attn.k_proj.weight"] = matrix(n_kv, config.n_embd)
        tensors[p + "self_attn.v_proj.weight"] = matrix(n_kv, config.n_embd)
        tensors[p + "self_attn.o_proj.weight"] = matrix(config.n_embd, config.n_embd)
        tensors[p + "post_attention_layernorm.weight"] = ones(config.n_embd)
        tensors[p + "mlp.gate_proj.weight"] = matrix(config.n_ff, config.n_embd)
        tensors[p + "mlp.up_proj.weight"] = matrix(config.n_ff, config.n_embd)
        tensors[p + "mlp.down_proj.weight"] = matrix(config.n_embd, config.n_ff)
    tensors["model.norm.weight"] = ones(config.n_embd)
    if not config.tied_embeddings:
        tensors["lm_head.weight"] = matrix(config.n_vocab, config.n_embd)
    return tensors


def write_tiny_hf_model(folder: Path, config: TinyModelConfig = TinyModelConfig()) -> Path:
    """Write a loadable Hugging Face llama folder to ``folder`` (created if needed) and return it.

    ``config.weight_type`` "F32" writes float32 weights; anything else writes float16.
    ``config.chat_template`` None writes a tokenizer config without a chat template (to test the fallback).
    """
    from safetensors.numpy import save_file

    if config.arch != "llama":
        raise ValueError("write_tiny_hf_model only writes the llama architecture")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(config.n_vocab)
    tokenizer.save(str(folder / "tokenizer.json"))  # type: ignore[attr-defined]
    vocab = tokenizer.get_vocab()  # type: ignore[attr-defined]
    bos_id, eos_id, pad_id = vocab[BOS_TOKEN], vocab[EOS_TOKEN], vocab[PAD_TOKEN]

    torch_dtype = "float32" if config.weight_type == "F32" else "float16"
    model_config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": config.n_embd,
        "intermediate_size": config.n_ff,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.n_head_kv,
        "head_dim": config.n_embd // config.n_head,
        "max_position_embeddings": config.context_length,
        "vocab_size": config.n_vocab,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": config.tied_embeddings,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "torch_dtype": torch_dtype,
        "dtype": torch_dtype,
        "initializer_range": 0.02,
        "use_cache": True,
        "_name_or_path": config.name,
    }
    _write_json(folder / "config.json", model_config)
    _write_json(
        folder / "generation_config.json",
        {"bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": pad_id, "do_sample": False},
    )
    tokenizer_config: dict[str, object] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "pad_token": PAD_TOKEN,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": config.context_length,
        "added_tokens_decoder": {
            str(vocab[token]): {
                "content": token,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "single_word": False,
                "special": True,
            }
            for token in SPECIAL_TOKENS
        },
    }
    if config.chat_template:
        tokenizer_config["chat_template"] = config.chat_template
    _write_json(folder / "tokenizer_config.json", tokenizer_config)
    _write_json(
        folder / "special_tokens_map.json",
        {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": PAD_TOKEN},
    )
    save_file(_weights(config), str(folder / "model.safetensors"), metadata={"format": "pt"})  # type: ignore[arg-type]
    return folder


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


__all__ = ["CHATML_TEMPLATE", "EOS_TOKEN", "TinyModelConfig", "write_tiny_hf_model"]
