"""Convert a Hugging Face llama folder (safetensors + byte-level BPE ``tokenizer.json``) to a GGUF llama.cpp loads.

A small cousin of llama.cpp's ``convert_hf_to_gguf.py`` for the llama architecture only, F32/F16 weights: enough
to chat, in llama.cpp, with a model Hangar fine-tuned from a safetensors base (the GGUF LoRA adapter from
``backends.lora_gguf`` is applied on top of this file). Only numpy, safetensors and gguf are used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import UnsupportedModelError

#: Hugging Face tensor name (within a block) -> GGUF name, for the llama architecture.
BLOCK_TENSORS = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
TOP_TENSORS = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}


def gguf_tensor_name(hf_module: str) -> str | None:
    """``model.layers.3.self_attn.q_proj`` -> ``blk.3.attn_q`` (no ``.weight``); None if it has no GGUF twin."""
    if hf_module in TOP_TENSORS:
        return TOP_TENSORS[hf_module]
    parts = hf_module.split(".")
    if len(parts) >= 4 and parts[0] == "model" and parts[1] == "layers" and parts[2].isdigit():
        inner = ".".join(parts[3:])
        if inner in BLOCK_TENSORS:
            return f"blk.{parts[2]}.{BLOCK_TENSORS[inner]}"
    return None


def permute_rows(weights: Any, n_head: int) -> Any:
    """llama.cpp orders the rows of Q and K for interleaved RoPE; Hugging Face uses halves (rotate_half)."""
    rows = weights.shape[0]
    return weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def read_config(folder: Path) -> dict[str, Any]:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        raise UnsupportedModelError(
            f"Only llama-architecture models convert to GGUF here (this one is {config.get('model_type')!r})."
        )
    return config


def convert_hf_to_gguf(folder: str | Path, output: str | Path, *, weight_type: str = "F16") -> Path:
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    folder, output = Path(folder), Path(output)
    config = read_config(folder)
    n_head = int(config["num_attention_heads"])
    n_head_kv = int(config.get("num_key_value_heads", n_head))
    n_embd = int(config["hidden_size"])
    writer = gguf.GGUFWriter(str(output), "llama")
    writer.add_name(str(config.get("_name_or_path") or folder.name))
    writer.add_context_length(int(config.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(n_embd)
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(int(config.get("head_dim", n_embd // n_head)))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-5)))
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_file_type(0 if weight_type == "F32" else 1)
    _add_tokenizer(writer, folder, config)

    tensors: dict[str, Any] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(str(shard)))
    float_type = np.float32 if weight_type == "F32" else np.float16
    for name, data in tensors.items():
        if not name.endswith(".weight"):
            continue
        gguf_name = gguf_tensor_name(name[: -len(".weight")])
        if gguf_name is None:
            continue
        data = np.asarray(data, dtype=np.float32)
        if gguf_name.endswith("attn_q"):
            data = permute_rows(data, n_head)
        elif gguf_name.endswith("attn_k"):
            data = permute_rows(data, n_head_kv)
        writer.add_tensor(gguf_name + ".weight", data if data.ndim == 1 else data.astype(float_type))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return output


def _add_tokenizer(writer: Any, folder: Path, config: dict[str, Any]) -> None:
    """A byte-level BPE ``tokenizer.json`` as llama.cpp's "gpt2" tokenizer model."""
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    model = data.get("model", {})
    if model.get("type") != "BPE":
        raise UnsupportedModelError("Only byte-level BPE tokenizers convert to GGUF here.")
    vocab: dict[str, int] = dict(model["vocab"])
    special: set[int] = set()
    for added in data.get("added_tokens", []):
        vocab[added["content"]] = int(added["id"])
        if added.get("special"):
            special.add(int(added["id"]))
    size = int(config.get("vocab_size", max(vocab.values()) + 1))
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [5] * size  # gguf token types: 1 normal, 3 control, 4 user-defined, 5 unused
    for token, index in vocab.items():
        if index < size:
            tokens[index] = token
            types[index] = 3 if index in special else (4 if token.startswith("<extra_") else 1)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for key, add in (
        ("bos_token_id", writer.add_bos_token_id),
        ("eos_token_id", writer.add_eos_token_id),
        ("pad_token_id", writer.add_pad_token_id),
    ):
        if isinstance(config.get(key), int):
            add(config[key])
    writer.add_add_bos_token(False)
    tokenizer_config = folder / "tokenizer_config.json"
    if tokenizer_config.is_file():
        template = json.loads(tokenizer_config.read_text(encoding="utf-8")).get("chat_template")
        if isinstance(template, str):
            writer.add_chat_template(template)
