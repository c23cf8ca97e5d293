"""What the screenshots showed and was fixed, kept fixed: table headers fit their columns, dark-theme check boxes
have their images, loss-chart ticks fall on round numbers, empty hints take no room."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QTableView, QWidget

from ui.app import create_window
from ui.theme import DARK, LIGHT, stylesheet
from ui.widgets.common import CollapsingLabel
from ui.widgets.estimate_panel import EstimatePanel
from ui.widgets.library_table import COL_PARAMS
from ui.widgets.loss_chart import LossChart, nice_step


@pytest.fixture
def window(qtbot, app):  # type: ignore[no-untyped-def]
    win = create_window(app)
    qtbot.addWidget(win)
    win.show()
    return win


def _clipped_headers(view: QTableView) -> list[str]:
    header = view.horizontalHeader()
    font = header.font()
    font.setBold(True)
    metrics = QFontMetrics(font)
    clipped = []
    for column in range(view.model().columnCount()):
        if view.isColumnHidden(column) or header.sectionResizeMode(column) != header.ResizeMode.Interactive:
            continue
        text = str(view.model().headerData(column, Qt.Orientation.Horizontal) or "")
        if header.sectionSize(column) < metrics.horizontalAdvance(text) + 16:  # 8 px padding a side
            clipped.append(f"{text!r}: {header.sectionSize(column)} px")
    return clipped


def test_table_headers_are_not_clipped(window) -> None:  # type: ignore[no-untyped-def]
    discover, models = window.pages["discover"], window.pages["models"]
    for view in (discover.results, discover.detail.files, models.table):
        assert not _clipped_headers(view), _clipped_headers(view)
    models.table.horizontalHeader().resizeSection(COL_PARAMS, 30)  # the check itself catches a clipped "Params"
    assert _clipped_headers(models.table) == ["'Params': 30 px"]


@pytest.mark.parametrize("colors", [LIGHT, DARK], ids=["light", "dark"])
def test_check_box_and_radio_images_exist_in_the_themes_colours(qtbot, colors) -> None:  # type: ignore[no-untyped-def]
    sheet = stylesheet(colors)
    images = re.findall(r"url\(([^)]+)\)", sheet)
    assert len(images) == 2
    for image in images:
        assert Path(image).is_file() and Path(image).stat().st_size > 0
    assert colors.accent.lstrip("#") in images[1]  # the radio's dot is in this theme's accent


def test_loss_chart_ticks_fall_on_round_numbers(qtbot) -> None:  # type: ignore[no-untyped-def]
    assert [nice_step(s) for s in (10, 60, 400, 7.13, 1.05, 0.3)] == [2, 20, 100, 2, 0.5, 0.1]
    chart = LossChart()
    qtbot.addWidget(chart)
    chart.set_curves([(1, 6.5), (30, 2.0), (60, 1.1)], [(30, 2.2)], total=60)
    assert (chart.x_axis.min(), chart.x_axis.max()) == (0, 60)  # the run fills the chart's width
    assert chart.x_axis.tickInterval() == 20
    assert chart.y_axis.tickInterval() == 2


def test_empty_hints_take_no_room(qtbot) -> None:  # type: ignore[no-untyped-def]
    orphan = CollapsingLabel()
    qtbot.addWidget(orphan)
    orphan.setText("Not in a window yet")
    assert not orphan.isVisible()  # never opened as a window of its own (it would take the focus)
    parent = QWidget()
    qtbot.addWidget(parent)
    label = CollapsingLabel(parent=parent)
    assert label.isHidden()
    label.setText("Earlier loads of this model: …")
    assert not label.isHidden()
    label.setText("")
    assert label.isHidden()
    panel = EstimatePanel()
    qtbot.addWidget(panel)
    assert panel.badge.isHidden()  # no "Unknown" badge before there is a model
