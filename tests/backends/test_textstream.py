"""Stop-string filtering and the UTF-8 guard, on their own (the engine contract covers them end to end)."""

from __future__ import annotations

import numpy as np

from backends.textstream import StopFilter, role_text_prompt
from backends.utf8guard import Utf8Guard, Utf8Tables, walk_utf8


def test_stop_string_split_across_pieces_is_never_emitted() -> None:
    shown: list[str] = []
    stops = StopFilter(["</end>"], shown.append)
    for piece in ["Hello <", "/en", "d> more"]:
        if stops.add(piece):
            break
    assert stops.stopped
    assert "".join(shown) == stops.text == "Hello "


def test_held_back_prefix_is_flushed_when_no_stop_follows() -> None:
    shown: list[str] = []
    stops = StopFilter(["STOP"], shown.append)
    stops.add("it is ST")
    assert "".join(shown) == "it is "
    stops.flush()
    assert "".join(shown) == "it is ST" and not stops.stopped


def test_fallback_prompt() -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hel"}]
    assert role_text_prompt(messages[:1], False) == "User: hi\nAssistant:"
    assert role_text_prompt(messages, True) == "User: hi\nAssistant: Hel"


def test_walk_utf8() -> None:
    assert walk_utf8("é".encode(), 0) == 0
    assert walk_utf8(b"\xc3", 0) == 1
    assert walk_utf8(b"\xa9", 1) == 0
    assert walk_utf8(b'"', 1) is None  # a quote cannot finish a multi-byte character
    assert walk_utf8(b"\x1e", 0) is None  # control characters are never allowed
    assert walk_utf8(b"\xff", 0) is None


def test_guard_allows_only_continuations_after_a_lead_byte() -> None:
    vocab = [b"", b"a", b'"', b"\xc3", b"\xa9", b"\n"]
    tables = Utf8Tables(vocab)
    guard = Utf8Guard(tables, prompt_length=2)
    logits = guard(np.array([7, 7]), np.zeros(len(vocab), dtype=np.float32))
    assert list(np.isfinite(logits)) == [True, True, True, True, False, False]
    logits = guard(np.array([7, 7, 3]), np.zeros(len(vocab), dtype=np.float32))  # after the lead byte 0xC3
    assert list(np.isfinite(logits)) == [False, False, False, False, True, False]
