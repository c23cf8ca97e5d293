"""Icons and other assets. ``RESOURCES_DIR`` works from a checkout and from the frozen app."""

from __future__ import annotations

import sys
from pathlib import Path

RESOURCES_DIR = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent.parent)) / "resources"
APP_ICON_SVG = RESOURCES_DIR / "hangar.svg"
