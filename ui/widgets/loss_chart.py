"""A live loss chart (QtCharts): training loss per step and validation loss per evaluation."""

from __future__ import annotations

import math
from collections.abc import Iterable

from PySide6.QtCharts import QChart, QChartView, QLineSeries, QScatterSeries, QValueAxis
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget

from ui.theme import current_colors


class LossChart(QChartView):
    def __init__(self, parent: QWidget | None = None) -> None:
        chart = QChart()
        super().__init__(chart, parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(220)
        self.setAccessibleName("Loss chart")
        chart.setBackgroundVisible(False)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        chart.setMargins(chart.margins().__class__(4, 4, 4, 4))
        self.train = QLineSeries()
        self.train.setName("Training loss")
        self.val = QLineSeries()
        self.val.setName("Validation loss")
        self.val_points = QScatterSeries()
        self.val_points.setMarkerSize(7)
        for series in (self.train, self.val, self.val_points):
            chart.addSeries(series)
        chart.legend().markers(self.val_points)[0].setVisible(False)
        self.x_axis = QValueAxis()
        self.x_axis.setTitleText("Step")
        self.x_axis.setLabelFormat("%d")
        self.y_axis = QValueAxis()
        self.y_axis.setTitleText("Loss")
        self.y_axis.setLabelFormat("%.2f")
        for axis, side in ((self.x_axis, Qt.AlignmentFlag.AlignBottom), (self.y_axis, Qt.AlignmentFlag.AlignLeft)):
            chart.addAxis(axis, side)
            for series in (self.train, self.val, self.val_points):
                series.attachAxis(axis)
        self.apply_colors()
        self._max_step = 10  # an empty chart still shows whole steps on its axis
        self._max_loss = 1.0
        self._rescale()

    def apply_colors(self) -> None:
        """The theme's colours on the legend, axes and lines (again whenever the theme changes: a legend left in
        the light theme's dark grey is nearly invisible on the dark one)."""
        colors = current_colors()
        chart = self.chart()
        chart.legend().setLabelColor(QColor(colors.text))
        self.train.setPen(QPen(QColor(colors.accent), 2))
        self.val.setPen(QPen(QColor(colors.warn), 2, Qt.PenStyle.DashLine))
        self.val_points.setColor(QColor(colors.warn))
        self.val_points.setBorderColor(QColor(colors.warn))
        for axis in (self.x_axis, self.y_axis):
            axis.setLabelsColor(QColor(colors.muted))
            axis.setTitleBrush(QColor(colors.muted))
            axis.setGridLineColor(QColor(colors.border))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self.apply_colors()
        super().changeEvent(event)

    # -- data --------------------------------------------------------------------------------------------------
    def clear(self) -> None:
        for series in (self.train, self.val, self.val_points):
            series.clear()
        self._max_step, self._max_loss = 10, 1.0
        self._rescale()

    def set_curves(self, train: Iterable[tuple[int, float]], val: Iterable[tuple[int, float]], total: int) -> None:
        self.clear()
        self.train.replace([QPointF(s, v) for s, v in train])
        points = [QPointF(s, v) for s, v in val]
        self.val.replace(points)
        self.val_points.replace(points)
        self._max_step = max(10, total)
        losses = [p.y() for p in (*self.train.points(), *points)]
        self._max_loss = max(losses) if losses else 1.0
        self._rescale()

    def add_train(self, step: int, loss: float) -> None:
        # A resumed run re-sends steps after its checkpoint: drop what comes after them first.
        while self.train.count() and self.train.at(self.train.count() - 1).x() >= step:
            self.train.remove(self.train.count() - 1)
        self.train.append(step, loss)
        self._grow(step, loss)

    def add_val(self, step: int, loss: float) -> None:
        while self.val.count() and self.val.at(self.val.count() - 1).x() >= step:
            self.val.remove(self.val.count() - 1)
            self.val_points.remove(self.val_points.count() - 1)
        self.val.append(step, loss)
        self.val_points.append(step, loss)
        self._grow(step, loss)

    def set_total_steps(self, total: int) -> None:
        self._max_step = max(self._max_step, total)
        self._rescale()

    def _grow(self, step: int, loss: float) -> None:
        if step > self._max_step or loss > self._max_loss:
            self._max_step = max(self._max_step, step)
            self._max_loss = max(self._max_loss, loss)
            self._rescale()

    def _rescale(self) -> None:
        # The axes span the run exactly; their ticks fall on 1, 2 or 5 × 10^n ("0 2 5 7 10" and "1.70 3.39"
        # read as noise, and rounding the range up instead would leave a third of a 60-step run's chart empty).
        top = self._max_loss * 1.05
        for axis, span in ((self.x_axis, self._max_step), (self.y_axis, top)):
            axis.setRange(0, span)
            axis.setTickType(QValueAxis.TickType.TicksDynamic)
            axis.setTickAnchor(0)
            axis.setTickInterval(nice_step(span))
        self.y_axis.setLabelFormat("%.1f" if nice_step(top) >= 0.1 else "%.2f")


def nice_step(span: float, ticks: int = 5) -> float:
    """The 1, 2 or 5 × 10^n step that cuts ``span`` into about ``ticks`` parts."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
