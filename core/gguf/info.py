"""What a GGUF header says about a model, as one frozen value: shapes, attention layout, experts, quant type.

Per-layer values (head counts, sliding-window layers) are always expanded to one entry per layer, because
models like gemma, Jamba or Nemotron store arrays where others store scalars.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core.errors import ModelFileError
from core.gguf.parse import ArraySummary, RawHeader
from core.gguf.types import ggml_type_name, ggml_type_size
from core.text import printable

#: The largest value each header field may hold. Real models stay far below (about 200 layers, a 10M context,
#: 64k-wide layers, 512 experts); a crafted header beyond them would make estimates allocate gigabytes or
#: overflow the library's columns, so it is refused as damaged.
LIMITS: dict[str, int] = {
    "block_count": 4096,
    "context_length": 1 << 32,
    "embedding_length": 1 << 20,
    "feed_forward_length": 1 << 22,
    "attention.head_count": 1 << 16,
    "attention.head_count_kv": 1 << 16,
    "attention.key_length": 1 << 16,
    "attention.value_length": 1 << 16,
    "attention.key_length_swa": 1 << 16,
    "attention.value_length_swa": 1 << 16,
    "attention.sliding_window": 1 << 32,
    "expert_count": 1 << 16,
    "expert_used_count": 1 << 16,
    "expert_shared_count": 1 << 16,
    "vocab_size": 1 << 24,
}

#: SWA layer pattern per architecture, when the file has no ``sliding_window_pattern`` key (llama.cpp's
#: ``set_swa_pattern(n)``: layer ``il`` uses the window when ``il % n < n - 1``).
SWA_PATTERNS: dict[str, int] = {
    "gemma2": 2,
    "gemma3": 6,
    "gemma3n": 5,
    "cohere2": 4,
    "olmo2": 4,
    "exaone4": 4,
    "llama4": 4,
    "gpt-oss": 2,
    "openai-moe": 2,
    "smallthinker": 4,
    "afmoe": 4,
}
_LAYER = re.compile(r"^blk\.(\d+)\.")
_EXPERT_TENSOR = re.compile(r"_exps?\.|_exps$")

# llama_ftype values -> labels (gguf.LlamaFileType names without the MOSTLY_ prefix)
_FILE_TYPES: dict[int, str] = {}


def file_type_name(file_type: int | None) -> str | None:
    if file_type is None:
        return None
    if not _FILE_TYPES:
        from gguf.constants import LlamaFileType

        _FILE_TYPES.update({int(t): t.name.removeprefix("MOSTLY_") for t in LlamaFileType})
    return _FILE_TYPES.get(file_type & ~1024, f"ftype{file_type}")


@dataclass(frozen=True)
class TensorInfo:
    name: str
    ggml_type: int
    type_name: str
    shape: tuple[int, ...]  # ggml order: shape[0] is the row length
    n_bytes: int
    offset: int  # absolute offset of the data in its file
    shard: int = 0  # index of the file in a split set

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def layer(self) -> int | None:
        match = _LAYER.match(self.name)
        return int(match.group(1)) if match else None

    @property
    def is_expert(self) -> bool:
        return bool(_EXPERT_TENSOR.search(self.name))


@dataclass(frozen=True)
class GGUFInfo:
    """A GGUF model (one file or a whole split set) as described by its header."""

    name: str
    architecture: str
    model_name: str | None
    version: int
    tensors: tuple[TensorInfo, ...]
    file_size: int | None  # bytes of all files, None if a remote server did not say
    header_bytes: int  # bytes of the first file's header (what a remote read had to fetch)
    context_length: int
    embedding_length: int
    block_count: int
    feed_forward_length: int
    head_count: tuple[int, ...]  # per layer
    head_count_kv: tuple[int, ...]  # per layer (0 for a layer without attention)
    key_length: int
    value_length: int
    key_length_swa: int
    value_length_swa: int
    sliding_window: int
    swa_layers: tuple[bool, ...]  # per layer: does it use the sliding window
    expert_count: int
    expert_used_count: int
    expert_shared_count: int
    vocab_size: int
    chat_template: str | None
    file_type: int | None
    file_type_name: str | None
    dominant_type: str  # the tensor type holding most bytes (Q4_K, F16, ...)
    split_count: int = 1
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def weights_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    @property
    def quant_type(self) -> str:
        """What users call the quant: the file type label when present, else the dominant tensor type."""
        return self.file_type_name or self.dominant_type

    @property
    def is_moe(self) -> bool:
        return self.expert_count > 0

    @property
    def tied_embeddings(self) -> bool:
        return not any(t.name == "output.weight" for t in self.tensors)

    def tensor(self, name: str) -> TensorInfo | None:
        return next((t for t in self.tensors if t.name == name), None)


def _arch_key(meta: dict[str, Any], arch: str, key: str, default: Any = None) -> Any:
    return meta.get(f"{arch}.{key}", default)


def _per_layer(value: Any, n_layer: int, default: int) -> tuple[int, ...]:
    if value is None:
        return (default,) * n_layer
    if isinstance(value, tuple):
        items = [int(v) for v in value[:n_layer]]
        return tuple(items + [items[-1] if items else default] * (n_layer - len(items)))
    if isinstance(value, ArraySummary):
        return (default,) * n_layer
    return (int(value),) * n_layer


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool) or value is None or isinstance(value, tuple | ArraySummary | str):
        return default
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def _swa_layers(meta: dict[str, Any], arch: str, n_layer: int, window: int) -> tuple[bool, ...]:
    if window <= 0:
        return (False,) * n_layer
    pattern = _arch_key(meta, arch, "attention.sliding_window_pattern")
    if isinstance(pattern, tuple) and pattern:
        flags = [bool(v) for v in pattern[:n_layer]]
        return tuple(flags + [False] * (n_layer - len(flags)))
    n = _int(pattern, SWA_PATTERNS.get(arch, 0))
    if n <= 0:
        return (True,) * n_layer  # a window on every layer (mistral-style)
    return tuple(il % n < n - 1 for il in range(n_layer))


def _check_limits(name: str, meta: dict[str, Any], arch: str) -> None:
    """Refuse header values no real model has (negative, or beyond ``LIMITS``), scalars and per-layer arrays."""
    for key, limit in LIMITS.items():
        value = meta.get(f"{arch}.{key}")
        values = value if isinstance(value, tuple) else (value,)
        for item in values:
            if isinstance(item, bool) or not isinstance(item, int | float):
                continue
            if not 0 <= item <= limit:
                raise ModelFileError(
                    f"{name}: {arch}.{key} is {item:,}, which no real model has; the file is damaged.",
                    hint="Download the file again, or delete it.",
                )


def build_info(name: str, headers: list[tuple[RawHeader, int, int | None]]) -> GGUFInfo:
    """``headers``: per file of the set, (parsed header, absolute start of its data section, file size)."""
    first = headers[0][0]
    meta = first.metadata
    arch = str(meta.get("general.architecture") or "unknown")
    _check_limits(name, meta, arch)
    tensors: list[TensorInfo] = []
    for shard, (header, data_start, _) in enumerate(headers):
        for raw in header.tensors:
            n_bytes = ggml_type_size(raw.ggml_type, raw.shape, name=raw.name, file=name)
            tensors.append(
                TensorInfo(
                    raw.name,
                    raw.ggml_type,
                    ggml_type_name(raw.ggml_type),
                    raw.shape,
                    n_bytes,
                    data_start + raw.offset,
                    shard,
                )
            )
    n_layer = _int(_arch_key(meta, arch, "block_count"))
    n_embd = _int(_arch_key(meta, arch, "embedding_length"))
    head_count = _per_layer(_arch_key(meta, arch, "attention.head_count"), n_layer, 0)
    head_count_kv = _per_layer(_arch_key(meta, arch, "attention.head_count_kv"), n_layer, 0)
    if _arch_key(meta, arch, "attention.head_count_kv") is None:
        head_count_kv = head_count  # no GQA key: one KV head per query head
    first_heads = next((h for h in head_count if h), 0)
    head_dim = n_embd // first_heads if first_heads else 0
    key_length = _int(_arch_key(meta, arch, "attention.key_length"), head_dim)
    value_length = _int(_arch_key(meta, arch, "attention.value_length"), head_dim)
    window = _int(_arch_key(meta, arch, "attention.sliding_window"))
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = _int(_arch_key(meta, arch, "vocab_size"), len(tokens) if tokens is not None else 0)
    if vocab == 0:
        embd = next((t for t in tensors if t.name == "token_embd.weight"), None)
        vocab = embd.shape[1] if embd and len(embd.shape) > 1 else 0
    by_type: Counter[str] = Counter()
    for t in tensors:
        if len(t.shape) > 1:
            by_type[t.type_name] += t.n_bytes
    file_type = meta.get("general.file_type")
    file_type = _int(file_type, -1) if file_type is not None else None
    if file_type == -1:
        file_type = None
    sizes = [size for _, _, size in headers]
    template = meta.get("tokenizer.chat_template")
    return GGUFInfo(
        name=name,
        architecture=printable(arch),
        model_name=printable(meta["general.name"]) if isinstance(meta.get("general.name"), str) else None,
        version=first.version,
        tensors=tuple(tensors),
        file_size=None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None),
        header_bytes=first.header_bytes,
        context_length=_int(_arch_key(meta, arch, "context_length")),
        embedding_length=n_embd,
        block_count=n_layer,
        feed_forward_length=_int(_arch_key(meta, arch, "feed_forward_length")),
        head_count=head_count,
        head_count_kv=head_count_kv,
        key_length=key_length,
        value_length=value_length,
        key_length_swa=_int(_arch_key(meta, arch, "attention.key_length_swa"), key_length),
        value_length_swa=_int(_arch_key(meta, arch, "attention.value_length_swa"), value_length),
        sliding_window=window,
        swa_layers=_swa_layers(meta, arch, n_layer, window),
        expert_count=_int(_arch_key(meta, arch, "expert_count")),
        expert_used_count=_int(_arch_key(meta, arch, "expert_used_count")),
        expert_shared_count=_int(_arch_key(meta, arch, "expert_shared_count")),
        vocab_size=vocab,
        chat_template=template if isinstance(template, str) else None,
        file_type=file_type,
        file_type_name=file_type_name(file_type),
        dominant_type=by_type.most_common(1)[0][0] if by_type else "unknown",
        split_count=len(headers),
        metadata=meta,
    )
