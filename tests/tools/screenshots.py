"""``python main.py --screenshots OUTDIR``: render every page in realistic states offscreen into PNG files.

Each feature adds its states to ``SCENES`` (a name and a function that prepares the window). The README shows
the results; look at them after every UI change.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.app import AppContext

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _page(key: str) -> Callable[[object], None]:
    def prepare(window: object) -> None:
        window.show_page(key)  # type: ignore[attr-defined]

    return prepare


def _models_scene(name: str, window: object) -> None:
    from tests.tools import models_scenes

    getattr(models_scenes, name)(window)


def _hardware_scene(name: str, window: object) -> None:
    from tests.tools import hardware_scenes

    getattr(hardware_scenes, name)(window)


def _welcome(window: object) -> object:
    from ui.welcome import WelcomeDialog

    app = window.app  # type: ignore[attr-defined]
    return WelcomeDialog(app, window.bridge, app.hardware(), parent=window)  # type: ignore[attr-defined]


#: (file name without .png, prepare(window)). Features append richer states.
SCENES: list[tuple[str, Callable[[object], object]]] = [
    ("welcome", _welcome),
    ("discover", _page("discover")),
    ("models-empty", _page("models")),
    ("models-library", lambda window: _models_scene("scene_library", window)),
    ("models-drop", lambda window: _models_scene("scene_drop", window)),
    ("models-import-dialog", lambda window: _models_scene("scene_import_dialog", window)),
    ("chat-empty", _page("chat")),
    ("finetune-empty", _page("finetune")),
    ("downloads-empty", _page("downloads")),
    ("hardware", lambda window: _hardware_scene("scene_detected", window)),
    ("hardware-estimate", lambda window: _hardware_scene("scene_estimate", window)),
    ("hardware-estimate-gpu", lambda window: _hardware_scene("scene_estimate_gpu", window)),
    ("settings", _page("settings")),
]


def _add_hub_scenes() -> None:
    try:
        from tests.tools.screenshots_hub import SCENES as HUB_SCENES  # needs tests/hub: a source checkout only
    except ImportError:
        return
    SCENES.extend(HUB_SCENES)


_add_hub_scenes()


def _add_finetune_scenes() -> None:
    from tests.tools.screenshot_finetune import SCENES as FINETUNE

    SCENES.extend(FINETUNE)


_add_finetune_scenes()


def _feature_scenes() -> list[tuple[str, Callable[[object], None]]]:
    from tests.tools.chat_images_scenes import SCENES as CHAT_IMAGES_SCENES
    from tests.tools.chat_scenes import SCENES as CHAT_SCENES
    from tests.tools.chat_tools_scenes import SCENES as CHAT_TOOLS_SCENES
    from tests.tools.machines_scenes import SCENES as MACHINES_SCENES

    return [
        *CHAT_SCENES,
        *CHAT_TOOLS_SCENES,
        *CHAT_IMAGES_SCENES,
        ("workshop", _page("workshop")),
        ("server", _page("server")),
        *MACHINES_SCENES,
    ]


SCENES.extend(_feature_scenes())


def render(
    out_dir: Path, make_context: Callable[[Path], AppContext], theme: str = "light", size: tuple[int, int] = (1180, 760)
) -> list[Path]:
    """Render every scene with a fresh app whose data lives in a temporary folder (``make_context(folder)``)."""
    from PySide6.QtWidgets import QApplication

    from ui.app import create_window

    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    out_dir.mkdir(parents=True, exist_ok=True)
    try:  # Discover opens with the Hub's popular models: the local stand-in answers, not the real Hub
        from tests.tools.screenshots_hub import _local_hub

        _local_hub()
    except ImportError:
        pass
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="hangar-shots-") as tmp:
        context = make_context(Path(tmp))
        context.settings.update(theme=theme)
        window = create_window(context)
        window.resize(*size)
        window.show()
        for name, prepare in SCENES:
            # A scene prepares the window, or returns another widget (a dialog) to photograph instead.
            target = prepare(window) or window
            if target is not window:
                target.show()  # type: ignore[attr-defined]
            for _ in range(5):
                qt_app.processEvents()
            path = out_dir / f"{name}.png"
            target.grab().save(str(path))  # type: ignore[attr-defined]
            if target is not window:
                target.close()  # type: ignore[attr-defined]
            written.append(path)
        window.close()
        from PySide6.QtCore import QThreadPool

        QThreadPool.globalInstance().waitForDone(10000)  # estimates and listings still running on pool threads
        context.close()
    return written


def main(argv: list[str] | None = None) -> int:
    """``make screenshots``: render every page offscreen into PNG files."""
    import os
    import sys
    from argparse import Namespace

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import argparse

    from main import build_app

    parser = argparse.ArgumentParser(description="Render every page offscreen into PNG files.")
    parser.add_argument("out_dir", nargs="?", default="docs/screenshots")
    parser.add_argument("--theme", default="light", choices=("light", "dark"))
    parser.add_argument("--size", default="1180x760", help="window size, e.g. 900x600 (the minimum) or 1600x1000")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    make = lambda folder: build_app(Namespace(data_dir=str(folder)), console_logging=False)  # noqa: E731
    for path in render(Path(args.out_dir), make, theme=args.theme, size=(width, height)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
