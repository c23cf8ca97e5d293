"""Light and dark themes (Fusion with our palettes), following the system's colour scheme unless the user picked
one in Settings."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QApplication


@dataclass(frozen=True)
class Colors:
    window: str
    surface: str  # text fields, lists, cards
    sidebar: str
    text: str
    muted: str
    border: str
    accent: str
    accent_text: str
    good: str
    warn: str
    bad: str


LIGHT = Colors(
    window="#f6f7f9",
    surface="#ffffff",
    sidebar="#eceef2",
    text="#1f2328",
    muted="#6b7280",
    border="#d9dce1",
    accent="#4f46e5",
    accent_text="#ffffff",
    good="#15803d",
    warn="#b45309",
    bad="#b91c1c",
)
DARK = Colors(
    window="#1c1d22",
    surface="#24262c",
    sidebar="#16171b",
    text="#e7e8ea",
    muted="#9aa0aa",
    border="#363941",
    accent="#818cf8",
    accent_text="#0b0b12",
    good="#4ade80",
    warn="#fbbf24",
    bad="#f87171",
)

_current = LIGHT


def current_colors() -> Colors:
    return _current


def system_prefers_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def resolve(theme: str) -> Colors:
    if theme == "dark":
        return DARK
    if theme == "light":
        return LIGHT
    return DARK if system_prefers_dark() else LIGHT


def apply_theme(app: QApplication, theme: str) -> Colors:
    global _current
    colors = resolve(theme)
    _current = colors
    app.setStyle("Fusion")
    palette = QPalette()
    c = {name: QColor(value) for name, value in colors.__dict__.items()}
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        palette.setColor(group, QPalette.ColorRole.Window, c["window"])
        palette.setColor(group, QPalette.ColorRole.WindowText, c["text"])
        palette.setColor(group, QPalette.ColorRole.Base, c["surface"])
        palette.setColor(group, QPalette.ColorRole.AlternateBase, c["window"])
        palette.setColor(group, QPalette.ColorRole.Text, c["text"])
        palette.setColor(group, QPalette.ColorRole.Button, c["surface"])
        palette.setColor(group, QPalette.ColorRole.ButtonText, c["text"])
        palette.setColor(group, QPalette.ColorRole.Highlight, c["accent"])
        palette.setColor(group, QPalette.ColorRole.HighlightedText, c["accent_text"])
        palette.setColor(group, QPalette.ColorRole.ToolTipBase, c["surface"])
        palette.setColor(group, QPalette.ColorRole.ToolTipText, c["text"])
        palette.setColor(group, QPalette.ColorRole.PlaceholderText, c["muted"])
        palette.setColor(group, QPalette.ColorRole.Link, c["accent"])
        palette.setColor(group, QPalette.ColorRole.Mid, c["border"])
    disabled = QColor(c["muted"])
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    app.setPalette(palette)
    app.setStyleSheet(stylesheet(colors))
    return colors


_indicator_dir: Path | None = None


def _indicator_images(c: Colors) -> tuple[str, str]:
    """PNG files for a checked box's tick and a chosen radio's dot in this theme's colours.

    Fusion draws check boxes and radio buttons with an outline derived from the window colour, which all but
    vanishes on the dark theme; the stylesheet draws them instead, and a stylesheet needs image files. PNG, not
    SVG: it needs no image-format plugin in a frozen build."""
    global _indicator_dir
    if _indicator_dir is None:
        _indicator_dir = Path(tempfile.mkdtemp(prefix="hangar-theme-"))
        atexit.register(shutil.rmtree, _indicator_dir, True)
    tick_path = _indicator_dir / f"tick-{c.accent_text.lstrip('#')}.png"
    dot_path = _indicator_dir / f"dot-{c.accent.lstrip('#')}.png"
    size = 32  # drawn at 2x: crisp on high-density screens
    if not tick_path.exists():
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(QColor(c.accent_text), 4.5)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        painter.setPen(pen)
        tick = QPainterPath(QPointF(7, 17))
        tick.lineTo(13, 23)
        tick.lineTo(25, 9)
        painter.drawPath(tick)
        painter.end()
        image.save(str(tick_path))
    if not dot_path.exists():
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(c.accent))
        painter.drawEllipse(QPointF(size / 2, size / 2), 8, 8)
        painter.end()
        image.save(str(dot_path))
    return tick_path.as_posix(), dot_path.as_posix()


def stylesheet(c: Colors) -> str:
    tick, dot = _indicator_images(c)
    return f"""
    QWidget#Sidebar {{ background: {c.sidebar}; border-right: 1px solid {c.border}; }}
    QLabel#AppTitle {{ font-size: 17px; font-weight: 600; padding: 2px 4px; }}
    QListWidget#Nav {{ background: transparent; border: none; outline: 0; font-size: 14px; }}
    QListWidget#Nav::item {{ padding: 9px 10px; margin: 2px 8px; border-radius: 8px; color: {c.text}; }}
    QListWidget#Nav::item:hover {{ background: {c.border}; }}
    QListWidget#Nav::item:selected {{ background: {c.accent}; color: {c.accent_text}; }}
    QLabel#PageTitle {{ font-size: 22px; font-weight: 600; }}
    QLabel#PageSubtitle, QLabel#Muted {{ color: {c.muted}; }}
    QLabel#EmptyTitle {{ font-size: 17px; font-weight: 600; }}
    QLabel#EmptyText {{ color: {c.muted}; font-size: 13px; }}
    QLabel#SectionTitle {{ font-size: 15px; font-weight: 600; }}
    QLabel#VerdictText {{ font-size: 15px; font-weight: 600; }}
    QFrame#Card {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 10px; }}
    QPushButton {{ padding: 6px 14px; border-radius: 6px; border: 1px solid {c.border}; background: {c.surface}; }}
    QPushButton:hover {{ border-color: {c.accent}; }}
    QPushButton#Primary {{ background: {c.accent}; color: {c.accent_text}; border: none; font-weight: 600; }}
    QPushButton#Primary:disabled {{ background: {c.border}; color: {c.muted}; }}
    QPushButton#Danger {{ color: {c.bad}; }}
    QPushButton#Danger:hover {{ border-color: {c.bad}; }}
    QPushButton:disabled {{ color: {c.muted}; }}
    QPushButton:focus {{ border-color: {c.accent}; }}
    QLineEdit, QPlainTextEdit, QTextEdit {{
        padding: 5px 8px; border: 1px solid {c.border}; border-radius: 6px; background: {c.surface};
    }}
    QComboBox, QSpinBox, QDoubleSpinBox {{ min-height: 24px; }}
    QLineEdit:focus, QPlainTextEdit:focus, QTextEdit:focus {{ border-color: {c.accent}; }}
    QStatusBar {{ border-top: 1px solid {c.border}; color: {c.muted}; }}
    QStatusBar QLabel {{ color: {c.muted}; padding: 0 8px; }}
    QProgressBar {{ border: 1px solid {c.border}; border-radius: 5px; text-align: center; background: {c.surface}; }}
    QProgressBar::chunk {{ background: {c.accent}; border-radius: 4px; }}
    QHeaderView::section {{ padding: 5px 8px; border: none; border-bottom: 1px solid {c.border};
                           background: {c.window}; font-weight: 600; }}
    QTableView, QTreeView, QListView {{ border: 1px solid {c.border}; border-radius: 8px; background: {c.surface};
                                        selection-background-color: {c.accent}; }}
    QTreeView::item {{ padding: 3px 0; }}
    QListView::item {{ padding: 3px 2px; }}
    QCheckBox::indicator, QRadioButton::indicator, QAbstractItemView::indicator {{
        width: 14px; height: 14px; border: 1px solid {c.muted}; background: {c.surface};
    }}
    QCheckBox::indicator, QAbstractItemView::indicator {{ border-radius: 4px; }}
    QRadioButton::indicator {{ border-radius: 8px; }}
    QCheckBox::indicator:hover, QRadioButton::indicator:hover {{ border-color: {c.accent}; }}
    QCheckBox::indicator:checked, QAbstractItemView::indicator:checked {{
        background: {c.accent}; border-color: {c.accent}; image: url({tick});
    }}
    QRadioButton::indicator:checked {{ border-color: {c.accent}; image: url({dot}); }}
    QCheckBox::indicator:disabled, QRadioButton::indicator:disabled {{ border-color: {c.border};
                                                                     background: {c.window}; }}
    QCheckBox::indicator:checked:disabled {{ background: {c.border}; }}
    QToolTip {{ color: {c.text}; background: {c.surface}; border: 1px solid {c.border}; padding: 4px; }}
    QLabel[badge="fits"] {{ color: {c.good}; font-weight: 600; }}
    QLabel[badge="partial"] {{ color: {c.warn}; font-weight: 600; }}
    QLabel[badge="too_large"] {{ color: {c.bad}; font-weight: 600; }}
    QLabel#ErrorText {{ color: {c.bad}; }}
    """
