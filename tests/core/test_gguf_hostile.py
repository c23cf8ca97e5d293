"""Hostile GGUF headers: every lie about counts, lengths and types is refused with ``ModelFileError``, quickly
and without big allocations; random mutations of a real header never crash the reader (hypothesis)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.errors import ModelFileError
from core.gguf import read_gguf


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _header(n_tensors: int, n_kv: int, body: bytes, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + body


def _tensor(name: str, dims: list[int], ggml_type: int = 0, offset: int = 0) -> bytes:
    return (
        _s(name)
        + struct.pack("<I", len(dims))
        + struct.pack(f"<{len(dims)}Q", *dims)
        + struct.pack("<IQ", ggml_type, offset)
    )


CASES = {
    "bad magic": (b"GGML" + b"\0" * 40, "not a GGUF"),
    "version 1": (_header(0, 0, b"", version=1), "version 1"),
    "absurd counts": (_header(2**40, 2**40, b""), "impossible header"),
    "huge string": (_header(0, 1, struct.pack("<Q", 2**62)), "damaged"),
    "unknown value type": (_header(0, 1, _s("general.x") + struct.pack("<I", 99)), "unknown value type"),
    "array past end": (_header(0, 1, _s("a") + struct.pack("<IIQ", 9, 4, 2**40)), "more than the file"),
    "nested array": (_header(0, 1, _s("a") + struct.pack("<IIQ", 9, 9, 1)), "unknown array element type"),
    "five dims": (_header(1, 0, _tensor("t", [1, 1, 1, 1, 1])), "dimensions"),
    "unknown tensor type": (_header(1, 0, _tensor("t", [32], ggml_type=77)), "unknown type 77"),
    "partial block": (_header(1, 0, _tensor("t", [33], ggml_type=8)), "block size"),
    "duplicate tensor": (_header(2, 0, _tensor("t", [4]) + _tensor("t", [4])), "appears twice"),
    "data past end": (_header(1, 0, _tensor("t", [1024, 1024])) + b"\0" * 64, "truncated"),
    "impossible shape": (_header(1, 0, _tensor("t", [2**40, 2**40])), "impossible shape"),
    "bad alignment": (_header(0, 1, _s("general.alignment") + struct.pack("<II", 4, 3)), "power of two"),
    "empty": (b"", "not a GGUF"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_headers_are_refused(name: str, tmp_path: Path) -> None:
    data, message = CASES[name]
    path = tmp_path / "evil.gguf"
    path.write_bytes(data)
    with pytest.raises(ModelFileError, match=message):
        read_gguf(path)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = write_tiny_gguf(
        tmp_path_factory.mktemp("fuzz") / "m.gguf",
        TinyModelConfig(n_vocab=300, n_embd=32, n_ff=32, n_head=2, n_head_kv=1, n_layer=1),
    )
    return path.read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_headers_never_crash(small_model: bytes, data: st.DataObject, tmp_path: Path) -> None:
    blob = bytearray(small_model)
    header_end = 9000  # the header of this model is ~8 kB: mutate where the parser looks
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, header_end))
        blob[position] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    path = tmp_path / "fuzz.gguf"
    path.write_bytes(bytes(blob))
    try:
        info = read_gguf(path)
    except ModelFileError as error:
        assert str(error)
    else:
        assert all(t.offset + t.n_bytes <= len(blob) for t in info.tensors)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=400), n_tensors=st.integers(0, 2**64 - 1), n_kv=st.integers(0, 2**64 - 1))
def test_random_headers_never_crash(body: bytes, n_tensors: int, n_kv: int, tmp_path: Path) -> None:
    path = tmp_path / "random.gguf"
    path.write_bytes(_header(n_tensors, n_kv, body))
    try:
        read_gguf(path)
    except ModelFileError:
        pass


def _kv_u32(key: str, value: int) -> bytes:
    return _s(key) + struct.pack("<II", 4, value)


def _kv_u64(key: str, value: int) -> bytes:
    return _s(key) + struct.pack("<IQ", 10, value)


def _llama_header(*kvs: bytes) -> bytes:
    body = _s("general.architecture") + struct.pack("<I", 8) + _s("llama") + b"".join(kvs) + _tensor("t", [32])
    return _header(1, 1 + len(kvs), body)


def _sparse(path: Path, data: bytes, size: int) -> Path:
    """A crafted header followed by a big sparse tail: "the file can hold it" checks pass, as in the field."""
    path.write_bytes(data)
    os.truncate(path, size)
    return path


CRAFTED = {
    "20 million layers": (_llama_header(_kv_u32("llama.block_count", 20_000_000)), "llama.block_count"),
    "a context of 2^63": (_llama_header(_kv_u64("llama.context_length", 2**63)), "llama.context_length"),
    "a negative context": (
        _llama_header(_s("llama.context_length") + struct.pack("<Ii", 5, -4096)),
        "llama.context_length",
    ),
    "a huge embedding": (_llama_header(_kv_u64("llama.embedding_length", 2**40)), "llama.embedding_length"),
    "10^8 array entries": (
        _header(0, 1, _s("tokenizer.ggml.token_type") + struct.pack("<IIQ", 9, 5, 10**8)),
        "tokenizer.ggml.token_type",
    ),
    "a u32-max string array": (
        _header(0, 1, _s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2**32 - 1)),
        "tokenizer.ggml.tokens",
    ),
    "a per-layer array with an absurd value": (
        _llama_header(
            _kv_u32("llama.block_count", 2),
            _s("llama.attention.head_count") + struct.pack("<IIQ", 9, 4, 2) + struct.pack("<II", 4, 2**31),
        ),
        "head_count",
    ),
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_header_values_are_refused_quickly_as_damaged(name: str, tmp_path: Path) -> None:
    import resource
    import time

    data, key = CRAFTED[name]
    path = _sparse(tmp_path / "crafted.gguf", data, 2**33)  # 8 GiB claimed, a few KB on disk
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(ModelFileError, match="damaged") as info:
        read_gguf(path)
    assert key in str(info.value)
    assert time.monotonic() - started < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 200_000  # KiB: no big allocation


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "x.gguf"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="named pipe"):
        read_gguf(fifo)


def test_header_strings_are_made_printable(tmp_path: Path) -> None:
    evil = "\x1b[2J\x1b[31mllama\u202e"
    body = (
        _s("general.architecture")
        + struct.pack("<I", 8)
        + _s(evil)
        + _s("general.name")
        + struct.pack("<I", 8)
        + _s("name\x07\x1b]0;title\x07")
        + _tensor("t", [32])
    )
    path = tmp_path / "escape.gguf"
    path.write_bytes(_header(1, 2, body) + b"\0" * 4096)
    info = read_gguf(path)
    for text in (info.architecture, info.model_name or ""):
        assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in text), repr(text)
    assert "llama" in info.architecture
