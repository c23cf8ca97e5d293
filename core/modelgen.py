"""Tiny but real GGUF models, written with the ``gguf`` package.

Tests, benchmarks and the frozen app's smoke test need models that llama.cpp really loads and runs, without any
download. These have random weights (so they babble), a small SentencePiece-style vocabulary with byte fallback,
and a ChatML chat template. Shapes are configurable so benchmarks can build a zoo (GQA, a single KV head, big
vocabularies, quantized weights).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_WORDS = ["the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are", "as", "with", "his", "they", "at", "be", "this", "have", "from", "or", "one", "had", "by", "word", "but", "not", "what", "all", "were", "we", "when", "your", "can", "said", "there", "use", "an", "each", "which", "she", "do", "how", "their", "if", "will", "up", "other", "about", "out", "many", "then", "them", "these", "so", "some", "her", "would", "make", "like", "him", "into", "time", "has", "look", "two", "more", "write", "go", "see", "number", "no", "way", "could", "people", "my", "than", "first", "water", "been", "call", "who", "oil", "its", "now", "find", "long", "down", "day", "did", "get", "come", "made", "may", "part", "hello", "world", "model", "token", "chat", "local", "fast", "memory"]


@dataclass(frozen=True)
class TinyModelConfig:
    arch: str = "llama"
    n_vocab: int = 512
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128
    context_length: int = 2048
    #: "F32", "F16", "Q8_0", "Q4_0" ... for the 2-D weight matrices; norms stay F32.
    weight_type: str = "F16"
    tied_embeddings: bool = False
    chat_template: str | None = CHATML_TEMPLATE
    seed: int = 0
    name: str = "tiny-llama"

    def with_(self, **changes: object) -> TinyModelConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


def _vocabulary(n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    # token types: 1 normal, 2 unknown, 3 control, 6 byte
    tokens = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    types = [2, 3, 3, 3, 3]
    tokens += [f"<0x{i:02X}>" for i in range(256)]
    types += [6] * 256
    pieces = ["▁" + w for w in _WORDS] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces += ["▁" + chr(c) for c in range(ord("a"), ord("z") + 1)] + ["▁"]
    i = 0
    while len(tokens) < n_vocab:
        piece = pieces[i] if i < len(pieces) else f"▁w{i}"
        if piece not in tokens:
            tokens.append(piece)
            types.append(1)
        i += 1
    if len(tokens) > n_vocab:
        raise ValueError(f"n_vocab must be at least {len(tokens)}")
    scores = [0.0] * 261 + [-float(i) for i in range(len(tokens) - 261)]
    return tokens, scores, types


def write_tiny_gguf(path: Path, config: TinyModelConfig = TinyModelConfig()) -> Path:
    """Write a loadable llama-architecture GGUF to ``path`` and return it."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(config.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), config.arch)
    head_dim = config.n_embd // config.n_head
    writer.add_name(config.name)
    writer.add_context_length(config.context_length)
    writer.add_embedding_length(config.n_embd)
    writer.add_block_count(config.n_layer)
    writer.add_feed_forward_length(config.n_ff)
    writer.add_head_count(config.n_head)
    writer.add_head_count_kv(config.n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    qtype = gguf.GGMLQuantizationType[config.weight_type]
    writer.add_file_type(
        {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9}.get(config.weight_type, 1)
    )

    tokens, scores, types = _vocabulary(config.n_vocab)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(4 if config.chat_template else 2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    if config.chat_template:
        writer.add_chat_template(config.chat_template)

    def matrix(rows: int, cols: int) -> None:
        return (rng.standard_normal((rows, cols)) * (1.0 / np.sqrt(cols))).astype(np.float32)

    def add(name: str, data: np.ndarray) -> None:
        if data.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, data.astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, data.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)

    n_kv = config.n_head_kv * head_dim
    add("token_embd.weight", matrix(config.n_vocab, config.n_embd))
    for i in range(config.n_layer):
        add(f"blk.{i}.attn_norm.weight", np.ones(config.n_embd, dtype=np.float32))
        add(f"blk.{i}.attn_q.weight", matrix(config.n_embd, config.n_embd))
        add(f"blk.{i}.attn_k.weight", matrix(n_kv, config.n_embd))
        add(f"blk.{i}.attn_v.weight", matrix(n_kv, config.n_embd))
        add(f"blk.{i}.attn_output.weight", matrix(config.n_embd, config.n_embd))
        add(f"blk.{i}.ffn_norm.weight", np.ones(config.n_embd, dtype=np.float32))
        add(f"blk.{i}.ffn_gate.weight", matrix(config.n_ff, config.n_embd))
        add(f"blk.{i}.ffn_up.weight", matrix(config.n_ff, config.n_embd))
        add(f"blk.{i}.ffn_down.weight", matrix(config.n_embd, config.n_ff))
    add("output_norm.weight", np.ones(config.n_embd, dtype=np.float32))
    if not config.tied_embeddings:
        add("output.weight", matrix(config.n_vocab, config.n_embd))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
