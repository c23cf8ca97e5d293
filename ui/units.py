"""One way to write sizes and speeds in the window: decimal units (1 GB = 10^9 bytes, as the Hub, file managers
and ``core.hub.suggestions.describe_hardware`` write them), and speeds rounded to what a prediction can claim."""

from __future__ import annotations

#: Predictions above this are not believable for local decoding; they read as "over …".
MAX_SHOWN_TOKENS_PER_SECOND = 500


def format_bytes(count: int | float | None) -> str:
    """``1.0 GB``, ``512.0 MB``, ``900 B``; ``unknown`` for None."""
    if count is None:
        return "unknown"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{int(count)} B"


def format_speed(tokens_per_second: float | None) -> str:
    """``about 42 tokens/s`` (two significant figures: an estimate, not a measurement), capped at a plausible
    ceiling; ``unknown`` without a prediction."""
    if not tokens_per_second or tokens_per_second <= 0:
        return "unknown"
    if tokens_per_second > MAX_SHOWN_TOKENS_PER_SECOND:
        return f"over {MAX_SHOWN_TOKENS_PER_SECOND} tokens/s"
    rounded = float(f"{tokens_per_second:.2g}")
    return f"about {rounded:,.0f} tokens/s" if rounded >= 1 else f"about {rounded:.1g} tokens/s"
