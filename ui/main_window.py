"""The main window: a sidebar of pages, the page stack, and a status bar with memory and running jobs."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
from PySide6.QtCore import QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QColor, QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from core import APP_NAME
from core.jobs import Job
from ui.icons import app_icon, themed_icon
from ui.theme import current_colors

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge

logger = logging.getLogger(__name__)

#: (key, label, module, class, tooltip). The order is the sidebar's.
PAGES: tuple[tuple[str, str, str, str, str], ...] = (
    ("discover", "Discover", "ui.pages.discover", "DiscoverPage", "Search Hugging Face for models (Ctrl+1)"),
    ("models", "My Models", "ui.pages.models", "ModelsPage", "Models on this machine (Ctrl+2)"),
    ("chat", "Chat", "ui.pages.chat", "ChatPage", "Chat with a local model (Ctrl+3)"),
    ("finetune", "Fine-tune", "ui.pages.finetune", "FinetunePage", "Train a LoRA adapter (Ctrl+4)"),
    ("downloads", "Downloads", "ui.pages.downloads", "DownloadsPage", "Download queue and history (Ctrl+5)"),
    ("hardware", "Hardware", "ui.pages.hardware", "HardwarePage", "GPUs, memory and engines (Ctrl+6)"),
    ("workshop", "Workshop", "ui.pages.workshop", "WorkshopPage", "Compare, evaluate and quantize models (Ctrl+7)"),
    ("server", "Server", "ui.pages.server", "ServerPage", "Serve models over an OpenAI-compatible API (Ctrl+8)"),
    (
        "machines",
        "Machines",
        "ui.pages.machines",
        "MachinesPage",
        "Remote servers and this machine's RPC worker (Ctrl+9)",
    ),
    ("settings", "Settings", "ui.pages.settings", "SettingsPage", "Preferences (Ctrl+,)"),
)

_GIB = 1024**3


class MainWindow(QMainWindow):
    def __init__(self, app: AppContext, bridge: Bridge) -> None:
        super().__init__()
        self.app = app
        self.bridge = bridge
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setMinimumSize(QSize(960, 620))
        self.pages: dict[str, QWidget] = {}
        #: Set by the My Models page: (accepts(paths) -> bool, handle(paths)).
        self._drop_handler: tuple[Callable[[list[Path]], bool], Callable[[list[Path]], None]] | None = None

        self.nav = QListWidget()
        self.nav.setObjectName("Nav")
        self.nav.setIconSize(QSize(20, 20))
        self.nav.setAccessibleName("Pages")
        self.stack = QStackedWidget()
        for key, label, module_name, class_name, tooltip in PAGES:
            page_class = getattr(importlib.import_module(module_name), class_name)
            page = page_class(app, bridge)
            page.setObjectName(f"page-{key}")
            self.pages[key] = page
            self.stack.addWidget(page)
            item = QListWidgetItem(
                themed_icon(key, QColor(current_colors().muted), QColor(current_colors().accent_text)), label
            )
            item.setData(Qt.ItemDataRole.UserRole, key)
            item.setToolTip(tooltip)
            item.setSizeHint(QSize(0, 40))
            self.nav.addItem(item)
        self.nav.currentRowChanged.connect(self.stack.setCurrentIndex)

        title = QLabel(APP_NAME)
        title.setObjectName("AppTitle")
        logo = QLabel()
        logo.setPixmap(app_icon().pixmap(28, 28))
        brand = QHBoxLayout()
        brand.setContentsMargins(16, 16, 16, 12)
        brand.addWidget(logo)
        brand.addWidget(title, 1)
        sidebar = QWidget()
        sidebar.setObjectName("Sidebar")
        sidebar.setFixedWidth(200)
        side = QVBoxLayout(sidebar)
        side.setContentsMargins(0, 0, 0, 8)
        side.addLayout(brand)
        side.addWidget(self.nav, 1)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(sidebar)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.memory_label = QLabel()
        self.jobs_label = QLabel()
        self.statusBar().addPermanentWidget(self.jobs_label)
        self.statusBar().addPermanentWidget(self.memory_label)
        self._memory_timer = QTimer(self)
        self._memory_timer.timeout.connect(self._refresh_memory)
        self._memory_timer.start(5000)
        self._refresh_memory()
        self._refresh_jobs()
        bridge.connect_hook(app.jobs.changed, self._on_job_changed)
        bridge.status_message.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        bridge.navigate_requested.connect(self.show_page)
        settings_page = self.pages["settings"]
        if hasattr(settings_page, "theme_changed"):
            settings_page.theme_changed.connect(self._apply_theme)

        for index, (key, *_rest) in enumerate([p for p in PAGES if p[0] != "settings"][:9]):
            QShortcut(QKeySequence(f"Ctrl+{index + 1}"), self, activated=lambda k=key: self.show_page(k))
        QShortcut(QKeySequence.StandardKey.Preferences, self, activated=lambda: self.show_page("settings"))
        QShortcut(QKeySequence("Ctrl+,"), self, activated=lambda: self.show_page("settings"))
        # Page-level actions: a page opts in by defining focus_search() / refresh_page().
        for keys, action in (("Ctrl+F", "focus_search"), ("Ctrl+K", "focus_search"), ("F5", "refresh_page")):
            QShortcut(QKeySequence(keys), self, activated=lambda a=action: self.trigger_page_action(a))

        self.setAcceptDrops(True)
        self._restore_state()

    # -- navigation ---------------------------------------------------------------------------------------------
    def show_page(self, key: str, payload: object = None) -> None:
        keys = [k for k, *_ in PAGES]
        if key not in keys:
            logger.warning("unknown page %r", key)
            return
        self.nav.setCurrentRow(keys.index(key))
        page = self.pages[key]
        if payload is not None and hasattr(page, "open_payload"):
            page.open_payload(payload)

    def current_page_key(self) -> str:
        return PAGES[self.stack.currentIndex()][0]

    def trigger_page_action(self, action: str) -> bool:
        """Run ``action`` (``focus_search``, ``refresh_page``) on the current page if it has one."""
        method = getattr(self.stack.currentWidget(), action, None)
        if not callable(method):
            return False
        method()
        return True

    # -- drag and drop ----------------------------------------------------------------------------------------------
    def set_drop_handler(self, accepts: Callable[[list[Path]], bool], handle: Callable[[list[Path]], None]) -> None:
        self._drop_handler = (accepts, handle)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        paths = _local_paths(event)
        if paths and self._drop_handler and self._drop_handler[0](paths):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = _local_paths(event)
        if paths and self._drop_handler:
            event.acceptProposedAction()
            self._drop_handler[1](paths)

    # -- status bar -------------------------------------------------------------------------------------------------
    def _refresh_memory(self) -> None:
        memory = psutil.virtual_memory()
        self.memory_label.setText(f"RAM {memory.available / _GIB:.1f} GB free of {memory.total / _GIB:.1f} GB")

    def _on_job_changed(self, job: Job) -> None:
        self._refresh_jobs()

    def _refresh_jobs(self) -> None:
        count = self.app.jobs.active_count()
        self.jobs_label.setText(f"{count} job{'s' if count != 1 else ''} running" if count else "No jobs running")

    # -- theme and state --------------------------------------------------------------------------------------------
    def _apply_theme(self, theme: str) -> None:
        from PySide6.QtWidgets import QApplication

        from ui.theme import apply_theme

        instance = QApplication.instance()
        if isinstance(instance, QApplication):
            colors = apply_theme(instance, theme)
            for row in range(self.nav.count()):
                item = self.nav.item(row)
                item.setIcon(
                    themed_icon(item.data(Qt.ItemDataRole.UserRole), QColor(colors.muted), QColor(colors.accent_text))
                )

    def _window_settings(self) -> QSettings:
        return QSettings(str(self.app.paths.window_state_file), QSettings.Format.IniFormat)

    def _restore_state(self) -> None:
        state = self._window_settings()
        geometry = state.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1180, 760)
        page = str(state.value("page", "discover"))
        self.show_page(page if page in self.pages else "discover")

    def save_state(self) -> None:
        state = self._window_settings()
        state.setValue("geometry", self.saveGeometry())
        state.setValue("page", self.current_page_key())
        state.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_state()
        for page in self.pages.values():
            shutdown = getattr(page, "shutdown", None)
            if callable(shutdown):
                shutdown()
        super().closeEvent(event)


def _local_paths(event: QDragEnterEvent | QDropEvent) -> list[Path]:
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
