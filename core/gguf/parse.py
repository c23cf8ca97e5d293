"""The GGUF header parser: magic, version, metadata key/values and tensor descriptions, nothing else.

Written against hostile input: every count and length is checked against what the file can hold before
anything is allocated, unknown value or tensor types are refused, and big arrays (tokenizer tokens and merges)
are walked without building Python lists. All failures are ``ModelFileError`` with a sentence a user can act
on.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

from core.errors import ModelFileError
from core.gguf.fastskip import skip_local_strings
from core.gguf.source import Cursor, FileSource

GGUF_MAGIC = b"GGUF"
MAX_TENSORS = 1_000_000
MAX_KV = 100_000
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_STRING = 64 * 1024 * 1024  # a chat template is KBs; 64 MiB is already absurd
MAX_NAME = 1024
#: No real metadata array is longer (the largest vocabularies and merge lists have ~260k entries); a longer one is
#: a crafted header that would cost gigabytes to walk.
MAX_ARRAY = 1 << 24
#: Arrays up to this length keep their values (per-layer head counts, window patterns); longer ones are
#: summarised.
KEEP_ARRAY = 4096
_MAX_ELEMENTS = 2**40  # no real tensor has more elements than this (a TiB of F8)

# GGUF value types -> struct format (strings and arrays handled separately)
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class ArraySummary:
    """A metadata array too long to keep (a vocabulary): its element type and length."""

    element_type: int
    length: int

    def __len__(self) -> int:
        return self.length


@dataclass(frozen=True)
class RawTensor:
    name: str
    ggml_type: int
    shape: tuple[int, ...]  # ggml order: shape[0] is the row length
    offset: int  # relative to the start of the data section


@dataclass(frozen=True)
class RawHeader:
    version: int
    metadata: dict[str, Any]
    tensors: tuple[RawTensor, ...]
    header_bytes: int  # where the tensor-info section ends (before alignment padding)


def _string(cur: Cursor, what: str) -> str:
    (length,) = cur.unpack("Q")
    if length > MAX_STRING:
        raise ModelFileError(f"{cur.name}: {what} claims a string of {length} bytes; the file is damaged.")
    raw = cur.take(length)
    return raw.decode("utf-8", errors="replace")


def _skip_strings(cur: Cursor, count: int, key: str) -> None:
    """Walk ``count`` length-prefixed strings without keeping them (256k tokens in well under a second)."""
    unpack_q = struct.Struct("<Q").unpack
    remaining = count
    while remaining:
        if isinstance(cur.source, FileSource):  # local files: vectorised walk (core.gguf.fastskip)
            remaining = skip_local_strings(cur, remaining, MAX_STRING)
            if not remaining:
                break
        remaining -= 1
        (length,) = unpack_q(cur.take(8))
        if length > MAX_STRING:
            raise ModelFileError(f"{cur.name}: an element of {key} claims {length} bytes; the file is damaged.")
        cur.skip(length)


def _value(cur: Cursor, vtype: int, key: str, depth: int = 0) -> Any:
    fmt = _SCALAR.get(vtype)
    if fmt is not None:
        return cur.unpack(fmt)[0]
    if vtype == _STRING:
        return _string(cur, key)
    if vtype == _ARRAY:
        if depth > 0:
            raise ModelFileError(f"{cur.name}: {key} is an array of arrays, which GGUF models never use.")
        (etype,) = cur.unpack("I")
        (count,) = cur.unpack("Q")
        if etype not in _SCALAR and etype != _STRING:
            raise ModelFileError(f"{cur.name}: {key} has an unknown array element type {etype}.")
        min_size = 8 if etype == _STRING else struct.calcsize("<" + _SCALAR[etype])
        size = cur.source.size()
        if size is not None and count * min_size > size - cur.pos:
            raise ModelFileError(
                f"{cur.name}: {key} claims {count} elements, more than the file can hold; "
                "the file is truncated or damaged.",
                hint="Download the file again.",
            )
        if count > MAX_ARRAY:
            raise ModelFileError(
                f"{cur.name}: {key} claims {count:,} elements, more than any real model has; the file is damaged.",
                hint="Download the file again, or delete it.",
            )
        if count > KEEP_ARRAY:
            if etype == _STRING:
                _skip_strings(cur, count, key)
            else:
                cur.skip(count * min_size)
            return ArraySummary(etype, count)
        if etype == _STRING:
            return tuple(_string(cur, key) for _ in range(count))
        st = struct.Struct(f"<{count}{_SCALAR[etype]}")
        return tuple(st.unpack(cur.take(st.size)))
    raise ModelFileError(f"{cur.name}: metadata key {key!r} has an unknown value type {vtype}.")


def parse_header(cur: Cursor) -> RawHeader:
    from core.gguf.types import ggml_type_size

    size = cur.source.size()
    magic = cur.take(4) if size is None or size >= 4 else b""
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"{cur.name} is not a GGUF model file (it does not start with 'GGUF').")
    (version,) = cur.unpack("I")
    if version not in (2, 3):
        raise ModelFileError(f"{cur.name} uses GGUF version {version}, which is not supported (2 or 3 expected).")
    n_tensors, n_kv = cur.unpack("QQ")
    if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
        raise ModelFileError(
            f"{cur.name} has an impossible header ({n_tensors} tensors, {n_kv} keys); "
            "it is damaged or not a real model."
        )
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = _string(cur, "a metadata key")
        if len(key) > MAX_NAME:
            raise ModelFileError(f"{cur.name}: a metadata key is {len(key)} characters long; the file is damaged.")
        (vtype,) = cur.unpack("I")
        if key in metadata:
            raise ModelFileError(f"{cur.name}: metadata key {key!r} appears twice; the file is damaged.")
        metadata[key] = _value(cur, vtype, key)
    tensors: list[RawTensor] = []
    names: set[str] = set()
    for _ in range(n_tensors):
        name = _string(cur, "a tensor name")
        if len(name) > MAX_NAME:
            raise ModelFileError(f"{cur.name}: a tensor name is {len(name)} characters long; the file is damaged.")
        if name in names:
            raise ModelFileError(f"{cur.name}: tensor {name!r} appears twice; the file is damaged.")
        names.add(name)
        (n_dims,) = cur.unpack("I")
        if not 1 <= n_dims <= MAX_DIMS:
            raise ModelFileError(f"{cur.name}: tensor {name!r} has {n_dims} dimensions (1 to 4 allowed).")
        shape = tuple(int(d) for d in cur.unpack(f"{n_dims}Q"))
        if math.prod(shape) > _MAX_ELEMENTS:
            raise ModelFileError(f"{cur.name}: tensor {name!r} has an impossible shape {shape}.")
        (ggml_type,) = cur.unpack("I")
        ggml_type_size(ggml_type, shape, name=name, file=cur.name)  # refuses unknown types and bad row sizes
        (offset,) = cur.unpack("Q")
        tensors.append(RawTensor(name, ggml_type, shape, offset))
    return RawHeader(version, metadata, tuple(tensors), cur.pos)
