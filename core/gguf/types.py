"""ggml tensor types: names and byte sizes (block size and bytes per block come from gguf-py's table)."""

from __future__ import annotations

import functools
import math

from core.errors import ModelFileError


@functools.cache
def _table() -> dict[int, tuple[str, int, int]]:
    # imported on first use: the gguf package pulls in numpy, and ``hangar --help`` must stay instant
    from gguf.constants import GGML_QUANT_SIZES

    return {int(t): (t.name, block, size) for t, (block, size) in GGML_QUANT_SIZES.items()}


@functools.cache
def _by_name() -> dict[str, int]:
    return {name.lower(): value for value, (name, _, _) in _table().items()}


def ggml_type_name(ggml_type: int) -> str:
    entry = _table().get(ggml_type)
    return entry[0] if entry else f"type{ggml_type}"


def ggml_type_from_name(name: str) -> int:
    try:
        return _by_name()[name.lower()]
    except KeyError:
        raise ModelFileError(f"Unknown tensor type {name!r}.") from None


def bytes_per_element(ggml_type: int) -> float:
    _, block, size = _table()[ggml_type]
    return size / block


def row_size(ggml_type: int, n: int) -> int:
    """``ggml_row_size``: bytes of ``n`` consecutive elements (``n`` a multiple of the block size)."""
    _, block, size = _table()[ggml_type]
    return size * (n // block)


def ggml_type_size(ggml_type: int, shape: tuple[int, ...], *, name: str = "", file: str = "") -> int:
    """Bytes of a tensor; refuses unknown types and rows that are not whole blocks."""
    entry = _table().get(ggml_type)
    if entry is None:
        raise ModelFileError(
            f"{file}: tensor {name!r} has an unknown type {ggml_type}; "
            "it may need a newer Hangar, or the file is damaged."
        )
    _, block, size = entry
    if shape and shape[0] % block:
        raise ModelFileError(
            f"{file}: tensor {name!r} has rows of {shape[0]} values, "
            f"not a multiple of its block size {block}; the file is damaged."
        )
    return (shape[0] // block) * size * math.prod(shape[1:]) if shape else 0
