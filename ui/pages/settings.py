"""The Settings page: theme, models folder, defaults for loading models, downloads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QWidget,
)

from core.errors import HangarError
from core.jobs import JobKind
from ui.operations import run_in_background
from ui.units import format_bytes
from ui.widgets.common import Page
from ui.widgets.hf_token import HfTokenBox

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge


class SettingsPage(Page):
    theme_changed = Signal(str)

    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__("Settings", "Changes are saved as you make them.", parent)
        self.app = app
        self.bridge = bridge
        current = app.settings.current

        card = QFrame()
        card.setObjectName("Card")
        form = QFormLayout(card)
        form.setContentsMargins(16, 14, 16, 14)
        form.setSpacing(10)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        card.setMaximumWidth(760)

        self.theme = QComboBox()
        self.theme.addItem("Follow the system", "system")
        self.theme.addItem("Light", "light")
        self.theme.addItem("Dark", "dark")
        self.theme.setCurrentIndex(max(0, self.theme.findData(current.theme)))
        self.theme.setToolTip("Light or dark colours; “Follow the system” switches with your desktop")
        self.theme.setAccessibleName("Theme")
        self.theme.currentIndexChanged.connect(lambda _: self._save(theme=self.theme.currentData()))
        form.addRow("Theme", self.theme)

        self.models_dir = QLineEdit(str(app.models_dir))
        self.models_dir.setReadOnly(True)
        self.models_dir.setAccessibleName("Models folder")
        self.models_dir.setToolTip("Where Hangar keeps downloaded and copied models; use Choose… to change it")
        self.browse = browse = QPushButton("Choose…")
        browse.setToolTip("Choose where downloaded and copied models are kept; existing ones can move with it")
        browse.setAccessibleName("Choose models folder")
        browse.clicked.connect(self._choose_models_dir)
        bridge.connect_hook(app.jobs.changed, self._on_job_changed)
        row = QHBoxLayout()
        row.addWidget(self.models_dir, 1)
        row.addWidget(browse)
        form.addRow("Models folder", row)

        self.context = QSpinBox()
        self.context.setRange(256, 1_048_576)
        self.context.setSingleStep(1024)
        self.context.setValue(current.default_context_length)
        self.context.setSuffix(" tokens")
        self.context.setToolTip(
            "How many tokens a model sees at once when it is loaded, unless you change it for one chat; "
            "longer contexts need more memory"
        )
        self.context.setAccessibleName("Default context length")
        self.context.editingFinished.connect(lambda: self._save(default_context_length=self.context.value()))
        form.addRow("Default context", self.context)

        self.gpu_layers = QComboBox()
        self.gpu_layers.setEditable(True)
        self.gpu_layers.addItem("auto")
        self.gpu_layers.setCurrentText(current.gpu_layers)
        self.gpu_layers.setToolTip(
            "How many of a model's layers run on the GPU: “auto” puts as many as fit with a safety margin, "
            "0 keeps everything on the CPU, or type a number"
        )
        self.gpu_layers.setAccessibleName("GPU layers")
        self.gpu_layers.lineEdit().editingFinished.connect(
            lambda: self._save(gpu_layers=self.gpu_layers.currentText().strip())
        )
        form.addRow("GPU layers", self.gpu_layers)
        self._form = form
        run_in_background(app.hardware, on_success=self._hardware_known, owner=self)

        self.parallel = QSpinBox()
        self.parallel.setRange(1, 8)
        self.parallel.setValue(current.max_parallel_downloads)
        self.parallel.setToolTip("How many files download at the same time; more only helps on a fast connection")
        self.parallel.setAccessibleName("Parallel downloads")
        self.parallel.valueChanged.connect(lambda v: self._save(max_parallel_downloads=v))
        form.addRow("Parallel downloads", self.parallel)
        self._add_download_rows(form, current)

        # Choices and numbers at the width of their content; only paths and the token take the whole row.
        for short in (self.theme, self.context, self.gpu_layers, self.parallel, self.connections, self.limit):
            short.setFixedWidth(220)
        self.hf_token = HfTokenBox()
        form.addRow("Hugging Face token", self.hf_token)

        self.error = QLabel()
        self.error.setObjectName("ErrorText")
        self.error.setWordWrap(True)
        self.error.hide()

        # The card never gives up height to the editor below (a wrapped warning in it was cut off): the page scrolls.
        card.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.body.addWidget(card)
        self.body.addWidget(self.error)
        from core.chat.tools import MCP_FILE, ChatTools
        from ui.pages.settings_mcp import McpServersEditor

        self.mcp_servers = McpServersEditor(ChatTools(app.paths.data_dir / MCP_FILE))  # the chat's tools
        self.body.addWidget(self.mcp_servers)
        self.body.addStretch(1)

    def _add_download_rows(self, form: QFormLayout, current: object) -> None:
        """Connections per file and the global speed limit: both apply to downloads already running."""
        self.connections = QSpinBox()
        self.connections.setRange(0, 16)
        self.connections.setSpecialValueText("auto")
        self.connections.setValue(int(getattr(current, "download_connections", 0)))
        self.connections.setToolTip(
            "How many connections fetch parts of one file at once: “auto” adds connections while the download "
            "gets faster (4 to 16), 1 is a single stream; applies to running downloads too"
        )
        self.connections.setAccessibleName("Download connections")
        self.connections.valueChanged.connect(lambda v: self._save(download_connections=int(v)))
        form.addRow("Download connections", self.connections)

        self.limit = QDoubleSpinBox()
        self.limit.setRange(0.0, 100_000.0)
        self.limit.setDecimals(1)
        self.limit.setSingleStep(1.0)
        self.limit.setSuffix(" MB/s")
        self.limit.setSpecialValueText("No limit")
        self.limit.setValue(float(getattr(current, "download_limit_mbps", 0.0)))
        self.limit.setToolTip(
            "The most all downloads together may use, in megabytes per second; 0 is no limit. "
            "Applies to running downloads at once"
        )
        self.limit.setAccessibleName("Download speed limit")
        self.limit.valueChanged.connect(lambda v: self._save(download_limit_mbps=float(v)))
        form.addRow("Download speed limit", self.limit)

    def _choose_models_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Models folder", self.models_dir.text())
        if folder:
            self.change_models_dir(Path(folder))

    def change_models_dir(self, folder: Path, *, ask: bool = True) -> None:
        """Switch the models folder, offering to move what Hangar keeps in the old one (a background job)."""
        from core.library.move import plan_move

        try:
            plan = plan_move(self.app.library, folder)
        except HangarError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return
        self.error.hide()
        move = bool(plan.entries)
        if plan.entries and ask:
            box = QMessageBox(self)
            box.setWindowTitle("Move models?")
            box.setText(
                f"Move {len(plan.entries)} model{'s' if len(plan.entries) != 1 else ''} "
                f"({format_bytes(plan.total_bytes)}) to {plan.target}?"
            )
            box.setInformativeText("Linked models and models found in other apps' folders stay where they are.")
            move_button = box.addButton("Move models", QMessageBox.ButtonRole.AcceptRole)
            box.addButton("Only for new models", QMessageBox.ButtonRole.DestructiveRole)
            cancel = box.addButton(QMessageBox.StandardButton.Cancel)
            box.exec()
            if box.clickedButton() is cancel:
                return
            move = box.clickedButton() is move_button
        if not move:
            self._save(models_dir=str(plan.target))
            self.models_dir.setText(str(plan.target))
            return

        def job(ctx):  # type: ignore[no-untyped-def]
            report = self.app.move_models(folder, progress=ctx.report, token=ctx.token)
            return {"models_dir": str(report.target), "moved": list(report.moved)}

        self.models_dir.setText(f"Moving to {plan.target}…")
        self.browse.setEnabled(False)
        job_id = self.app.jobs.submit(JobKind.MOVE_MODELS, f"Move models to {plan.target}", job)
        self._move_job = job_id

    def _on_job_changed(self, job) -> None:  # type: ignore[no-untyped-def]
        if job.id != getattr(self, "_move_job", None) or not job.state.finished:
            return
        self._move_job = None
        self.browse.setEnabled(True)
        self.models_dir.setText(str(self.app.models_dir))
        if job.error:
            self.error.setText(f"Moving the models stopped: {job.error} Every model is complete in one place.")
            self.error.show()
        else:
            self.bridge.status_message.emit(f"Moved {len(job.result.get('moved', []))} models.", 4000)

    def _hardware_known(self, hardware: object) -> None:
        """No GPU Hangar can use: no GPU layers control (everything runs on the CPU anyway)."""
        if shiboken6.isValid(self):
            self._form.setRowVisible(self.gpu_layers, bool(getattr(hardware, "gpus", ())))

    def _save(self, **changes: object) -> None:
        try:
            self.app.settings.update(**changes)
        except HangarError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return
        self.error.hide()
        self.bridge.status_message.emit("Settings saved.", 2000)
        if "theme" in changes:
            self.theme_changed.emit(str(changes["theme"]))
