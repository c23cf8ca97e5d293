"""Keeps grammar-constrained (JSON) replies valid UTF-8 without raw control characters.

llama.cpp's grammar decodes a partial UTF-8 sequence loosely: after a lead byte it accepts *any* next byte as
a continuation. With byte-fallback vocabularies a model can then write a lead byte followed by ``"`` or a
control byte, which the grammar takes for one character inside a string but which is invalid UTF-8 and breaks
the JSON.
This guard is a logits processor that allows, at each step, only tokens whose bytes continue a valid UTF-8
stream and contain no control characters (JSON allows none inside strings; outside them, whitespace is
optional).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_MAX_PENDING = 3  # a 4-byte sequence leaves at most 3 continuation bytes to come


def walk_utf8(data: bytes, pending: int) -> int | None:
    """The continuation bytes still expected after ``data``, starting with ``pending``; None if invalid."""
    for byte in data:
        if pending:
            if 0x80 <= byte <= 0xBF:
                pending -= 1
                continue
            return None
        if byte < 0x20 or byte == 0x7F:
            return None
        if byte < 0x80:
            continue
        if 0xC2 <= byte <= 0xDF:
            pending = 1
        elif 0xE0 <= byte <= 0xEF:
            pending = 2
        elif 0xF0 <= byte <= 0xF4:
            pending = 3
        else:
            return None
    return pending


class Utf8Guard:
    """A logits processor (``processor(input_ids, logits) -> logits``) for one generation."""

    def __init__(self, tables: Utf8Tables, prompt_length: int) -> None:
        self._tables = tables
        self._seen = prompt_length
        self._pending = 0

    def __call__(self, input_ids: Any, logits: Any) -> Any:
        ids = input_ids[self._seen :]
        for token in ids:
            state = int(self._tables.next_state[self._pending][int(token)])
            self._pending = max(state, 0)  # -1 (a token we banned) cannot happen; be lenient anyway
        self._seen += len(ids)
        banned = self._tables.banned[self._pending]
        logits[banned[: len(logits)]] = -np.inf
        return logits


class Utf8Tables:
    """For each pending-continuation state: which tokens are banned, and the state after each."""

    def __init__(self, token_bytes: Sequence[bytes]) -> None:
        n = len(token_bytes)
        self.banned = [np.zeros(n, dtype=bool) for _ in range(_MAX_PENDING + 1)]
        self.next_state = [np.full(n, -1, dtype=np.int8) for _ in range(_MAX_PENDING + 1)]
        for token, data in enumerate(token_bytes):
            for pending in range(_MAX_PENDING + 1):
                if not data:
                    # special tokens (end of turn...) have no text: only between whole characters
                    after: int | None = 0 if pending == 0 else None
                elif pending and not 0x80 <= data[0] <= 0xBF:
                    after = None  # cheap early exit: most tokens cannot continue a sequence
                else:
                    after = walk_utf8(data, pending)
                if after is None:
                    self.banned[pending][token] = True
                else:
                    self.next_state[pending][token] = after
