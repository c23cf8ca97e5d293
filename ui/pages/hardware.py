"""The Hardware page: this machine's GPUs, memory, bandwidth and engines, and "will it fit?" for any model file,
folder or Hub ``REPO[:FILE]`` (read remotely, header only), with the estimate panel and the estimator's record
against real loads."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.estimate.fitting import ModelHeader, read_target
from core.hardware import GpuDevice, Hardware
from ui.operations import run_in_background
from ui.widgets.common import CollapsingLabel, Page
from ui.widgets.estimate_panel import EstimatePanel, human_bytes
from ui.widgets.record_model import RecordTableModel

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge

logger = logging.getLogger(__name__)
_Index = QModelIndex | QPersistentModelIndex


class GpuTableModel(RecordTableModel):
    COL_DEVICE, COL_NAME, COL_TOTAL, COL_FREE, COL_USABLE, COL_BANDWIDTH, COL_DRIVER = range(7)
    HEADERS = ("Device", "Name", "Memory", "Free", "Usable by models", "Bandwidth", "Driver")
    GpuRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.gpus: list[GpuDevice] = []

    def set_gpus(self, gpus: list[GpuDevice]) -> None:
        self.beginResetModel()
        self.gpus = list(gpus)
        self.endResetModel()

    def records(self) -> Sequence[Any]:
        return self.gpus

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.gpus):
            return None
        gpu = self.gpus[index.row()]
        if role == self.GpuRole:
            return gpu
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        column = index.column()
        if column == self.COL_DEVICE:
            return gpu.device_name
        if column == self.COL_NAME:
            return gpu.name + (" (shared memory)" if gpu.unified_memory else "")
        if column == self.COL_TOTAL:
            return human_bytes(gpu.total_bytes) if gpu.total_bytes else "not reported"
        if column == self.COL_FREE:
            return human_bytes(gpu.free_bytes) if gpu.free_bytes is not None else "—"
        if column == self.COL_USABLE:
            return human_bytes(gpu.budget_bytes) if gpu.budget_bytes else "—"
        if column == self.COL_BANDWIDTH:
            return f"{gpu.bandwidth_gbs:,.0f} GB/s" if gpu.bandwidth_gbs else "—"
        if column == self.COL_DRIVER:
            cuda = f" (CUDA {gpu.cuda_version})" if gpu.cuda_version else ""
            return (gpu.driver_version or "—") + cuda
        return None


def _card(title: str) -> tuple[QFrame, QVBoxLayout]:
    card = QFrame()
    card.setObjectName("Card")
    layout = QVBoxLayout(card)
    layout.setContentsMargins(16, 12, 16, 14)
    heading = QLabel(title)
    heading.setStyleSheet("font-weight: 600; font-size: 14px;")
    layout.addWidget(heading)
    return card, layout


class HardwarePage(Page):
    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__("Hardware", "What this machine offers to models, and whether a model will fit.", parent)
        self.app = app
        self.bridge = bridge
        self.hardware: Hardware | None = None
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Detect devices and free memory again (F5)")
        self.refresh_button.clicked.connect(lambda: self.refresh(force=True))
        self.header.actions.addWidget(self.refresh_button)

        machine, machine_layout = _card("This machine")
        self.machine_form = QFormLayout()
        machine_layout.addLayout(self.machine_form)
        self.system_label, self.cpu_label, self.memory_label, self.engines_label, self.accuracy_label = (
            QLabel("Detecting…") for _ in range(5)
        )
        self.accuracy_label.setWordWrap(True)
        self.accuracy_label.setToolTip("Memory estimates against what llama.cpp really allocated on this machine")
        for title, label in (
            ("System", self.system_label),
            ("Processor", self.cpu_label),
            ("Memory", self.memory_label),
            ("Engines", self.engines_label),
            ("Estimates", self.accuracy_label),
        ):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.machine_form.addRow(title, label)
        self.gpu_model = GpuTableModel(self)
        self.gpu_table = QTableView()
        self.gpu_table.setModel(self.gpu_model)
        self.gpu_table.verticalHeader().hide()
        self.gpu_table.setAccessibleName("Graphics cards")
        self.gpu_table.setToolTip(
            "Each GPU Hangar can use; “Usable by models” is what is left after the driver and the desktop"
        )
        self.gpu_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.gpu_table.horizontalHeader().setStretchLastSection(True)
        self.no_gpu = QLabel("No GPU found: models run on the CPU, from system memory.")
        self.no_gpu.setObjectName("Muted")
        self.notes = QLabel()
        self.notes.setObjectName("Muted")
        self.notes.setWordWrap(True)
        machine_layout.addWidget(self.gpu_table)
        machine_layout.addWidget(self.no_gpu)
        machine_layout.addWidget(self.notes)

        fit, fit_layout = _card("Will it fit?")
        row = QHBoxLayout()
        self.target = QLineEdit()
        self.target.setPlaceholderText("A .gguf file, a model folder, or owner/repo:file.gguf on the Hub")
        self.target.setAccessibleName("Model to estimate")
        self.target.setToolTip(
            "A local .gguf file or model folder, or a Hub model as owner/repo:file.gguf (only its header is read)"
        )
        self.target.returnPressed.connect(self.estimate_target)
        self.estimate_button = QPushButton("Estimate")
        self.estimate_button.setObjectName("Primary")
        self.estimate_button.setToolTip("Read the model's header and estimate the memory it needs here")
        self.estimate_button.clicked.connect(self.estimate_target)
        row.addWidget(self.target, 1)
        row.addWidget(self.estimate_button)
        fit_layout.addLayout(row)
        self.target_error = QLabel()
        self.target_error.setObjectName("ErrorText")
        self.target_error.setWordWrap(True)
        self.target_error.hide()
        fit_layout.addWidget(self.target_error)
        self.model_label = CollapsingLabel()
        self.model_label.setObjectName("Muted")
        self.model_label.setWordWrap(True)  # a long model line never widens the card (sideways scrolling)
        fit_layout.addWidget(self.model_label)
        self.panel = EstimatePanel()
        fit_layout.addWidget(self.panel)
        self.history = CollapsingLabel()
        self.history.setObjectName("Muted")
        self.history.setWordWrap(True)
        fit_layout.addWidget(self.history)

        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(0, 0, 6, 0)
        column.addWidget(machine)
        column.addWidget(fit)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        self.body.addWidget(scroll)
        self.refresh()

    def refresh_page(self) -> None:
        """F5 in the window."""
        if self.refresh_button.isEnabled():
            self.refresh(force=True)

    # -- hardware --------------------------------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> None:
        """Detect in the background (importing the engines to probe them takes a moment)."""
        self.refresh_button.setEnabled(False)
        run_in_background(
            lambda: self.app.hardware(refresh=force),
            on_success=self.show_hardware,
            on_failure=self._hardware_failed,
            owner=self,
        )

    def _hardware_failed(self, error: Exception) -> None:
        self.refresh_button.setEnabled(True)
        self.notes.setText(f"Detection failed: {error}")

    def show_hardware(self, hardware: Hardware) -> None:
        self.hardware = hardware
        self.refresh_button.setEnabled(True)
        self.system_label.setText(f"{hardware.os} ({hardware.machine})")
        self.cpu_label.setText(f"{hardware.cpu_name}: {hardware.cpu_cores} cores, {hardware.cpu_threads} threads")
        bandwidth = f", about {hardware.ram_bandwidth_gbs:.0f} GB/s" if hardware.ram_bandwidth_gbs else ""
        self.memory_label.setText(
            f"{human_bytes(hardware.ram_total_bytes)} total, "
            f"{human_bytes(hardware.ram_available_bytes)} available{bandwidth}"
        )
        self.engines_label.setText(" · ".join(f"{name}: {text}" for name, text in hardware.engines.summary.items()))
        self.gpu_model.set_gpus(list(hardware.gpus))
        rows = max(len(hardware.gpus), 1)
        self.gpu_table.setFixedHeight(
            self.gpu_table.horizontalHeader().sizeHint().height()
            + rows * self.gpu_table.verticalHeader().defaultSectionSize()
            + 4
        )
        self.gpu_table.setVisible(bool(hardware.gpus))
        self.no_gpu.setVisible(not hardware.gpus)
        self.notes.setText("\n".join(hardware.notes))
        self.notes.setVisible(bool(hardware.notes))
        self.panel.set_hardware(hardware)
        from core.estimate.calibrate import estimate_accuracy

        self.accuracy_label.setText(estimate_accuracy(self.app.store).words)

    # -- estimates -------------------------------------------------------------------------------------------------
    def estimate_target(self) -> None:
        text = self.target.text().strip()
        if not text:
            return
        self.estimate_button.setEnabled(False)
        self.target_error.hide()
        self.model_label.setText(f"Reading {text}…")
        run_in_background(
            lambda: read_target(text), on_success=self.show_model, on_failure=self._target_failed, owner=self
        )

    def _target_failed(self, error: Exception) -> None:
        self.estimate_button.setEnabled(True)
        self.model_label.setText("")
        self.target_error.setText(str(error))
        self.target_error.show()

    def show_model(self, header: ModelHeader) -> None:
        self.estimate_button.setEnabled(True)
        self.target_error.hide()
        if header.gguf is not None:
            info = header.gguf
            where = "on the Hub (header only)" if header.remote else "local file"
            self.model_label.setText(
                f"{info.model_name or info.name}: {info.architecture}, {info.parameter_count / 1e9:.2f} B "
                f"parameters, {info.quant_type}, {human_bytes(info.weights_bytes)}, trained for "
                f"{info.context_length:,} tokens ({where})"
            )
        elif header.safetensors is not None:
            model = header.safetensors
            self.model_label.setText(
                f"{model.name}: safetensors/MLX, {human_bytes(model.total_bytes)} in {len(model.files)} file(s)"
            )
        self.panel.set_model(header)
        self._show_history(header)

    def _show_history(self, header: ModelHeader) -> None:
        from core.estimate.records import load_history

        name = header.gguf.name if header.gguf else None
        records = load_history(self.app.store, model=name, limit=5) if name else []
        if not records:
            self.history.setText("")
            return
        lines = [
            f"{r.n_ctx:,} tokens{f' on {r.device}' if r.device else ''}: estimated {human_bytes(r.estimated_total)}, "
            "llama.cpp allocated "
            f"{human_bytes(r.actual_total)} ({r.error_pct:+.1f}%)"
            for r in records
        ]
        self.history.setText("Earlier loads of this model:\n" + "\n".join(lines))
