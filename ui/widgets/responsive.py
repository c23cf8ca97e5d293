"""Layouts that fit a small window without scrolling sideways: a row of controls that wraps onto more lines, a
splitter that stacks its panes when they no longer fit side by side, and a label that cuts long text at the end
(the whole text in its tooltip)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRect, QSize, Qt
from PySide6.QtGui import QFontMetrics, QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QLayout,
    QLayoutItem,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTableView,
    QWidget,
)


class FlowLayout(QLayout):
    """Items left to right, wrapping onto the next line when the row runs out of room. Items that expand
    horizontally (a search box) share what is left of their line."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 8, line_spacing: int = 6) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._spacing = spacing
        self._line_spacing = line_spacing
        self.setContentsMargins(0, 0, 0, 0)

    # -- QLayout's interface ----------------------------------------------------------------------------------------
    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:  # type: ignore[override]
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:  # type: ignore[override]
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), apply=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, apply=True)

    def sizeHint(self) -> QSize:
        """Everything on one line."""
        items = self._visible()
        width = sum(item.sizeHint().width() for item in items) + self._spacing * max(0, len(items) - 1)
        height = max((item.sizeHint().height() for item in items), default=0)
        margins = self.contentsMargins()
        return QSize(width + margins.left() + margins.right(), height + margins.top() + margins.bottom())

    def minimumSize(self) -> QSize:
        """As narrow as the widest single item: below the one-line width the row wraps."""
        items = self._visible()
        width = max((item.minimumSize().width() for item in items), default=0)
        height = max((item.minimumSize().height() for item in items), default=0)
        margins = self.contentsMargins()
        return QSize(width + margins.left() + margins.right(), height + margins.top() + margins.bottom())

    # -- placing ----------------------------------------------------------------------------------------------------
    def _visible(self) -> list[QLayoutItem]:
        return [item for item in self._items if not item.isEmpty()]

    def lines(self, width: int) -> list[list[QLayoutItem]]:
        """The items of each line at ``width``."""
        lines: list[list[QLayoutItem]] = []
        line: list[QLayoutItem] = []
        used = 0
        for item in self._visible():
            wanted = item.sizeHint().width()
            needed = wanted if not line else used + self._spacing + wanted
            if line and needed > width:
                lines.append(line)
                line, used = [item], wanted
            else:
                line.append(item)
                used = needed
        if line:
            lines.append(line)
        return lines

    def _arrange(self, rect: QRect, *, apply: bool) -> int:
        margins = self.contentsMargins()
        area = rect.adjusted(margins.left(), margins.top(), -margins.right(), -margins.bottom())
        y = area.y()
        for number, line in enumerate(self.lines(area.width())):
            widths = [min(area.width(), max(item.sizeHint().width(), item.minimumSize().width())) for item in line]
            spare = area.width() - sum(widths) - self._spacing * (len(line) - 1)
            growing = [i for i, item in enumerate(line) if item.expandingDirections() & Qt.Orientation.Horizontal]
            if spare > 0 and growing:
                for i in growing:
                    widths[i] += spare // len(growing)
            height = max(item.sizeHint().height() for item in line)
            if number:
                y += self._line_spacing
            x = area.x()
            for item, width in zip(line, widths, strict=True):
                item_height = min(height, item.sizeHint().height())
                if item.expandingDirections() & Qt.Orientation.Vertical:
                    item_height = height
                if apply:
                    item.setGeometry(QRect(x, y + (height - item_height) // 2, width, item_height))
                x += width + self._spacing
            y += height
        return y - area.y() + margins.top() + margins.bottom()


class ResponsiveSplitter(QSplitter):
    """Panes side by side while each gets at least its minimum width, stacked top to bottom otherwise: a small
    window then scrolls the page down rather than sideways (or cuts a pane off). Stacked, each pane is as tall as
    its content wants, so a form shows whole instead of in a scrolling sliver."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setChildrenCollapsible(False)
        self._own_min_heights: dict[int, int] = {}

    def _panes(self) -> list[QWidget]:
        return [w for w in (self.widget(i) for i in range(self.count())) if w is not None and not w.isHidden()]

    @staticmethod
    def _min_width(widget: QWidget) -> int:
        return max(widget.minimumWidth(), widget.minimumSizeHint().width())

    def _own_min_height(self, widget: QWidget) -> int:
        return self._own_min_heights.setdefault(id(widget), widget.minimumHeight())

    def side_by_side_width(self) -> int:
        """The narrowest width at which the panes still fit side by side."""
        panes = self._panes()
        return sum(self._min_width(w) for w in panes) + self.handleWidth() * max(0, len(panes) - 1)

    def stacked_heights(self, width: int | None = None) -> list[int]:
        """Each pane's height when stacked at ``width``: what it would like, so that nothing is squeezed."""
        width = self.width() if width is None else width
        return [
            max(self._own_min_height(w), w.minimumSizeHint().height(), _natural_height(w, width)) for w in self._panes()
        ]

    def minimumSizeHint(self) -> QSize:
        panes = self._panes()
        width = max((self._min_width(w) for w in panes), default=0)
        if self.orientation() == Qt.Orientation.Horizontal:
            height = max((max(w.minimumHeight(), w.minimumSizeHint().height()) for w in panes), default=0)
        else:
            height = sum(self.stacked_heights()) + self.handleWidth() * max(0, len(panes) - 1)
        return QSize(width, height)

    def resizeEvent(self, event: QResizeEvent) -> None:
        self.arrange(event.size().width())
        super().resizeEvent(event)

    def arrange(self, width: int) -> None:
        wanted = Qt.Orientation.Horizontal if width >= self.side_by_side_width() else Qt.Orientation.Vertical
        panes = self._panes()
        if wanted == Qt.Orientation.Vertical:
            heights = self.stacked_heights(width)
            for pane, height in zip(panes, heights, strict=True):
                pane.setMinimumHeight(height)
        else:
            for pane in panes:
                pane.setMinimumHeight(self._own_min_height(pane))
        if wanted == self.orientation():
            return
        self.setOrientation(wanted)
        if wanted == Qt.Orientation.Vertical:
            self.setSizes(heights)
        else:
            self.setSizes([max(self._min_width(w), w.sizeHint().width()) for w in panes])
        self.updateGeometry()


def _natural_height(widget: QWidget, width: int) -> int:
    """A pane's height at ``width``; a scroll area's is its content's at full height (a stacked form shows whole,
    without a scroll bar of its own)."""
    content = widget.widget() if isinstance(widget, QScrollArea) else widget
    if content is None:
        return widget.sizeHint().height()
    height = content.heightForWidth(width) if content.hasHeightForWidth() else -1
    height = max(height, content.sizeHint().height())
    return height + (2 * widget.frameWidth() if isinstance(widget, QScrollArea) else 0)


class ElidedLabel(QLabel):
    """One line of text cut at the end ("lmquant/Qwen2.5-7B-Ins…") when it does not fit, with the whole text in
    its tooltip; it never makes its pane wider than the pane allows."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)
        self.setAccessibleName(text)

    def minimumSizeHint(self) -> QSize:
        return QSize(QFontMetrics(self.font()).horizontalAdvance("…") * 4, super().minimumSizeHint().height())

    def elided_text(self) -> str:
        """The text as shown at the label's width."""
        width = self.contentsRect().width()
        return QFontMetrics(self.font()).elidedText(self.text(), Qt.TextElideMode.ElideRight, width)

    def is_elided(self) -> bool:
        return self.elided_text() != self.text()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setFont(self.font())
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(self.contentsRect(), int(self.alignment()) | Qt.AlignmentFlag.AlignVCenter, self.elided_text())
        painter.end()


class ColumnsThatFit(QObject):
    """Keeps a table's stretching name column readable when the table is narrow: the optional columns hide, in
    the order given, while the name would get less than ``name_width`` (their values stay in the row tooltip)."""

    def __init__(self, view: QTableView, name_column: int, name_width: int, optional: list[int]) -> None:
        super().__init__(view)
        self.view = view
        self.name_column = name_column
        self.name_width = name_width
        self.optional = optional
        header = view.horizontalHeader()
        self._widths = {c: header.sectionSize(c) for c in range(header.count())}
        view.viewport().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self.update_columns()
        return False

    def update_columns(self) -> None:
        header = self.view.horizontalHeader()
        for column in self.optional:
            if not self.view.isColumnHidden(column):
                self._widths[column] = header.sectionSize(column)
        shown = [
            c
            for c in range(header.count())
            if c != self.name_column and (c in self.optional or not self.view.isColumnHidden(c))
        ]
        room = self.view.viewport().width()
        hide: set[int] = set()
        for column in self.optional:
            if room - sum(self._widths.get(c, 0) for c in shown if c not in hide) >= self.name_width:
                break
            hide.add(column)
        for column in self.optional:
            if self.view.isColumnHidden(column) != (column in hide):
                self.view.setColumnHidden(column, column in hide)
        # Still too narrow: the name keeps its readable width and the table scrolls sideways inside itself.
        squeezed = room - sum(self._widths.get(c, 0) for c in shown if c not in hide) < self.name_width
        mode = QHeaderView.ResizeMode.Interactive if squeezed else QHeaderView.ResizeMode.Stretch
        if header.sectionResizeMode(self.name_column) != mode:
            header.setSectionResizeMode(self.name_column, mode)
            if squeezed:
                header.resizeSection(self.name_column, self.name_width)
