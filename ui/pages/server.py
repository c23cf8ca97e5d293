"""The Server page: start and stop the local API, its address and key, ready-to-paste snippets, the loaded models
with their memory, and a live request log. The server runs on its own thread (``core.serve``); this page only
reads its state and hears its events through the bridge."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.serve.config import is_loopback
from core.serve.keys import new_key
from core.serve.pool import LoadedSummary
from core.serve.runner import RequestRecord
from core.serve.server import ServerState
from ui.operations import run_in_background
from ui.pages.server_defaults import ModelDefaultsBox
from ui.widgets.common import CollapsingLabel, Page, size_columns
from ui.widgets.estimate_panel import human_bytes
from ui.widgets.record_model import RecordTableModel

if TYPE_CHECKING:
    from core.app import AppContext
    from core.serve.server import Endpoint
    from ui.bridge import Bridge

logger = logging.getLogger(__name__)
_Index = QModelIndex | QPersistentModelIndex
LOG_ROWS = 500


class LoadedModelsModel(RecordTableModel):
    COL_NAME, COL_ENGINE, COL_CONTEXT, COL_MEMORY, COL_IDLE, COL_STATE = range(6)
    HEADERS = ("Model", "Engine", "Context", "Memory", "Idle", "State")
    HEADER_TIPS = ("", "", "Tokens of context it was loaded with", "What the engine allocated", "Time since last use")
    SummaryRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.models: list[LoadedSummary] = []

    def set_models(self, models: list[LoadedSummary]) -> None:
        self.beginResetModel()
        self.models = list(models)
        self.endResetModel()

    def records(self) -> Sequence[Any]:
        return self.models

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        model = self.record(index)
        if model is None:
            return None
        if role == self.SummaryRole:
            return model
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        return (
            model.name,
            model.engine,
            f"{model.context_length:,}",
            human_bytes(model.memory_bytes),
            _duration(model.idle_seconds),
            "answering" if model.busy else "ready",
        )[index.column()]


class RequestLogModel(RecordTableModel):
    COL_TIME, COL_ENDPOINT, COL_MODEL, COL_STATUS, COL_IN, COL_OUT, COL_SPEED, COL_TTFT = range(8)
    HEADERS = ("Time", "Endpoint", "Model", "Status", "In", "Out", "Tok/s", "TTFT")
    HEADER_TIPS = ("", "", "", "HTTP status", "Prompt tokens", "Answer tokens", "Decode speed", "Time to first token")
    RecordRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entries: list[RequestRecord] = []

    def records(self) -> Sequence[Any]:
        return self.entries

    def add(self, record: RequestRecord) -> None:
        """Newest first; the oldest rows go past ``LOG_ROWS``."""
        self.beginInsertRows(QModelIndex(), 0, 0)
        self.entries.insert(0, record)
        self.endInsertRows()
        if len(self.entries) > LOG_ROWS:
            self.beginRemoveRows(QModelIndex(), LOG_ROWS, len(self.entries) - 1)
            del self.entries[LOG_ROWS:]
            self.endRemoveRows()

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        record = self.record(index)
        if record is None:
            return None
        if role == self.RecordRole:
            return record
        if role == Qt.ItemDataRole.ToolTipRole and record.error:
            return record.error
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() >= self.COL_STATUS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        return (
            time.strftime("%H:%M:%S", time.localtime(record.at)),
            record.endpoint + (" (stream)" if record.stream else ""),
            record.model,
            str(record.status),
            str(record.prompt_tokens),
            str(record.completion_tokens),
            f"{record.tokens_per_second:.1f}" if record.tokens_per_second else "—",
            f"{record.time_to_first_token_ms:.0f} ms" if record.time_to_first_token_ms else "—",
        )[index.column()]


class ServerPage(Page):
    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__("Server", "Your models over a local OpenAI- and Anthropic-compatible API.", parent)
        self.app = app
        self.bridge = bridge
        self.service = app.serve
        config = self.service.config

        self.start_button = QPushButton("Start server")
        self.start_button.setObjectName("Primary")
        self.start_button.setToolTip("Start or stop the API server")
        self.start_button.clicked.connect(self.toggle)
        self.header.actions.addWidget(self.start_button)

        self.host_edit = QLineEdit(config.host)
        self.host_edit.setToolTip("127.0.0.1: this machine only. Any other address needs an API key.")
        self.port_spin = QSpinBox()
        self.port_spin.setRange(1, 65535)
        self.port_spin.setValue(config.port or 8765)
        self.port_spin.setToolTip("The port clients connect to")
        self.key_edit = QLineEdit(self.service.keys.get() or "")
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("No key: only programs on this machine can connect")
        self.key_edit.setToolTip("Kept in the system keyring, never in settings or logs")
        self.key_edit.editingFinished.connect(self._save_key)
        generate = QPushButton("Generate")
        generate.setToolTip("Make a new random key and keep it in the keyring")
        generate.clicked.connect(self._generate_key)
        show = QPushButton("Show")
        show.setCheckable(True)
        show.setToolTip("Show or hide the key")
        show.toggled.connect(
            lambda on: self.key_edit.setEchoMode(QLineEdit.EchoMode.Normal if on else QLineEdit.EchoMode.Password)
        )
        key_row = QHBoxLayout()
        key_row.addWidget(self.key_edit, 1)
        key_row.addWidget(show)
        key_row.addWidget(generate)
        self.idle_spin = QSpinBox()
        self.idle_spin.setRange(0, 24 * 60)
        self.idle_spin.setSuffix(" min")
        self.idle_spin.setSpecialValueText("never")
        self.idle_spin.setValue(round(config.idle_unload_seconds / 60))
        self.idle_spin.setToolTip("Unload a model nobody has used for this long")
        self.idle_spin.valueChanged.connect(lambda v: self._save(idle_unload_seconds=v * 60.0))
        self.autostart = QCheckBox("Start with the app")
        self.autostart.setChecked(config.start_with_app)
        self.autostart.setToolTip("Start the server whenever Hangar opens")
        self.autostart.toggled.connect(lambda on: self._save(start_with_app=on))
        for widget, name in (
            (self.host_edit, "Host"),
            (self.port_spin, "Port"),
            (self.key_edit, "API key"),
            (self.idle_spin, "Idle unload"),
            (self.autostart, "Start with the app"),
        ):
            widget.setAccessibleName(name)

        form = QFormLayout()
        form.addRow("Host", self.host_edit)
        form.addRow("Port", self.port_spin)
        form.addRow("API key", key_row)
        form.addRow("Unload after", self.idle_spin)
        form.addRow("", self.autostart)
        self.exposure_label = QLabel()
        self.exposure_label.setWordWrap(True)
        self.exposure_label.setObjectName("Muted")
        self.host_edit.textChanged.connect(self._show_exposure)
        self.port_spin.valueChanged.connect(self._show_exposure)
        form.addRow(self.exposure_label)
        connection = QGroupBox("Connection")
        connection.setLayout(form)

        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setAccessibleName("Server status")
        self.error_label = CollapsingLabel()
        self.error_label.setObjectName("ErrorText")
        self.error_label.setWordWrap(True)
        self.url_edit = QLineEdit()
        self.url_edit.setReadOnly(True)
        self.url_edit.setAccessibleName("Base URL")
        self.url_edit.setToolTip("The base URL to give OpenAI- and Anthropic-compatible clients")
        self.copy_url = QPushButton("Copy URL")
        self.copy_url.setToolTip("Copy the base URL for OpenAI-compatible clients")
        self.copy_url.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.url_edit.text()))
        url_row = QHBoxLayout()
        url_row.addWidget(self.url_edit, 1)
        url_row.addWidget(self.copy_url)
        self.snippet = QPlainTextEdit()
        self.snippet.setReadOnly(True)
        self.snippet.setAccessibleName("Example request")
        self.snippet.setToolTip("A ready curl command and Python example")
        self.snippet.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.snippet.setFixedHeight(150)
        copy_snippet = QPushButton("Copy example")
        copy_snippet.setToolTip("Copy the curl and Python examples")
        copy_snippet.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.snippet.toPlainText()))
        use = QVBoxLayout()
        use.addWidget(self.status_label)
        use.addWidget(self.error_label)
        use.addLayout(url_row)
        use.addWidget(self.snippet)
        use.addWidget(copy_snippet, 0, Qt.AlignmentFlag.AlignLeft)
        usage = QGroupBox("Use it from other apps")
        usage.setLayout(use)

        self.defaults_box = ModelDefaultsBox(app)
        left_widget = QWidget()
        left = QVBoxLayout(left_widget)
        left.setContentsMargins(0, 0, 8, 0)
        left.addWidget(usage)
        left.addWidget(connection)
        left.addWidget(self.defaults_box)
        left.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(left_widget)
        # Never narrower than its content: the column has no sideways scroll bar, so anything wider was cut off.
        scroll.setMinimumWidth(
            max(360, left_widget.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        )

        self.models_model = LoadedModelsModel(self)
        self.models_view = _table(self.models_model, "Loaded models", "Models the server has loaded")
        self.models_view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.unload_button = QPushButton("Unload")
        self.unload_button.setToolTip("Unload the selected model now")
        self.unload_button.clicked.connect(self._unload_selected)
        self.log_model = RequestLogModel(self)
        self.log_view = _table(self.log_model, "Request log", "Requests answered, newest first")
        self.models_empty = _empty_note("No model loaded. A request loads the model it names; idle ones unload.")
        self.log_empty = _empty_note("No requests yet. Point a client at the URL on the left.")
        models_title = QLabel("Loaded models")
        models_title.setObjectName("SectionTitle")
        models_head = QHBoxLayout()
        models_head.addWidget(models_title, 1)
        models_head.addWidget(self.unload_button)
        log_title = QLabel("Requests")
        log_title.setObjectName("SectionTitle")
        right_widget = QWidget()
        right = QVBoxLayout(right_widget)
        right.setContentsMargins(8, 0, 0, 0)
        right.addLayout(models_head)
        right.addWidget(_stack(self.models_view, self.models_empty), 1)
        right.addSpacing(6)
        right.addWidget(log_title)
        right.addWidget(_stack(self.log_view, self.log_empty), 3)

        split = QSplitter()
        split.addWidget(scroll)
        split.addWidget(right_widget)
        split.setChildrenCollapsible(False)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        self.body.addWidget(split, 1)
        size_columns(self.log_view, {0: 70, 1: 150, 2: 150, 3: 50, 4: 50, 5: 50, 6: 60, 7: 70})
        self.log_view.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.log_model.rowsInserted.connect(self._show_emptiness)
        self.log_model.modelReset.connect(self._show_emptiness)
        self.models_model.modelReset.connect(self._show_emptiness)

        bridge.connect_hook(self.service.state_changed, self._show_state)
        bridge.connect_hook(self.service.request_logged, self.log_model.add)
        bridge.connect_hook(self.service.models_changed, self.refresh_models)
        self._ticker = QTimer(self)
        self._ticker.setInterval(5000)
        self._ticker.timeout.connect(self.refresh_models)
        for record in self.service.log:
            self.log_model.add(record)
        self._show_state(self.service.state)
        self._show_exposure()
        if config.start_with_app and not self.service.running:
            self.start()

    # -- actions --------------------------------------------------------------------------------------------------
    def toggle(self) -> None:
        if self.service.state == ServerState.STOPPED:
            self.start()
        else:
            self.stop()

    def start(self) -> None:
        self.error_label.setText("")
        self._save_key()
        try:
            self.service.update_config(host=self.host_edit.text().strip(), port=self.port_spin.value())
        except Exception as exc:
            self.error_label.setText(str(exc))
            return
        self.start_button.setEnabled(False)
        run_in_background(self.service.start, on_success=self._started, on_failure=self._failed)

    def stop(self) -> None:
        self.start_button.setEnabled(False)
        run_in_background(self.service.stop, on_success=lambda _: self._show_state(self.service.state))

    def shutdown(self) -> None:
        self._ticker.stop()

    def _started(self, endpoint: Endpoint) -> None:
        self._show_state(self.service.state)

    def _failed(self, error: Exception) -> None:
        self.error_label.setText(str(error))
        self._show_state(self.service.state)

    def _save(self, **changes: Any) -> None:
        try:
            self.service.update_config(**changes)
        except Exception as exc:
            self.error_label.setText(str(exc))

    def _save_key(self) -> None:
        key = self.key_edit.text().strip()
        if key == (self.service.keys.get() or ""):
            return
        if key:
            secure = self.service.keys.set(key)
            if not secure:
                self.error_label.setText("No secure keyring here: the key is kept for this session only.")
        else:
            self.service.keys.clear()

    def _generate_key(self) -> None:
        self.key_edit.setText(new_key())
        self._save_key()

    def _unload_selected(self) -> None:
        index = self.models_view.currentIndex()
        model = self.models_model.record(index)
        if model is not None:
            self.service.unload(model.name)

    # -- display --------------------------------------------------------------------------------------------------
    def refresh_page(self) -> None:
        self.defaults_box.reload_models()
        self.refresh_models()

    def refresh_models(self) -> None:
        self.models_model.set_models(self.service.loaded())
        self.unload_button.setEnabled(bool(self.models_model.models))

    def _show_state(self, state: ServerState) -> None:
        running = state == ServerState.RUNNING
        self.start_button.setText("Stop server" if state != ServerState.STOPPED else "Start server")
        self.start_button.setEnabled(state in (ServerState.RUNNING, ServerState.STOPPED))
        for widget in (self.host_edit, self.port_spin):
            widget.setEnabled(state == ServerState.STOPPED)
        endpoint = self.service.endpoint
        if running and endpoint is not None:
            auth = "clients must send the API key" if endpoint.auth else "no key: only this machine can connect"
            self._set_status(f"● Running on {endpoint.host}:{endpoint.port} — {auth}.", "fits")
            self.url_edit.setText(endpoint.base_url)
            self.snippet.setPlainText(snippet(endpoint.base_url, endpoint.auth, self._example_model()))
            self._ticker.start()
        else:
            if state == ServerState.STOPPED:
                self._set_status("● Stopped. Start the server to reach your models from other apps.", "")
            else:
                self._set_status(f"● {state.value.title()}…", "partial")
            future = f"http://{_url_host(self.host_edit.text().strip() or '127.0.0.1')}:{self.port_spin.value()}/v1"
            self.url_edit.setText("")
            self.url_edit.setPlaceholderText(f"{future} (once started)")
            self.snippet.setPlainText(
                "# Once the server runs:\n" + snippet(future, bool(self.key_edit.text().strip()), self._example_model())
            )
            self._ticker.stop()
        self.copy_url.setEnabled(running)
        self.refresh_models()

    def _set_status(self, text: str, badge: str) -> None:
        self.status_label.setText(text)
        self.status_label.setProperty("badge", badge)
        self.status_label.style().unpolish(self.status_label)
        self.status_label.style().polish(self.status_label)

    def _show_exposure(self) -> None:
        host = self.host_edit.text().strip()
        if not host or is_loopback(host):
            self.exposure_label.setText("Listens on this machine only: other computers cannot connect.")
        else:
            self.exposure_label.setText(
                f"⚠ Listens on {host}:{self.port_spin.value()}: any computer that can reach this address can use "
                "your models, so an API key is required. Prefer a private network or an SSH tunnel."
            )
        if self.service.state == ServerState.STOPPED:
            self._show_state(self.service.state)

    def _show_emptiness(self) -> None:
        for view, model in ((self.models_view, self.models_model), (self.log_view, self.log_model)):
            stack = view.parentWidget()
            if isinstance(stack, QStackedWidget):
                stack.setCurrentIndex(0 if model.rowCount() else 1)

    def _example_model(self) -> str:
        try:
            entries = [e for e in self.app.library.list() if e.engine and e.available]
        except Exception:  # an example name is a nicety, never a reason to fail
            return "MODEL"
        return entries[0].name if entries else "MODEL"


def snippet(base_url: str, auth: bool, model: str) -> str:
    key = "$HANGAR_API_KEY" if auth else "none"
    header = ' \\\n  -H "Authorization: Bearer $HANGAR_API_KEY"' if auth else ""
    return (
        f"curl {base_url}/chat/completions -H 'Content-Type: application/json'{header} \\\n"
        f'  -d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello"}}]}}\'\n\n'
        "from openai import OpenAI\n"
        f'client = OpenAI(base_url="{base_url}", api_key="{key}")\n'
        f'reply = client.chat.completions.create(model="{model}", messages=[{{"role": "user", "content": "Hello"}}])\n'
        "print(reply.choices[0].message.content)\n"
    )


def _table(model: RecordTableModel, name: str, tip: str) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setAccessibleName(name)
    view.setToolTip(tip)
    view.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QTableView.SelectionMode.SingleSelection)
    view.verticalHeader().setVisible(False)
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    view.horizontalHeader().setStretchLastSection(True)
    return view


def _empty_note(text: str) -> QLabel:
    note = QLabel(text)
    note.setObjectName("EmptyText")
    note.setWordWrap(True)
    note.setAlignment(Qt.AlignmentFlag.AlignCenter)
    note.setMargin(16)
    return note


def _stack(view: QTableView, note: QLabel) -> QStackedWidget:
    """The table, or a one-line note in its place while it has no rows (an empty grid says nothing)."""
    frame = QFrame()
    frame.setObjectName("Card")
    QVBoxLayout(frame).addWidget(note)
    stack = QStackedWidget()
    stack.addWidget(view)
    stack.addWidget(frame)
    stack.setCurrentWidget(frame)
    return stack


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"  # what a client on this machine uses
    return f"[{host}]" if ":" in host else host


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
