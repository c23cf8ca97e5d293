"""Starts the window: the QApplication, theme, exception hooks, the bridge and the main window."""

from __future__ import annotations

import logging
import sys
from argparse import Namespace
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QFileOpenEvent

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.main_window import MainWindow

logger = logging.getLogger(__name__)


def create_window(app_context: AppContext) -> MainWindow:
    """Build the themed main window for ``app_context`` (a QApplication must exist). Used by tests too."""
    from PySide6.QtWidgets import QApplication

    from ui.bridge import Bridge
    from ui.error_dialog import install_exception_hooks
    from ui.main_window import MainWindow
    from ui.theme import apply_theme

    qt_app = QApplication.instance()
    assert isinstance(qt_app, QApplication)
    apply_theme(qt_app, app_context.settings.current.theme)
    bridge = Bridge(qt_app)
    install_exception_hooks(bridge.call_soon)
    window = MainWindow(app_context, bridge)

    def follow_system(_scheme: object) -> None:
        if app_context.settings.current.theme == "system":
            window._apply_theme("system")

    qt_app.styleHints().colorSchemeChanged.connect(follow_system)
    opener = _FileOpenFilter(window)
    qt_app.installEventFilter(opener)
    window.destroyed.connect(lambda *_: qt_app.removeEventFilter(opener))
    return window


class _FileOpenFilter(QObject):
    """macOS sends a double-clicked ``.gguf`` (the bundle's document type) as a FileOpen event, not in argv:
    hand it to My Models' import dialog, as "Open with" does on the other systems."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FileOpen and isinstance(event, QFileOpenEvent) and event.file():
            self._window.show_page("models", [event.file()])
            self._window.raise_()
            self._window.activateWindow()
            return True
        return False


def show_welcome(context: AppContext, window: MainWindow) -> None:
    """The first-run welcome, over the window; hardware detection runs off the GUI thread first."""
    from ui.operations import run_in_background
    from ui.welcome import WelcomeDialog

    def open_dialog(hardware: object) -> None:
        dialog = WelcomeDialog(context, window.bridge, hardware, parent=window)  # type: ignore[arg-type]
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    run_in_background(context.hardware, on_success=open_dialog)


def run_gui(args: Namespace, make_app: Callable[[], AppContext], open_paths: Sequence[Path] = ()) -> int:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from core import APP_NAME, __version__
    from ui.icons import app_icon

    QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    qt_app = QApplication(sys.argv[:1])
    qt_app.setApplicationName(APP_NAME)
    qt_app.setApplicationDisplayName(APP_NAME)
    qt_app.setApplicationVersion(__version__)
    qt_app.setDesktopFileName("hangar")
    qt_app.setWindowIcon(app_icon())
    from PySide6.QtWidgets import QMessageBox

    from core.errors import HangarError

    try:
        context = make_app()
    except HangarError as exc:  # settings or a database made by a newer Hangar: say so, change nothing
        QMessageBox.critical(None, APP_NAME, str(exc))
        return 1
    window = create_window(context)
    window.show()
    if context.notices:  # a damaged settings file or database was kept aside: told once, in the window too
        QMessageBox.warning(window, APP_NAME, "\n\n".join(context.notices))
    if open_paths:  # "Open with Hangar": My Models shows the import dialog for them
        window.show_page("models", [str(p) for p in open_paths])
    if not context.settings.current.first_run_done:
        show_welcome(context, window)
    try:
        return qt_app.exec()
    finally:
        from PySide6.QtCore import QThreadPool

        # Let background tasks finish (they are short) before the services they use are closed.
        QThreadPool.globalInstance().waitForDone(3000)
        context.close()
