"""The Machines page: remote servers that chats can run on (OpenAI-compatible, with their models), and this
machine's llama.cpp RPC worker, which lends its memory to another Hangar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.errors import HangarError
from ui.operations import run_in_background
from ui.theme import current_colors
from ui.widgets.common import Page
from ui.widgets.record_model import RecordTableModel
from ui.widgets.responsive import FlowLayout

if TYPE_CHECKING:
    from core.app import AppContext
    from core.remote.rpc import WorkerEvent, WorkerProcess
    from core.remote.service import RemoteStatus
    from ui.bridge import Bridge

Index = QModelIndex | QPersistentModelIndex


class RemoteTableModel(RecordTableModel):
    COL_NAME, COL_URL, COL_KIND, COL_MODELS, COL_STATUS = range(5)
    HEADERS = ("Name", "Address", "Server", "Models", "Status")
    HEADER_TIPS = (
        "Use it in chat as NAME:MODEL",
        "The server's address",
        "What the server said it is",
        "The models it offers (some servers list none and serve one)",
        "Whether it answered the last check",
    )
    StatusRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[RemoteStatus] = []

    def records(self) -> list[RemoteStatus]:
        return self._rows

    def set_statuses(self, rows: list[RemoteStatus]) -> None:
        self.beginResetModel()  # a whole reload: every server was checked again
        self._rows = list(rows)
        self.endResetModel()

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        status = self.record(index)
        if status is None:
            return None
        if role == self.StatusRole:
            return status
        server, probe = status.server, status.probe
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.COL_NAME:
                return server.name
            if column == self.COL_URL:
                return server.url
            if column == self.COL_KIND:
                return probe.kind if probe.answered else "—"
            if column == self.COL_MODELS:
                if not probe.answered:
                    return "—"
                return ", ".join(probe.models[:4]) + (" …" if len(probe.models) > 4 else "") or "one (default)"
            if column == self.COL_STATUS:
                return "answering" if probe.answered else "not answering"
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == self.COL_MODELS and probe.models:
                return "\n".join(probe.models[:40])
            if column == self.COL_STATUS:
                return probe.error or f"answered in {probe.seconds * 1000:.0f} ms"
            return None
        return None


class AddRemoteDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a remote server")
        form = QFormLayout(self)
        self.name = QLineEdit()
        self.name.setPlaceholderText("gpu-box")
        self.name.setToolTip("A short name; chats name its models as NAME:MODEL")
        self.name.setAccessibleName("Name")
        self.url = QLineEdit()
        self.url.setPlaceholderText("http://192.168.1.20:8000")
        self.url.setToolTip("The server's address (vLLM, llama-server, Ollama, LM Studio, mlx-lm, another Hangar)")
        self.url.setAccessibleName("Address")
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("optional")
        self.key.setToolTip("Kept in your system's keyring, never in Hangar's settings or logs")
        self.key.setAccessibleName("API key")
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(1, 3600)
        self.timeout.setValue(30)
        self.timeout.setSuffix(" s")
        self.timeout.setToolTip("How long to wait for the server before giving up")
        self.timeout.setAccessibleName("Timeout")
        form.addRow("Name", self.name)
        form.addRow("Address", self.url)
        form.addRow("API key", self.key)
        form.addRow("Timeout", self.timeout)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Check and add")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


class MachinesPage(Page):
    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__(
            "Machines", "Chat through other servers, or lend this machine's memory to another Hangar.", parent
        )
        self.app = app
        self.bridge = bridge
        self.worker: WorkerProcess | None = None
        self._refreshes = 0
        self.body.addWidget(self._remote_card(), 3)
        self.body.addWidget(self._worker_card())
        self.refresh()

    # -- remote servers --------------------------------------------------------------------------------------------
    def _remote_card(self) -> QFrame:
        card = QFrame()
        card.setObjectName("Card")
        layout = QVBoxLayout(card)
        title = QLabel("Remote servers")
        title.setObjectName("SectionTitle")
        hint = QLabel("Their models appear in Chat as NAME:MODEL, next to the models on this machine.")
        hint.setObjectName("Muted")
        hint.setWordWrap(True)
        self.model = RemoteTableModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAccessibleName("Remote servers")
        self.table.setToolTip("Saved servers; hover a status to see what the last check said")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.add_button = QPushButton("Add…")
        self.add_button.setToolTip("Add an OpenAI-compatible server by its address")
        self.add_button.clicked.connect(self.add_remote)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Forget the selected server (and its stored key)")
        self.remove_button.clicked.connect(self.remove_selected)
        self.refresh_button = QPushButton("Check again")
        self.refresh_button.setToolTip("Ask every server again what it offers")
        self.refresh_button.clicked.connect(self.refresh)
        self.remote_status = QLabel()
        self.remote_status.setObjectName("Muted")
        self.remote_status.setWordWrap(True)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.remove_button, self.refresh_button):
            buttons.addWidget(button)
        buttons.addWidget(self.remote_status, 1)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self._update_buttons()
        return card

    def refresh(self) -> None:
        self.refresh_button.setEnabled(False)
        self.remote_status.setText("Checking…")
        self._refreshes += 1
        ticket = self._refreshes  # an older check that ends later must not overwrite a newer one

        def show(statuses: list[RemoteStatus]) -> None:
            if ticket == self._refreshes:
                self._show(statuses)

        run_in_background(lambda: self.app.remotes.statuses(timeout=5), on_success=show, on_failure=self._failed)

    def _show(self, statuses: list[RemoteStatus]) -> None:
        self.model.set_statuses(statuses)
        self.refresh_button.setEnabled(True)
        answering = sum(1 for s in statuses if s.probe.answered)
        self.remote_status.setText(
            f"{answering} of {len(statuses)} answering." if statuses else "No remote servers yet: add one."
        )
        self.table.resizeColumnsToContents()
        self._update_buttons()

    def _failed(self, error: Exception) -> None:
        self.refresh_button.setEnabled(True)
        self.add_button.setEnabled(True)
        self.remote_status.setText(str(error))

    def add_remote(self) -> None:
        dialog = AddRemoteDialog(self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        name, url, key, timeout = (
            dialog.name.text().strip(),
            dialog.url.text().strip(),
            dialog.key.text().strip() or None,
            dialog.timeout.value(),
        )
        self.add_button.setEnabled(False)
        self.remote_status.setText(f"Checking {url}…")

        def added(_status: object) -> None:
            self.add_button.setEnabled(True)
            self.refresh()

        run_in_background(
            lambda: self.app.remotes.add(name, url, api_key=key, timeout=timeout),
            on_success=added,
            on_failure=self._failed,
        )

    def remove_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        status = self.model.record(rows[0])
        try:
            self.app.remotes.remove(status.server.name)
        except HangarError as exc:
            self.remote_status.setText(str(exc))
            return
        self.refresh()

    def _update_buttons(self) -> None:
        self.remove_button.setEnabled(bool(self.table.selectionModel().selectedRows()))

    # -- this machine's RPC worker ---------------------------------------------------------------------------------
    def _worker_card(self) -> QFrame:
        from core.remote.rpc import DEFAULT_PORT

        card = QFrame()
        card.setObjectName("Card")
        layout = QVBoxLayout(card)
        title = QLabel("Lend this machine's memory (llama.cpp RPC worker)")
        title.setObjectName("SectionTitle")
        title.setWordWrap(True)
        hint = QLabel(
            "Another Hangar can then spread a model over this machine: Chat → load options → RPC workers, or "
            "`hangar chat MODEL --rpc THIS_HOST:PORT`."
        )
        hint.setObjectName("Muted")
        hint.setWordWrap(True)
        self.host = QComboBox()
        self.host.addItem("This machine only (127.0.0.1)", "127.0.0.1")
        self.host.addItem("Every network of this machine (0.0.0.0)", "0.0.0.0")
        self.host.setToolTip("Who can reach the worker; use a private network or an SSH tunnel")
        self.host.setAccessibleName("Listen on")
        self.host.currentIndexChanged.connect(lambda _: self._update_warning())
        self.port = QSpinBox()
        self.port.setRange(1024, 65535)
        self.port.setValue(DEFAULT_PORT)
        self.port.setToolTip("The port the worker listens on")
        self.port.setAccessibleName("Port")
        self.port.valueChanged.connect(lambda _: self._update_warning())
        self.cache = QCheckBox("Keep received weights in a cache")
        self.cache.setToolTip("The next load of the same model is faster; uses disk space in Hangar's cache folder")
        self.start_button = QPushButton("Start worker")
        self.start_button.setObjectName("Primary")
        self.start_button.setToolTip("Start or stop the RPC worker")
        self.start_button.clicked.connect(self.toggle_worker)
        # One row where there is room, wrapping in a small window (a label stays with its field).
        row = FlowLayout()
        for label, field in (("Listen on", self.host), ("Port", self.port)):
            pair = QWidget()
            pair_layout = QHBoxLayout(pair)
            pair_layout.setContentsMargins(0, 0, 0, 0)
            pair_layout.addWidget(QLabel(label))
            pair_layout.addWidget(field)
            row.addWidget(pair)
        row.addWidget(self.cache)
        row.addWidget(self.start_button)
        self.warning = QLabel()
        self.warning.setStyleSheet(f"color: {current_colors().bad};")
        self.warning.setWordWrap(True)
        self.worker_status = QLabel("Not running.")
        self.worker_status.setObjectName("Muted")
        self.clients = QListWidget()
        self.clients.setAccessibleName("Connected machines")
        self.clients.setToolTip("Machines using this worker now")
        self.clients.setMaximumHeight(80)
        self.clients.hide()  # shown while machines are connected
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addLayout(row)
        layout.addWidget(self.warning)
        layout.addWidget(self.worker_status)
        layout.addWidget(self.clients)
        self._update_warning()
        return card

    def _update_warning(self) -> None:
        from core.remote.rpc import exposure_warning

        text = exposure_warning(self.host.currentData(), self.port.value())
        self.warning.setText(text or "")
        self.warning.setVisible(bool(text))

    def toggle_worker(self) -> None:
        if self.worker is not None and self.worker.running:
            worker, self.worker = self.worker, None
            self.start_button.setEnabled(False)
            run_in_background(worker.stop, on_success=lambda _: self._stopped("Stopped."))
            return
        from core.remote.rpc import WorkerRequest

        cache = str(self.app.paths.cache_dir / "rpc") if self.cache.isChecked() else None
        try:
            worker = self.app.new_rpc_worker(WorkerRequest(self.host.currentData(), self.port.value(), cache))
        except HangarError as exc:
            self.worker_status.setText(str(exc))
            return
        self.bridge.connect_hook(worker.events, self._on_worker_event)
        self.start_button.setEnabled(False)
        self.worker_status.setText("Starting…")

        def started(event: object) -> None:
            self.worker = worker
            self.start_button.setEnabled(True)
            self.start_button.setText("Stop worker")
            self._set_inputs_enabled(False)
            devices = ", ".join(getattr(event, "devices", ()))
            self.worker_status.setText(f"Listening on {worker.endpoint} — {devices}")

        run_in_background(worker.start, on_success=started, on_failure=lambda e: self._stopped(str(e)))

    def _on_worker_event(self, event: WorkerEvent) -> None:
        from core.remote.rpc import ClientConnected, ClientDisconnected, WorkerStopped

        if isinstance(event, ClientConnected):
            self.clients.addItem(event.peer or "a machine")
        elif isinstance(event, ClientDisconnected):
            items = self.clients.findItems(event.peer or "a machine", Qt.MatchFlag.MatchExactly)
            if items:
                self.clients.takeItem(self.clients.row(items[0]))
        elif isinstance(event, WorkerStopped) and self.worker is not None and not self.worker.running:
            self.worker = None
            self._stopped(event.message)
        self.clients.setVisible(self.clients.count() > 0)

    def _stopped(self, message: str) -> None:
        self.start_button.setEnabled(True)
        self.start_button.setText("Start worker")
        self._set_inputs_enabled(True)
        self.clients.clear()
        self.clients.hide()
        self.worker_status.setText(message)

    def _set_inputs_enabled(self, enabled: bool) -> None:
        for widget in (self.host, self.port, self.cache):
            widget.setEnabled(enabled)
