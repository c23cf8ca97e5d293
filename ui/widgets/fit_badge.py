"""Fit badges: "Fits", "Partial", "Too large" wherever a model or file appears (lists, cards, the chat bar).

Pages estimate with ``core.estimate.fitting`` (``estimate_header`` then ``fit_level``) and show the result with
``FitBadge.set_estimate``; table models use ``badge_text``/``badge_color`` for their cells.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QWidget

from ui.theme import current_colors

if TYPE_CHECKING:
    from core.estimate.fitting import FitLevel
    from core.estimate.llama import Estimate
    from core.estimate.mlx import MlxEstimate

# Keyed by FitLevel's (string) values: core.estimate.fitting loads the GGUF reader, imported on first estimate.
_TEXT = {"fits": "Fits", "partial": "Partial", "too_large": "Too large", "unknown": "Unknown"}


def badge_text(level: FitLevel) -> str:
    return _TEXT[level]


def badge_color(level: FitLevel) -> QColor:
    colors = current_colors()
    return QColor(
        {"fits": colors.good, "partial": colors.warn, "too_large": colors.bad, "unknown": colors.muted}[level]
    )


def badge_tooltip(estimate: Estimate | MlxEstimate | None) -> str:
    """One sentence for the badge's tooltip: the verdict in words and the memory it needs."""
    if estimate is None:
        return "Not estimated yet."
    from core.estimate.llama import Estimate
    from ui.units import format_bytes

    if isinstance(estimate, Estimate):
        return (
            f"{estimate.verdict_text}: about {format_bytes(estimate.resident_bytes)} at {estimate.n_ctx:,} tokens of "
            f"context; up to {estimate.max_context:,} tokens fit."
        )
    verdict = "Fits" if estimate.fits else "Does not fit"
    return (
        f"{verdict} (MLX): about {format_bytes(estimate.total_bytes)} at {estimate.context_length:,} tokens of context."
    )


class FitBadge(QLabel):
    """A small coloured label; colours come from the theme through the ``badge`` property."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from core.estimate.fitting import FitLevel

        self.level = FitLevel.UNKNOWN
        self.set_level(FitLevel.UNKNOWN)

    def set_level(self, level: FitLevel, tooltip: str = "") -> None:
        self.level = level
        self.setText(badge_text(level))
        self.setProperty("badge", level.value)
        self.setToolTip(tooltip)
        self.setAccessibleName(f"Fit: {badge_text(level)}")
        # the stylesheet selects on the property: re-polish so the colour follows it
        self.style().unpolish(self)
        self.style().polish(self)

    def set_estimate(self, estimate: Estimate | MlxEstimate | None) -> None:
        from core.estimate.fitting import fit_level

        self.set_level(fit_level(estimate), badge_tooltip(estimate))
