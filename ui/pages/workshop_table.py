"""The Workshop's side-by-side table (a model over ``CompareRow`` values) and its trade-off plot (QtCharts): file
size against perplexity, and against KL divergence where a reference was measured."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCharts import QChart, QChartView, QScatterSeries, QValueAxis
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPointF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QWidget

from core.workshop.compare import CompareRow
from ui.theme import current_colors
from ui.widgets.record_model import RecordTableModel

Index = QModelIndex | QPersistentModelIndex
MIB = 1024 * 1024


def _num(value: float | None, pattern: str, scale: float = 1.0) -> str:
    return "—" if value is None else format(value * scale, pattern)


class CompareTableModel(RecordTableModel):
    COL_MODEL, COL_QUANT, COL_SIZE, COL_MEMORY, COL_PP, COL_TG, COL_PPL, COL_KLD, COL_TOP = range(9)
    HEADERS = ("Model", "Quant", "Size", "Memory", "Prompt tok/s", "Gen tok/s", "Perplexity", "KL div.", "Same top")
    HEADER_TIPS = (
        "The model file (and what it was made from)",
        "Its llama.cpp type",
        "File size on disk",
        "Memory to load it at the chosen context (estimate)",
        "Prompt processing speed on this machine",
        "Generation speed on this machine",
        "Perplexity on the text (lower is better; llama-perplexity's method)",
        "KL divergence from the reference model (lower is closer)",
        "How often its most likely token is the reference's",
    )
    RowRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[CompareRow] = []

    def set_rows(self, rows: Sequence[CompareRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def records(self) -> Sequence[Any]:
        return self._rows

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = self.record(index)
        if row is None:
            return None
        if role == self.RowRole:
            return row
        column = index.column()
        if role == Qt.ItemDataRole.TextAlignmentRole and column >= self.COL_SIZE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and column == self.COL_MODEL:
            return row.path + (f"\nMade from {row.made_from}" if row.made_from else "")
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        values = (
            row.model,
            row.quant,
            f"{row.file_size / MIB:.1f} MiB",
            _num(row.memory_bytes, ".0f", 1 / MIB) + (" MiB" if row.memory_bytes else ""),
            _num(row.pp_tokens_per_second, ".1f"),
            _num(row.tg_tokens_per_second, ".1f"),
            _num(row.perplexity, ".4f"),
            _num(row.kl_divergence, ".5f"),
            _num(row.same_top_p, ".1f", 100) + (" %" if row.same_top_p is not None else ""),
        )
        return values[column]


class TradeoffChart(QChartView):
    """One point per model: size (MiB) across, perplexity up; KL divergence on a second axis when measured."""

    def __init__(self, parent: QWidget | None = None) -> None:
        chart = QChart()
        super().__init__(chart, parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(220)
        self.setAccessibleName("Size and quality chart")
        self.setToolTip("Each point is a model: smaller and lower is better")
        colors = current_colors()
        chart.setBackgroundVisible(False)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        chart.legend().setLabelColor(QColor(colors.text))
        self.ppl = QScatterSeries()
        self.ppl.setName("Perplexity")
        self.ppl.setMarkerSize(10)
        self.ppl.setColor(QColor(colors.accent))
        self.kld = QScatterSeries()
        self.kld.setName("KL divergence")
        self.kld.setMarkerSize(9)
        self.kld.setColor(QColor(colors.warn))
        chart.addSeries(self.ppl)
        chart.addSeries(self.kld)
        self.x_axis = QValueAxis()
        self.x_axis.setTitleText("Size (MiB)")
        self.y_axis = QValueAxis()
        self.y_axis.setTitleText("Perplexity")
        self.k_axis = QValueAxis()
        self.k_axis.setTitleText("KL div.")  # fits a small window
        for axis, side in (
            (self.x_axis, Qt.AlignmentFlag.AlignBottom),
            (self.y_axis, Qt.AlignmentFlag.AlignLeft),
            (self.k_axis, Qt.AlignmentFlag.AlignRight),
        ):
            axis.setLabelsColor(QColor(colors.muted))
            axis.setTitleBrush(QColor(colors.muted))
            axis.setGridLineColor(QColor(colors.border))
            axis.setLabelFormat("%.4g")  # 1458 or 0.0308: four figures, whatever the scale
            chart.addAxis(axis, side)
        for series, y_axis in ((self.ppl, self.y_axis), (self.kld, self.k_axis)):
            series.attachAxis(self.x_axis)
            series.attachAxis(y_axis)

    def set_rows(self, rows: Sequence[CompareRow]) -> None:
        ppl = [QPointF(r.file_size / MIB, r.perplexity) for r in rows if r.perplexity is not None]
        kld = [QPointF(r.file_size / MIB, r.kl_divergence) for r in rows if r.kl_divergence is not None]
        self.ppl.replace(ppl)
        self.kld.replace(kld)
        sizes = [p.x() for p in ppl + kld] or [0.0, 1.0]
        self.x_axis.setRange(0.0, max(sizes) * 1.1 or 1.0)
        _fit(self.y_axis, [p.y() for p in ppl])
        _fit(self.k_axis, [p.y() for p in kld])


def _fit(axis: QValueAxis, values: list[float]) -> None:
    if not values:
        axis.setRange(0.0, 1.0)
        return
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.05 or 1.0
    axis.setRange(max(0.0, low - pad), high + pad)
