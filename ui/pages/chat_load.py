"""Load options for the chat model: context length, GPU layers (auto from the estimator), KV cache type, flash
attention, threads and a LoRA adapter. Values start from Settings; they apply to the next load."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.chat.models import AUTO_GPU_LAYERS
from core.engine.protocol import LoadOptions
from core.errors import HangarError
from core.remote.rpc import parse_endpoints
from ui.theme import current_colors

KV_TYPES = ("f16", "q8_0", "q4_0")


class LoadOptionsDialog(QDialog):
    def __init__(self, options: LoadOptions, parent: QWidget | None = None, *, gpu: bool = True) -> None:
        """``gpu``: False on a machine with no GPU Hangar can use; the GPU layers control is then not offered."""
        super().__init__(parent)
        self.setWindowTitle("Load options")
        self.context = QSpinBox()
        self.context.setRange(256, 10_000_000)
        self.context.setSingleStep(1024)
        self.context.setValue(options.context_length)
        self.gpu_layers = QComboBox()
        self.gpu_layers.setEditable(True)
        self.gpu_layers.addItems(["auto", "all", "0"])
        layers = options.gpu_layers
        self.gpu_layers.setCurrentText("auto" if layers == AUTO_GPU_LAYERS else "all" if layers == -1 else str(layers))
        self.gpu_layers.setToolTip("auto: as many layers as fit, by the memory estimator; all; or a number")
        self.kv_cache = QComboBox()
        self.kv_cache.addItems(KV_TYPES)
        self.kv_cache.setCurrentText(options.kv_cache_type)
        self.flash = QCheckBox("Flash attention (needed for a quantized KV cache)")
        self.flash.setChecked(options.flash_attention)
        self.threads = QSpinBox()
        self.threads.setRange(0, 256)
        self.threads.setSpecialValueText("automatic")
        self.threads.setValue(options.threads or 0)
        self.lora = QLineEdit(options.lora_path or "")
        self.lora.setPlaceholderText("none")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_lora)
        lora_row = QHBoxLayout()
        lora_row.addWidget(self.lora, 1)
        lora_row.addWidget(browse)
        self.rpc = QLineEdit(", ".join(options.rpc_servers))
        self.rpc.setPlaceholderText("none — e.g. 192.168.1.20:50052, 192.168.1.21:50052")
        self.rpc.setToolTip(
            "llama.cpp RPC workers (`hangar worker` on each machine) that hold part of a GGUF model's layers"
        )
        self.rpc.setAccessibleName("RPC workers")
        self.error = QLabel()
        self.error.setStyleSheet(f"color: {current_colors().bad};")
        self.error.hide()
        form = QFormLayout()
        form.addRow("Context length", self.context)
        form.addRow("GPU layers", self.gpu_layers)
        form.setRowVisible(self.gpu_layers, gpu)
        form.addRow("KV cache", self.kv_cache)
        form.addRow("", self.flash)
        form.addRow("Threads", self.threads)
        form.addRow("LoRA adapter", lora_row)
        form.addRow("RPC workers", self.rpc)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.options = options

    def _browse_lora(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a LoRA adapter", "", "GGUF adapters (*.gguf);;All (*)")
        if path:
            self.lora.setText(path)

    def read(self) -> LoadOptions:
        """The options as entered; raises ValueError with a message for the user."""
        text = self.gpu_layers.currentText().strip().lower()
        if text == "auto":
            layers = AUTO_GPU_LAYERS
        elif text == "all":
            layers = -1
        elif text.isdigit():
            layers = int(text)
        else:
            raise ValueError("GPU layers must be auto, all or a whole number.")
        if self.kv_cache.currentText() != "f16" and not self.flash.isChecked():
            raise ValueError("A quantized KV cache needs flash attention.")
        try:
            workers = parse_endpoints(self.rpc.text())
        except HangarError as exc:
            raise ValueError(str(exc)) from None
        return LoadOptions(
            context_length=self.context.value(),
            gpu_layers=layers,
            kv_cache_type=self.kv_cache.currentText(),
            flash_attention=self.flash.isChecked(),
            threads=self.threads.value() or None,
            lora_path=self.lora.text().strip() or None,
            rpc_servers=workers,
        )

    def _accept(self) -> None:
        try:
            self.options = self.read()
        except ValueError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return
        self.accept()
