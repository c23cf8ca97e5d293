"""Checks a model file before any native library opens it: a broken or hostile file gets a clear message
here instead of crashing the engine.

The whole GGUF header is parsed with ``core.gguf`` (counts, string and array lengths, tensor types), and every
tensor's data must lie inside the file, so a truncated download is named as such.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import ModelFileError
from core.gguf import GGUFInfo, read_gguf

GGUF_MAGIC = b"GGUF"


def check_gguf_file(path: Path) -> GGUFInfo:
    """Raise ``ModelFileError`` unless ``path`` is a complete GGUF file (or split set) llama.cpp can read;
    return its header."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path} does not exist.")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a GGUF file.")
    info = read_gguf(path)
    if not info.tensors:
        raise ModelFileError(f"{path.name} contains no tensors; it is not a model (a LoRA or vocab-only file?).")
    return info
