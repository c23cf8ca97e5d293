"""Line icons for the sidebar and buttons, drawn from small SVG paths in the palette's text colour, so they
match both themes and stay sharp at any scale."""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

from resources import APP_ICON_SVG

_PATHS = {
    "discover": '<circle cx="11" cy="11" r="6.5"/><path d="M20 20l-4.2-4.2"/>',
    "models": '<path d="M12 3.5l8.5 4.5-8.5 4.5-8.5-4.5z"/><path d="M3.5 12.5l8.5 4.5 8.5-4.5"/>'
    '<path d="M3.5 16.5l8.5 4.5 8.5-4.5"/>',
    "chat": '<path d="M4 5.5h16v10.5H10l-6 4.5z"/><path d="M8 10h8M8 13h5"/>',
    "finetune": '<path d="M4 6h9M17 6h3M4 12h3M11 12h9M4 18h11M19 18h1"/><circle cx="15" cy="6" r="2"/>'
    '<circle cx="9" cy="12" r="2"/><circle cx="17" cy="18" r="2"/>',
    "downloads": '<path d="M12 4v11M7.5 10.5 12 15l4.5-4.5M5 19.5h14"/>',
    "hardware": '<rect x="6.5" y="6.5" width="11" height="11" rx="2"/><rect x="10" y="10" width="4" height="4"/>'
    '<path d="M9.5 3v3.5M14.5 3v3.5M9.5 17.5V21M14.5 17.5V21M3 9.5h3.5M3 14.5h3.5M17.5 9.5H21M17.5 14.5H21"/>',
    "machines": '<rect x="2.5" y="4.5" width="9" height="7" rx="1"/>'
    '<rect x="12.5" y="12.5" width="9" height="7" rx="1"/>'
    '<path d="M7 11.5v3.5h5.5M17 12.5V9h-5.5"/>',
    "settings": '<circle cx="12" cy="12" r="3"/><path d="M12 2.5v3M12 18.5v3M2.5 12h3M18.5 12h3M5.3 5.3l2.1 2.1'
    'M16.6 16.6l2.1 2.1M5.3 18.7l2.1-2.1M16.6 7.4l2.1-2.1"/>',
    "server": '<rect x="4" y="4.5" width="16" height="6" rx="1.5"/>'
    '<rect x="4" y="13.5" width="16" height="6" rx="1.5"/><path d="M7.5 7.5h.01M7.5 16.5h.01"/>',
    "workshop": '<path d="M12 4v16M7 20h10M4.5 7.5h15"/><path d="M4.5 7.5 2 14h5zM19.5 7.5 17 14h5z"/>',
    "stop": '<rect x="6" y="6" width="12" height="12" rx="2"/>',
    "send": '<path d="M4 12l16-8-6 16-2.5-6.5z"/>',
    "plus": '<path d="M12 5v14M5 12h14"/>',
    "folder": '<path d="M3.5 6.5h6l2 2h9v10h-17z"/>',
    "trash": '<path d="M5 7h14M9.5 7V4.5h5V7M7 7l1 13h8l1-13"/>',
    "copy": '<rect x="8" y="8" width="11" height="12" rx="1.5"/><path d="M5 16V4.5h10"/>',
    "refresh": '<path d="M19 8a7.5 7.5 0 1 0 1 6"/><path d="M19.5 3.5V8H15"/>',
}


def _svg(name: str, color: str) -> bytes:
    body = _PATHS[name]
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" '
        f'stroke="{color}" stroke-width="1.7" stroke-linecap="round" stroke-linejoin="round">{body}</svg>'
    ).encode()


@lru_cache(maxsize=256)
def line_icon(name: str, color: str = "#6b7280", size: int = 48) -> QIcon:
    renderer = QSvgRenderer(QByteArray(_svg(name, color)))
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return QIcon(pixmap)


def themed_icon(name: str, color: QColor, selected: QColor | None = None) -> QIcon:
    """An icon in ``color``, and in ``selected`` when its list item is selected (text on the accent colour)."""
    icon = QIcon(line_icon(name, color.name()).pixmap(48, 48))
    if selected is not None:
        icon.addPixmap(line_icon(name, selected.name()).pixmap(48, 48), QIcon.Mode.Selected)
    return icon


@lru_cache(maxsize=1)
def app_icon() -> QIcon:
    icon = QIcon()
    renderer = QSvgRenderer(str(APP_ICON_SVG))
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        icon.addPixmap(pixmap)
    return icon
