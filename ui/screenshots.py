"""``python -m ui.screenshots OUTDIR``: render every page in realistic states offscreen into PNG files.

Each feature adds its states to ``SCENES`` (a name and a function that prepares the window). The README shows
the results; look at them after every UI change.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _page(key: str) -> Callable[[object], None]:
    def prepare(window: object) -> None:
        window.show_page(key)  # type: ignore[attr-defined]

    return prepare


#: (file name without .png, prepare(window)). Features append richer states.
SCENES: list[tuple[str, Callable[[object], None]]] = [
    ("discover", _page("discover")),
    ("models-empty", _page("models")),
    ("chat-empty", _page("chat")),
    ("finetune-empty", _page("finetune")),
    ("downloads-empty", _page("downloads")),
    ("hardware", _page("hardware")),
    ("settings", _page("settings")),
]


def render(out_dir: Path, theme: str = "light") -> list[Path]:
    from PySide6.QtWidgets import QApplication

    from backends import available_engines
    from backends.worker import serve
    from core.app import AppContext
    from core.paths import AppPaths
    from ui.app import create_window

    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="hangar-shots-") as tmp:
        context = AppContext.create(AppPaths.under(Path(tmp)), serve, available_engines)
        context.settings.update(theme=theme)
        window = create_window(context)
        window.resize(1180, 760)
        window.show()
        for name, prepare in SCENES:
            prepare(window)
            for _ in range(5):
                qt_app.processEvents()
            path = out_dir / f"{name}.png"
            window.grab().save(str(path))
            written.append(path)
        window.close()
        context.close()
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
    for written in render(target):
        print(written)
