"""Stop strings and stream bookkeeping shared by the engines' token loops.

Both engines decode token by token; a stop string can span tokens, so text that could still turn into a stop
string is held back until it cannot, and a stop string is never shown to the user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def find_stop(text: str, stops: Sequence[str], emitted: int) -> int | None:
    """Index where the earliest stop string starts, searching only text that could contain a new match."""
    best: int | None = None
    for stop in stops:
        if not stop:
            continue
        index = text.find(stop, max(0, emitted - len(stop)))
        if index != -1 and (best is None or index < best):
            best = index
    return best


def safe_emit_length(text: str, stops: Sequence[str]) -> int:
    """Hold back a tail that could be the start of a stop string, so a stop string is never shown."""
    hold = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                hold = max(hold, k)
                break
    return len(text) - hold


class StopFilter:
    """Accumulates decoded pieces, cuts at the first stop string, and emits only text that is final."""

    def __init__(self, stops: Sequence[str], emit: Callable[[str], None]) -> None:
        self.stops = [s for s in stops if s]
        self.text = ""
        self._emit = emit
        self._emitted = 0
        self.stopped = False

    def add(self, piece: str) -> bool:
        """Add decoded text; return True when a stop string was reached (generation should end)."""
        if not piece or self.stopped:
            return self.stopped
        self.text += piece
        hit = find_stop(self.text, self.stops, self._emitted) if self.stops else None
        if hit is not None:
            self.text = self.text[:hit]
            self.stopped = True
        safe = len(self.text) if hit is not None else safe_emit_length(self.text, self.stops)
        if safe > self._emitted:
            self._emit(self.text[self._emitted : safe])
            self._emitted = safe
        return self.stopped

    def flush(self) -> None:
        """Emit what was held back (the stream ended without completing a stop string)."""
        if self._emitted < len(self.text):
            self._emit(self.text[self._emitted :])
            self._emitted = len(self.text)


def role_text_prompt(messages: Sequence[dict[str, str]], continue_last: bool) -> str:
    """The fallback prompt for a model without a chat template: one 'Role: text' line per message."""
    prompt = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages)
    if continue_last and messages and messages[-1]["role"] == "assistant":
        return prompt.rstrip("\n")
    return prompt + "Assistant:"
