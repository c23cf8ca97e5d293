"""One way to write sizes and speeds in the window: memory and sizes in core's one unit system (binary, GiB/MiB:
``core.estimate.units``), and speeds rounded to what a prediction can claim."""

from __future__ import annotations

#: Predictions above this are not believable for local decoding; they read as "over …".
MAX_SHOWN_TOKENS_PER_SECOND = 500


def format_bytes(count: int | float | None) -> str:
    """``1.5 GiB``, ``512.0 MiB``, ``900 B`` (core's one unit system); ``unknown`` for None."""
    from core.estimate.units import format_bytes as core_format_bytes

    return "unknown" if count is None else core_format_bytes(count)


def format_speed(tokens_per_second: float | None) -> str:
    """``about 42 tokens/s`` (two significant figures: an estimate, not a measurement), capped at a plausible
    ceiling; ``unknown`` without a prediction."""
    if not tokens_per_second or tokens_per_second <= 0:
        return "unknown"
    if tokens_per_second > MAX_SHOWN_TOKENS_PER_SECOND:
        return f"over {MAX_SHOWN_TOKENS_PER_SECOND} tokens/s"
    rounded = float(f"{tokens_per_second:.2g}")
    if rounded < 1:
        return f"about {rounded:.1g} tokens/s"
    shown = f"{rounded:,.0f}"
    return f"about {shown} token/s" if shown == "1" else f"about {shown} tokens/s"  # not "about 1 tokens/s"
