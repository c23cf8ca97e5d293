"""Small building blocks every page uses: a page header, an empty state, and column sizing for tables."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTableView, QVBoxLayout, QWidget

from ui.icons import line_icon
from ui.theme import current_colors


class PageHeader(QWidget):
    def __init__(self, title: str, subtitle: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel(title)
        self.title.setObjectName("PageTitle")
        self.subtitle = QLabel(subtitle)
        self.subtitle.setObjectName("PageSubtitle")
        self.subtitle.setWordWrap(True)
        if not subtitle:  # never show() a label before it has a parent: it would flash as a window of its own
            self.subtitle.hide()
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(self.title)
        text.addWidget(self.subtitle)
        self.actions = QHBoxLayout()
        self.actions.setSpacing(8)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 8)
        layout.addLayout(text, 1)
        layout.addLayout(self.actions)


class EmptyState(QWidget):
    """A friendly centred message for a screen with nothing to show yet, with an optional action."""

    def __init__(
        self,
        icon: str,
        title: str,
        text: str,
        action_text: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        picture = QLabel()
        picture.setPixmap(line_icon(icon, current_colors().muted, 96).pixmap(72, 72))
        picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title = QLabel(title)
        self.title.setObjectName("EmptyTitle")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text = QLabel(text)
        self.text.setObjectName("EmptyText")
        self.text.setWordWrap(True)
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # At most 460 px wide, but free to narrow in a small window (a fixed width pushed whole pages off-screen).
        self.text.setMinimumWidth(220)
        self.text.setMaximumWidth(460)
        # A wrapped label inside an aligned layout item gets no height-for-width; give it room for its narrowest.
        self.text.ensurePolished()
        self.text.setMinimumHeight(self.text.heightForWidth(220) + 4)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(picture)
        layout.addSpacing(8)
        layout.addWidget(self.title)
        layout.addWidget(self.text, 0, Qt.AlignmentFlag.AlignHCenter)
        self.action: QPushButton | None = None
        if action_text:
            self.action = QPushButton(action_text)
            self.action.setObjectName("Primary")
            layout.addSpacing(8)
            layout.addWidget(self.action, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)


class CollapsingLabel(QLabel):
    """A label that takes no room while it has nothing to say (an empty QLabel still leaves a blank line)."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setText(text)

    def setText(self, text: str) -> None:
        super().setText(text)
        if not text:
            self.hide()
        elif self.parentWidget() is not None:
            self.show()
        # Without a parent, show() would open the label as a window of its own (taking the focus from the main
        # window); it shows when it gets one (event() below).

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ParentChange and self.text() and self.parentWidget() is not None:
            self.setVisible(True)
        return super().event(event)


def size_columns(view: QTableView, widths: dict[int, int]) -> None:
    """Set each column's starting width, but never narrower than its header's text: a clipped header
    ("Downl.", "Param") reads as a bug. Headers are bold (theme.py), hence the bold metrics."""
    header = view.horizontalHeader()
    model = view.model()
    font = header.font()
    font.setBold(True)
    metrics = QFontMetrics(font)
    # the section's padding (theme.py: 8 px a side) and room for a sort arrow where the view sorts
    extra = 18 + (6 if view.isSortingEnabled() else 0)
    for column, width in widths.items():
        text = str(model.headerData(column, Qt.Orientation.Horizontal) or "")
        header.resizeSection(column, max(width, metrics.horizontalAdvance(text) + extra))


class Page(QWidget):
    """Base of every page: a header on top, the page's own content below, consistent margins."""

    def __init__(self, title: str, subtitle: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = PageHeader(title, subtitle)
        self.body = QVBoxLayout()
        self.body.setSpacing(10)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 16)
        layout.addWidget(self.header)
        layout.addLayout(self.body, 1)
