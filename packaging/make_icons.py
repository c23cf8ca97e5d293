"""Render the app icon (resources/hangar.svg) at every size the platforms want: PNGs, a Windows .ico and a
macOS .icns, into resources/icons/. Run by packaging/build.sh; needs only PySide6."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parents[1]
SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)


def render(size: int, renderer: QSvgRenderer) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return image


def main() -> int:
    _app = QGuiApplication(sys.argv[:1])
    out = ROOT / "resources" / "icons"
    out.mkdir(parents=True, exist_ok=True)
    renderer = QSvgRenderer(str(ROOT / "resources" / "hangar.svg"))
    for size in SIZES:
        render(size, renderer).save(str(out / f"hangar-{size}.png"))
    render(256, renderer).save(str(out / "hangar.ico"), "ICO")
    render(1024, renderer).save(str(out / "hangar.icns"), "ICNS")
    print(f"icons written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
