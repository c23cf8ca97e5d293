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

_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "he",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "by",
    "word",
    "but",
    "not",
    "what",
    "all",
    "were",
    "we",
    "when",
    "your",
    "can",
    "said",
    "there",
    "use",
    "an",
    "each",
    "which",
    "she",
    "do",
    "how",
    "their",
    "if",
    "will",
    "up",
    "other",
    "about",
    "out",
    "many",
    "then",
    "them",
    "these",
    "so",
    "some",
    "her",
    "would",
    "make",
    "like",
    "him",
    "into",
    "time",
    "has",
    "look",
    "two",
    "more",
    "write",
    "go",
    "see",
    "number",
    "no",
    "way",
    "could",
    "people",
    "my",
    "than",
    "first",
    "water",
    "been",
    "call",
    "who",
    "oil",
    "its",
    "now",
    "find",
    "long",
    "down",
    "day",
    "did",
    "get",
    "come",
    "made",
    "may",
    "part",
    "hello",
    "world",
    "model",
    "token",
    "chat",
    "local",
    "fast",
    "memory",
]


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
    #: Mixture of experts (llama/Mixtral layout): experts per layer and experts used per token; 0 = dense.
    n_expert: int = 0
    n_expert_used: int = 0
    #: Attention head size; None = n_embd // n_head. gemma-style models decouple it from n_embd.
    head_dim: int | None = None
    #: Sliding-window size for ``arch="gemma3"`` (5 of every 6 layers use it, as in Gemma 3).
    sliding_window: int = 0
    #: ``<arch>.pooling_type`` (1 mean, 2 cls, 3 last): set, the file is an embedding model (Qwen3-Embedding's shape).
    pooling_type: int | None = None

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
    seen = set(tokens)  # a set: a 256k-token vocabulary must not take quadratic time
    i = 0
    while len(tokens) < n_vocab:
        piece = pieces[i] if i < len(pieces) else f"▁w{i}"
        if piece not in seen:
            seen.add(piece)
            tokens.append(piece)
            types.append(1)
        i += 1
    if len(tokens) > n_vocab:
        raise ValueError(f"n_vocab must be at least {len(tokens)}")
    scores = [0.0] * 261 + [-float(i) for i in range(len(tokens) - 261)]
    return tokens, scores, types


def write_tiny_gguf(path: Path, config: TinyModelConfig = TinyModelConfig()) -> Path:
    """Write a loadable GGUF (``llama``, llama with experts, or ``gemma3``) to ``path`` and return it."""
    if config.arch not in ("llama", "gemma3"):
        raise ValueError(f"write_tiny_gguf writes llama or gemma3 models, not {config.arch!r}")
    import gguf
    import numpy as np

    rng = np.random.default_rng(config.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), config.arch)
    head_dim = config.head_dim or config.n_embd // config.n_head
    gemma = config.arch == "gemma3"
    writer.add_name(config.name)
    writer.add_context_length(config.context_length)
    writer.add_embedding_length(config.n_embd)
    writer.add_block_count(config.n_layer)
    writer.add_feed_forward_length(config.n_ff)
    writer.add_head_count(config.n_head)
    writer.add_head_count_kv(config.n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    if config.n_expert:
        writer.add_expert_count(config.n_expert)
        writer.add_expert_used_count(config.n_expert_used or 1)
    if gemma:
        writer.add_sliding_window(config.sliding_window or 512)
    if config.pooling_type is not None:
        writer.add_pooling_type(gguf.PoolingType(config.pooling_type))
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    qtype = gguf.GGMLQuantizationType[config.weight_type]
    writer.add_file_type(
        {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "BF16": 32}.get(
            config.weight_type, 1
        )
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

    def matrix(*shape: int) -> np.ndarray:
        # float32 draws: a zoo model with a 256k vocabulary must not spend seconds making float64 noise
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(1.0 / np.sqrt(shape[-1]))

    def add(name: str, data: np.ndarray, *, f32: bool = False) -> None:
        if data.ndim == 1 or f32 or qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, data.astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, data.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)

    n_kv = config.n_head_kv * head_dim
    n_q = config.n_head * head_dim
    ones = np.ones(config.n_embd, dtype=np.float32)
    add("token_embd.weight", matrix(config.n_vocab, config.n_embd))
    for i in range(config.n_layer):
        add(f"blk.{i}.attn_norm.weight", ones)
        add(f"blk.{i}.attn_q.weight", matrix(n_q, config.n_embd))
        add(f"blk.{i}.attn_k.weight", matrix(n_kv, config.n_embd))
        add(f"blk.{i}.attn_v.weight", matrix(n_kv, config.n_embd))
        add(f"blk.{i}.attn_output.weight", matrix(config.n_embd, n_q))
        add(f"blk.{i}.ffn_norm.weight", ones)
        if gemma:
            add(f"blk.{i}.attn_q_norm.weight", np.ones(head_dim, dtype=np.float32))
            add(f"blk.{i}.attn_k_norm.weight", np.ones(head_dim, dtype=np.float32))
            add(f"blk.{i}.post_attention_norm.weight", ones)
            add(f"blk.{i}.post_ffw_norm.weight", ones)
        if config.n_expert:
            add(f"blk.{i}.ffn_gate_inp.weight", matrix(config.n_expert, config.n_embd), f32=True)
            add(f"blk.{i}.ffn_gate_exps.weight", matrix(config.n_expert, config.n_ff, config.n_embd))
            add(f"blk.{i}.ffn_up_exps.weight", matrix(config.n_expert, config.n_ff, config.n_embd))
            add(f"blk.{i}.ffn_down_exps.weight", matrix(config.n_expert, config.n_embd, config.n_ff))
        else:
            add(f"blk.{i}.ffn_gate.weight", matrix(config.n_ff, config.n_embd))
            add(f"blk.{i}.ffn_up.weight", matrix(config.n_ff, config.n_embd))
            add(f"blk.{i}.ffn_down.weight", matrix(config.n_embd, config.n_ff))
    add("output_norm.weight", ones)
    if not config.tied_embeddings and not gemma:
        add("output.weight", matrix(config.n_vocab, config.n_embd))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


#: The estimator's accuracy zoo (``bench/estimate_accuracy.py``): one model per layout llama.cpp sizes
#: differently. Realistic proportions (n_ff ≈ 3-4 × n_embd), small enough to generate and load in seconds.
ZOO: dict[str, TinyModelConfig] = {
    "llama-gqa-q8_0": TinyModelConfig(
        n_embd=512, n_head=8, n_head_kv=2, n_ff=1536, n_layer=4, n_vocab=32000, weight_type="Q8_0", name="zoo-llama-gqa"
    ),
    "one-kv-head-256k-vocab": TinyModelConfig(
        n_embd=256,
        n_head=4,
        n_head_kv=1,
        head_dim=64,
        n_ff=768,
        n_layer=2,
        n_vocab=256000,
        weight_type="Q8_0",
        tied_embeddings=True,
        name="zoo-mqa-256k",
    ),
    "gemma3-swa-f16": TinyModelConfig(
        arch="gemma3",
        n_embd=512,
        n_head=4,
        n_head_kv=1,
        head_dim=128,
        n_ff=2048,
        n_layer=7,
        n_vocab=32000,
        sliding_window=512,
        weight_type="F16",
        name="zoo-gemma3-swa",
    ),
    "moe-8x2-q4_0": TinyModelConfig(
        n_embd=384,
        n_head=6,
        n_head_kv=2,
        n_ff=512,
        n_layer=3,
        n_vocab=32000,
        n_expert=8,
        n_expert_used=2,
        weight_type="Q4_0",
        name="zoo-moe",
    ),
    "llama-q4_0": TinyModelConfig(
        n_embd=512,
        n_head=8,
        n_head_kv=4,
        n_ff=1536,
        n_layer=4,
        n_vocab=32000,
        weight_type="Q4_0",
        name="zoo-llama-q4_0",
    ),
    "llama-bf16": TinyModelConfig(
        n_embd=384,
        n_head=6,
        n_head_kv=2,
        n_ff=1152,
        n_layer=3,
        n_vocab=16000,
        weight_type="BF16",
        name="zoo-llama-bf16",
    ),
    "llama-q5_1": TinyModelConfig(
        n_embd=512,
        n_head=8,
        n_head_kv=8,
        n_ff=1408,
        n_layer=3,
        n_vocab=24000,
        weight_type="Q5_1",
        name="zoo-llama-q5_1",
    ),
}


def write_sparse_gguf(path: Path, config: TinyModelConfig) -> Path:
    """Write a GGUF whose header describes a full-size model but whose tensor data is a hole (a sparse file).

    The header is exact (shapes, types, offsets, vocabulary size), so readers and estimators see a real 8B or
    70B model, while the file takes almost no disk. llama.cpp cannot run it (the weights are zeros)."""
    import gguf
    import numpy as np

    qtype = gguf.GGMLQuantizationType[config.weight_type]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), config.arch)
    head_dim = config.head_dim or config.n_embd // config.n_head
    writer.add_name(config.name)
    writer.add_context_length(config.context_length)
    writer.add_embedding_length(config.n_embd)
    writer.add_block_count(config.n_layer)
    writer.add_feed_forward_length(config.n_ff)
    writer.add_head_count(config.n_head)
    writer.add_head_count_kv(config.n_head_kv)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    if config.n_expert:
        writer.add_expert_count(config.n_expert)
        writer.add_expert_used_count(config.n_expert_used or 1)
    if config.sliding_window:
        writer.add_sliding_window(config.sliding_window)
    writer.add_uint32("general.file_type", 15 if config.weight_type == "Q4_K" else 1)
    writer.add_uint32(f"{config.arch}.vocab_size", config.n_vocab)
    if config.chat_template:
        writer.add_chat_template(config.chat_template)
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    total = 0

    def add(name: str, *shape: int, f32: bool = False) -> None:
        nonlocal total
        # shape is numpy order (rows, cols); bytes from the row length, which must be whole blocks
        kind = gguf.GGMLQuantizationType.F32 if f32 or len(shape) == 1 else qtype
        blk, size = gguf.GGML_QUANT_SIZES[kind]
        n_bytes = int(np.prod(shape[:-1], dtype=np.int64)) * (shape[-1] // blk) * size
        writer.add_tensor_info(name, shape, np.dtype(np.float32), n_bytes, raw_dtype=kind)
        total += n_bytes + (-n_bytes % 32)

    n_q, n_kv = config.n_head * head_dim, config.n_head_kv * head_dim
    add("token_embd.weight", config.n_vocab, config.n_embd)
    for i in range(config.n_layer):
        add(f"blk.{i}.attn_norm.weight", config.n_embd)
        add(f"blk.{i}.attn_q.weight", n_q, config.n_embd)
        add(f"blk.{i}.attn_k.weight", n_kv, config.n_embd)
        add(f"blk.{i}.attn_v.weight", n_kv, config.n_embd)
        add(f"blk.{i}.attn_output.weight", config.n_embd, n_q)
        add(f"blk.{i}.ffn_norm.weight", config.n_embd)
        if config.n_expert:
            add(f"blk.{i}.ffn_gate_inp.weight", config.n_expert, config.n_embd, f32=True)
            for name in ("gate", "up"):
                add(f"blk.{i}.ffn_{name}_exps.weight", config.n_expert, config.n_ff, config.n_embd)
            add(f"blk.{i}.ffn_down_exps.weight", config.n_expert, config.n_embd, config.n_ff)
        else:
            add(f"blk.{i}.ffn_gate.weight", config.n_ff, config.n_embd)
            add(f"blk.{i}.ffn_up.weight", config.n_ff, config.n_embd)
            add(f"blk.{i}.ffn_down.weight", config.n_embd, config.n_ff)
    add("output_norm.weight", config.n_embd)
    if not config.tied_embeddings:
        add("output.weight", config.n_vocab, config.n_embd)
    del block, type_size
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    with path.open("r+b") as handle:
        header_end = handle.seek(0, 2)
        handle.truncate(header_end + (-header_end % 32) + total)  # a hole: no disk blocks are written
    return path


#: A Llama-3.1-8B-shaped header (Q4_K) for estimates at real scale (screenshots, tests) without 5 GB on disk.
LLAMA_8B_SHAPE = TinyModelConfig(
    n_embd=4096,
    n_head=32,
    n_head_kv=8,
    n_ff=14336,
    n_layer=32,
    n_vocab=128256,
    context_length=131072,
    weight_type="Q4_K",
    name="Llama-3.1-8B-shaped (sparse)",
)
