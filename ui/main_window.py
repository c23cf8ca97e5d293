"""The main window: a sidebar of pages, the page stack, and a status bar with memory and running jobs."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
from PySide6.QtCore import QSettings, QSize, Qt, QTimer
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
    QShortcut,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QScrollArea,
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

MINIMUM_SIZE = QSize(900, 600)
#: Pages built soon after the first paint even if never shown (they do background work), and when.
BACKGROUND_PAGES = ("models", "downloads")
WARM_UP_MS = 250


class MainWindow(QMainWindow):
    def __init__(self, app: AppContext, bridge: Bridge) -> None:
        super().__init__()
        self.app = app
        self.bridge = bridge
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        # Small enough for a 1024x640 laptop screen or a tiled half of a 1920 one; every page still fits (its
        # forms scroll) — tests/ui/test_small_window.py checks each page at this size.
        self.setMinimumSize(MINIMUM_SIZE)
        #: Every page by key; a page is built the first time it is shown or asked for (a fast start).
        self.pages = LazyPages(self._build_page)
        #: Set by the My Models page: (accepts(paths) -> bool, handle(paths)).
        self._drop_handler: tuple[Callable[[list[Path]], bool], Callable[[list[Path]], None]] | None = None

        self.nav = QListWidget()
        self.nav.setObjectName("Nav")
        self.nav.setIconSize(QSize(20, 20))
        self.nav.setAccessibleName("Pages")
        self.stack = QStackedWidget()
        for key, label, _module_name, _class_name, tooltip in PAGES:
            placeholder = QWidget()
            placeholder.setObjectName(f"placeholder-{key}")
            self.stack.addWidget(placeholder)
            item = QListWidgetItem(
                themed_icon(key, QColor(current_colors().muted), QColor(current_colors().accent_text)), label
            )
            item.setData(Qt.ItemDataRole.UserRole, key)
            item.setToolTip(tooltip)
            item.setSizeHint(QSize(0, 40))
            self.nav.addItem(item)
        self.nav.currentRowChanged.connect(self._on_nav_row)

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

        for index, (key, *_rest) in enumerate([p for p in PAGES if p[0] != "settings"][:9]):
            QShortcut(QKeySequence(f"Ctrl+{index + 1}"), self, activated=lambda k=key: self.show_page(k))
        QShortcut(QKeySequence.StandardKey.Preferences, self, activated=lambda: self.show_page("settings"))
        QShortcut(QKeySequence("Ctrl+,"), self, activated=lambda: self.show_page("settings"))
        # Page-level actions: a page opts in by defining focus_search() / refresh_page().
        for keys, action in (("Ctrl+F", "focus_search"), ("Ctrl+K", "focus_search"), ("F5", "refresh_page")):
            QShortcut(QKeySequence(keys), self, activated=lambda a=action: self.trigger_page_action(a))

        self.setAcceptDrops(True)
        self._restore_state()
        self._warmed_up = False

    # -- pages ------------------------------------------------------------------------------------------------------
    def _build_page(self, key: str) -> QWidget:
        """Import and build page ``key`` in place of its placeholder in the stack."""
        index = next(i for i, (k, *_rest) in enumerate(PAGES) if k == key)
        _key, _label, module_name, class_name, _tooltip = PAGES[index]
        page_class = getattr(importlib.import_module(module_name), class_name)
        page: QWidget = page_class(self.app, self.bridge, self.stack)
        page.setObjectName(f"page-{key}")
        # In a window narrower or shorter than a page needs, the page scrolls instead of being cut off.
        holder = QScrollArea()
        holder.setObjectName(f"scroll-{key}")
        holder.setWidgetResizable(True)
        holder.setFrameShape(QFrame.Shape.NoFrame)
        holder.setWidget(page)
        holder.viewport().setAutoFillBackground(False)
        placeholder = self.stack.widget(index)
        self.stack.insertWidget(index, holder)
        self.stack.removeWidget(placeholder)
        placeholder.deleteLater()
        if key == "settings" and hasattr(page, "theme_changed"):
            page.theme_changed.connect(self._apply_theme)
        return page

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._warmed_up:
            self._warmed_up = True
            QTimer.singleShot(WARM_UP_MS, self._warm_up)

    def _warm_up(self) -> None:
        """Soon after the first paint, build the pages with work to do in the background: My Models files finished
        downloads into the library and takes drops, Downloads keeps the status-bar summary and the notifications."""
        if not self.isVisible():
            return  # closed before the first paint settled: the app is shutting down
        for key in BACKGROUND_PAGES:
            self.pages[key]

    def _on_nav_row(self, row: int) -> None:
        if 0 <= row < len(PAGES):
            self.pages[PAGES[row][0]]  # built on first show
            self.stack.setCurrentIndex(row)

    # -- navigation ---------------------------------------------------------------------------------------------
    def show_page(self, key: str, payload: object = None) -> None:
        keys = [k for k, *_ in PAGES]
        if key not in keys:
            logger.warning("unknown page %r", key)
            return
        self.nav.setCurrentRow(keys.index(key))
        page = self.pages[key]
        self.stack.setCurrentIndex(keys.index(key))
        if payload is not None and hasattr(page, "open_payload"):
            page.open_payload(payload)

    def current_page_key(self) -> str:
        return PAGES[self.stack.currentIndex()][0]

    def current_page(self) -> QWidget:
        return self.pages[self.current_page_key()]

    def trigger_page_action(self, action: str) -> bool:
        """Run ``action`` (``focus_search``, ``refresh_page``) on the current page if it has one."""
        method = getattr(self.current_page(), action, None)
        if not callable(method):
            return False
        method()
        return True

    # -- drag and drop ----------------------------------------------------------------------------------------------
    def set_drop_handler(self, accepts: Callable[[list[Path]], bool], handle: Callable[[list[Path]], None]) -> None:
        self._drop_handler = (accepts, handle)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        paths = _local_paths(event)
        if paths and self._drop_handler is None:
            self.pages["models"]  # My Models handles drops; build it on the first drag
        action = _copy_or_link(event)
        if paths and action is not None and self._drop_handler and self._drop_handler[0](paths):
            event.setDropAction(action)
            event.accept()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        # Shift in some file managers proposes a move mid-drag: keep answering copy (or link).
        action = _copy_or_link(event)
        if action is not None and self._drop_handler is not None:
            event.setDropAction(action)
            event.accept()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = _local_paths(event)
        action = _copy_or_link(event)
        if paths and action is not None and self._drop_handler:
            # Never a move: a file manager that honours "move" deletes the original once the drop is accepted.
            event.setDropAction(action)
            event.accept()
            self._drop_handler[1](paths)
        else:
            event.ignore()

    # -- status bar -------------------------------------------------------------------------------------------------
    def _refresh_memory(self) -> None:
        from ui.units import format_bytes

        memory = psutil.virtual_memory()
        self.memory_label.setText(f"RAM: {format_bytes(memory.available)} free of {format_bytes(memory.total)}")
        self.memory_label.setToolTip(
            "Free memory right now. Estimates compare a model with a budget: the memory Hangar lets a model use, "
            "which keeps a safety margin for the system and other apps."
        )

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
        # The size on its own too: restoring a geometry fails or shrinks it where the position cannot be restored
        # (Wayland) or the screen is not known yet.
        size = state.value("size")
        self.resize(size if isinstance(size, QSize) and size.isValid() else QSize(1180, 760))
        page = str(state.value("page", "discover"))
        self.show_page(page if page in self.pages else "discover")

    def save_state(self) -> None:
        state = self._window_settings()
        state.setValue("geometry", self.saveGeometry())
        state.setValue("size", self.size())
        state.setValue("page", self.current_page_key())
        state.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_state()
        for page in self.pages.built():
            shutdown = getattr(page, "shutdown", None)
            if callable(shutdown):
                shutdown()
        super().closeEvent(event)


class LazyPages(Mapping[str, QWidget]):
    """The window's pages by key, each built on first access: start-up builds only the page that is shown."""

    def __init__(self, build: Callable[[str], QWidget]) -> None:
        self._build = build
        self._built: dict[str, QWidget] = {}

    def __getitem__(self, key: str) -> QWidget:
        if key not in self._built:
            if key not in self:
                raise KeyError(key)
            self._built[key] = self._build(key)
        return self._built[key]

    def __contains__(self, key: object) -> bool:
        return any(key == k for k, *_rest in PAGES)

    def __iter__(self) -> Iterator[str]:
        return iter([k for k, *_rest in PAGES])

    def __len__(self) -> int:
        return len(PAGES)

    def is_built(self, key: str) -> bool:
        return key in self._built

    def built(self) -> list[QWidget]:
        """The pages built so far (closing the window shuts only these down)."""
        return list(self._built.values())


def _copy_or_link(event: QDropEvent) -> Qt.DropAction | None:
    """The action Hangar accepts a drop with: copy, else link, never move (the import dialog then decides whether
    the model is copied into the library or linked in place)."""
    possible = event.possibleActions()
    for action in (Qt.DropAction.CopyAction, Qt.DropAction.LinkAction):
        if possible & action:
            return action
    return None


def _local_paths(event: QDragEnterEvent | QDropEvent) -> list[Path]:
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
