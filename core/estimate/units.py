"""One unit system for memory everywhere Hangar shows it: binary units (1 GiB = 1024³ bytes), written GiB/MiB,
through ``format_bytes``; ``budget_words`` explains budget against free memory where both appear."""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB


def format_bytes(n: int | float | None, *, digits: int = 1) -> str:
    """``1536 MiB`` → "1.5 GiB"; below 1 GiB in MiB, below 1 MiB in KiB; None → "—"."""
    if n is None:
        return "—"
    value = float(n)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit, size in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if value >= size:
            amount = value / size
            text = f"{amount:,.{digits}f}" if amount < 100 else f"{amount:,.0f}"
            return f"{sign}{text} {unit}"
    return f"{sign}{int(value)} B"


def budget_words(budget: int, free: int, total: int) -> str:
    """The budget a model may use, with what it is taken from: free memory less a safety margin."""
    return (
        f"{format_bytes(budget)} for models: {format_bytes(free)} free of {format_bytes(total)}, "
        f"less a margin for the system and other programs"
    )


__all__ = ["GIB", "KIB", "MIB", "TIB", "budget_words", "format_bytes"]
