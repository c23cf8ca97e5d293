"""The drop indicator: a translucent panel with a dashed outline over the whole window while files are dragged
over it, saying what a drop will do."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from ui.theme import current_colors


class DropOverlay(QWidget):
    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("DropOverlay")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.text = "Drop to import into My Models"
        self.detail = ".gguf files, split sets, MLX folders, or a folder of models"
        self.hide()
        parent.installEventFilter(self)

    def show_for(self, count: int, names: list[str] | None = None) -> None:
        """Show over the window while ``count`` items (named ``names``) are dragged over it."""
        self.text = f"Drop {count} item{'s' if count != 1 else ''} to import into My Models"
        shown = ", ".join((names or [])[:3]) + (f" and {count - 3} more" if count > 3 else "")
        self.detail = (
            f"{shown} — you choose to copy or link them next; the originals are never moved"
            if shown
            else ".gguf files, split sets, MLX folders, or a folder of models"
        )
        self.setGeometry(self.parentWidget().rect())
        self.raise_()
        self.show()
        self.update()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.parentWidget() and event.type() == QEvent.Type.Resize and self.isVisible():
            self.setGeometry(self.parentWidget().rect())
        return False

    def paintEvent(self, event: QPaintEvent) -> None:
        colors = current_colors()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        fill = QColor(colors.window)
        fill.setAlpha(225)
        painter.fillRect(self.rect(), fill)
        frame = QRectF(self.rect()).adjusted(16, 16, -16, -16)
        pen = QPen(QColor(colors.accent), 3, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        accent = QColor(colors.accent)
        accent.setAlpha(28)
        painter.setBrush(accent)
        painter.drawRoundedRect(frame, 18, 18)
        title = QFont(self.font())
        title.setPointSizeF(title.pointSizeF() * 1.8)
        title.setBold(True)
        painter.setFont(title)
        painter.setPen(QColor(colors.text))
        upper = QRectF(frame.left(), frame.center().y() - 48, frame.width(), 44)
        painter.drawText(upper, Qt.AlignmentFlag.AlignCenter, self.text)
        painter.setFont(self.font())
        painter.setPen(QColor(colors.muted))
        lower = QRectF(frame.left(), frame.center().y() + 4, frame.width(), 30)
        painter.drawText(lower, Qt.AlignmentFlag.AlignCenter, self.detail)
        painter.end()
