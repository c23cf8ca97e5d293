"""The Chat page's model bar: the model picker with Browse, Load / Unload / Options and what the model holds now.
A mixin of ``ChatPage`` (it calls the page's load actions)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
)

from core.engine.protocol import LoadOptions
from ui.theme import current_colors


class ModelBarMixin:
    def _build_model_bar(self) -> None:
        self.model_picker = QComboBox()
        self.model_picker.setMinimumWidth(160)
        self.model_picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_picker.setAccessibleName("Model")
        self.model_picker.setToolTip("The model to chat with: your library, with a fit badge for this machine")
        self.browse_button = QPushButton("Browse…")
        menu = QMenu(self.browse_button)
        menu.addAction("GGUF file…", self._browse_file)
        menu.addAction("MLX model folder…", self._browse_folder)
        self.browse_button.setMenu(menu)
        self.browse_button.setToolTip("Chat with a GGUF file or MLX folder that is not in your library")
        self.load_button = QPushButton("Load")
        self.load_button.setToolTip("Load the chosen model into memory (in a separate engine process)")
        self.options_button = QPushButton("Options…")
        self.options_button.setToolTip("Context length, GPU layers, KV cache, threads, LoRA adapter")
        self.options_button.clicked.connect(self.edit_load_options)
        self.load_options: LoadOptions | None = None  # None: from Settings
        self.unload_button = QPushButton("Unload")
        self.unload_button.setToolTip("Free the memory the model uses; conversations are kept")
        self.progress = QProgressBar()
        self.progress.setFixedWidth(140)
        self.progress.hide()
        self.cancel_load_button = QPushButton("Cancel")
        self.cancel_load_button.setToolTip("Stop loading; nothing stays in memory")
        self.cancel_load_button.hide()
        self.model_label = QLabel()
        self.model_label.setObjectName("ModelStatus")
        self.model_label.setWordWrap(True)
        self.model_label.setStyleSheet(f"color: {current_colors().muted};")
        # two rows: the model and where it comes from; then what to do with it and what it holds now
        choose = QHBoxLayout()
        choose.addWidget(self.model_picker, 1)
        choose.addWidget(self.browse_button)
        act = QHBoxLayout()
        for widget in (
            self.load_button,
            self.unload_button,
            self.options_button,
            self.progress,
            self.cancel_load_button,
        ):
            act.addWidget(widget)
            if isinstance(widget, QPushButton):  # in a narrow window the label wraps; buttons never shrink ("nloa")
                widget.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.model_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        act.addWidget(self.model_label, 1)
        self.model_bar = QVBoxLayout()
        self.model_bar.setSpacing(4)
        self.model_bar.addLayout(choose)
        self.model_bar.addLayout(act)
        self.load_button.clicked.connect(self.load_selected)
        self.unload_button.clicked.connect(self.unload)
        self.cancel_load_button.clicked.connect(self.cancel_load)

    def _browse_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model", "", "GGUF models (*.gguf)")
        if path:
            self.add_model_path(path)

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose an MLX model folder")
        if path:
            self.add_model_path(path)
