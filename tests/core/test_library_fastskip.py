"""The vectorised string-array walk gives exactly the sequential walk's answer, whatever the strings."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ModelFileError
from core.gguf.fastskip import skip_strings


def _pack(pieces: list[bytes]) -> bytes:
    return b"".join(struct.pack("<Q", len(p)) + p for p in pieces)


def _sequential(data: bytes, count: int) -> tuple[int, int]:
    pos = walked = 0
    while walked < count and pos + 8 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        if pos + 8 + length > len(data):
            break
        pos += 8 + length
        walked += 1
    return walked, pos


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.one_of(
            st.binary(min_size=1, max_size=12),
            st.binary(max_size=400),  # long ones and empty ones, zero bytes inside
            st.sampled_from([b"\x00" * 9, b"a\x00\x00\x00\x00\x00\x00\x00b", b""]),
        ),
        max_size=300,
    ),
    extra=st.integers(0, 5),
    cut=st.integers(0, 64),
)
def test_matches_the_sequential_walk(pieces: list[bytes], extra: int, cut: int) -> None:
    data = _pack(pieces) + b"\x07" * extra
    data = data[: max(0, len(data) - cut)]
    count = len(pieces)
    assert skip_strings(data, count, 1 << 20) == _sequential(data, count)


def test_a_realistic_vocabulary_in_one_pass() -> None:
    pieces = [f"\u2581tok{i}".encode() for i in range(50_000)] + [b"x" * 300, b""] + [b"end"] * 10
    data = _pack(pieces) + struct.pack("<Q", 99)
    assert skip_strings(data, len(pieces), 1 << 20) == (len(pieces), len(data) - 8)


def test_an_absurd_length_is_refused() -> None:
    data = _pack([b"ok"]) + struct.pack("<Q", 1 << 40) + b"rest"
    with pytest.raises(ModelFileError, match="claims"):
        skip_strings(data, 2, 1 << 26)
