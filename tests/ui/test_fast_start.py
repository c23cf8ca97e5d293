"""A fast start: the window builds only the page it shows, and showing it imports none of the heavy libraries
(the Hub client, numpy, markdown, charts, the engines); a page built later never steals the window's focus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication, QLabel

from ui.app import create_window
from ui.main_window import BACKGROUND_PAGES, PAGES

ROOT = Path(__file__).resolve().parents[2]

HEAVY = (
    "huggingface_hub",
    "httpx2",
    "numpy",
    "jinja2",
    "keyring",
    "markdown",
    "pygments",
    "PySide6.QtCharts",
    "llama_cpp",
    "mlx",
    "torch",
)

START = """
import json, sys
from PySide6.QtWidgets import QApplication, QLabel
qt = QApplication([])
import main
from ui.cli import parse
from ui.app import create_window
context = main.build_app(parse([]), console_logging=False)
window = create_window(context)
window.show()
qt.processEvents()
print(json.dumps({"heavy": [m for m in HEAVY if m in sys.modules], "built": [k for k in window.pages
      if window.pages.is_built(k)]}))
window.close()
context.close()
"""


def test_start_up_builds_one_page_and_imports_nothing_heavy(tmp_path: Path) -> None:
    env = dict(os.environ, HANGAR_DATA_DIR=str(tmp_path / "data"), QT_QPA_PLATFORM="offscreen")
    code = f"HEAVY = {HEAVY!r}\n{START}"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["built"] == ["discover"]


def test_pages_are_built_when_first_shown_without_taking_the_focus(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    window = create_window(app)
    qtbot.addWidget(window)
    assert [k for k in window.pages if window.pages.is_built(k)] == ["discover"]
    window.show()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=2000)
    for key, *_rest in PAGES[1:]:
        window.show_page(key)
        assert window.pages.is_built(key)
        assert window.current_page() is window.pages[key] and window.stack.currentWidget().widget() is window.pages[key]
        qtbot.wait(20)
        # A widget shown before it had a parent opens as a window of its own and takes the focus.
        assert QApplication.activeWindow() is window, key
    assert len(window.pages.built()) == len(PAGES)


def test_background_pages_are_built_soon_after_the_first_paint(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    """My Models files finished downloads into the library, Downloads keeps the status bar: both must exist even
    if nobody opens them."""
    window = create_window(app)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: all(window.pages.is_built(k) for k in BACKGROUND_PAGES), timeout=5000)
    assert window.current_page_key() == "discover"
    qtbot.waitUntil(lambda: window.statusBar().findChild(QLabel, "DownloadsSummary") is not None, timeout=5000)
