"""Checks a model file before any native library opens it: a broken or hostile file gets a clear message
here instead of crashing the engine."""

from __future__ import annotations

import struct
from pathlib import Path

from core.errors import ModelFileError

GGUF_MAGIC = b"GGUF"
_MAX_TENSORS = 1_000_000
_MAX_KV = 1_000_000


def check_gguf_file(path: Path) -> None:
    """Raise ``ModelFileError`` unless ``path`` starts like a GGUF file of a version llama.cpp reads."""
    if not path.exists():
        raise ModelFileError(f"{path} does not exist.")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a GGUF file.")
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(24)
    if len(head) < 4 or head[:4] != GGUF_MAGIC:
        raise ModelFileError(f"{path.name} is not a GGUF model file (it does not start with 'GGUF').")
    if len(head) < 24:
        raise ModelFileError(f"{path.name} is truncated: only {size} bytes.")
    version, n_tensors, n_kv = struct.unpack("<IQQ", head[4:24])
    if version not in (2, 3):
        raise ModelFileError(f"{path.name} uses GGUF version {version}, which is not supported (2 or 3 expected).")
    if n_tensors > _MAX_TENSORS or n_kv > _MAX_KV:
        raise ModelFileError(f"{path.name} has an impossible header ({n_tensors} tensors, {n_kv} keys).")
