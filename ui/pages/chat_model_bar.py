"""The Chat page's model bar: the model picker with Browse, Load / Unload / Options, what the model holds now, and
"Chat" from My Models (one click loads the model, an adapter with its base). A mixin of ``ChatPage`` (it calls the
page's load actions)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
)

from core.chat.models import estimated_bytes, memory_lines
from core.engine.protocol import LoadOptions
from ui.theme import current_colors
from ui.units import format_bytes
from ui.widgets.responsive import ElidedLabel, FlowLayout


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
        # One line beside the buttons, cut at the end in a narrow window (the whole line and what the memory holds
        # in its tooltip); when not even its first word fits there it moves under them rather than being squeezed
        # ("No / mode / loade").
        self.model_label = ModelLine()
        self.model_label.setObjectName("ModelStatus")
        self.model_label.setStyleSheet(f"color: {current_colors().muted};")
        # the side panels' switches: the conversation list, and the system prompt with the sampling settings
        self.chats_toggle = _toggle("Chats", "Show or hide the list of conversations")
        self.settings_toggle = _toggle("Settings", "Show or hide the system prompt and the sampling settings")
        # two rows: the model and where it comes from; then what to do with it and what it holds now
        choose = QHBoxLayout()
        choose.addWidget(self.chats_toggle)
        choose.addWidget(self.model_picker, 1)
        choose.addWidget(self.browse_button)
        choose.addWidget(self.settings_toggle)
        act = FlowLayout(spacing=6, line_spacing=4)
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
        colors = current_colors()
        self.vision_tag = QLabel("vision")  # the loaded model reads images (its projector is loaded)
        self.vision_tag.setObjectName("VisionTag")
        self.vision_tag.setToolTip("This model reads images: drop, paste or attach one (Image…)")
        self.vision_tag.setStyleSheet(
            f"color: {colors.accent}; border: 1px solid {colors.accent}; border-radius: 8px; padding: 0 6px;"
        )
        self.vision_tag.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.vision_tag.hide()
        act.addWidget(self.vision_tag)
        act.addWidget(self.model_label)
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

    def edit_load_options(self) -> None:
        from ui.pages.chat_load import LoadOptionsDialog

        hardware = self.service.hardware()
        gpu = hardware is None or bool(hardware.gpus)  # unknown: offer it
        dialog = LoadOptionsDialog(self.load_options or self.service.default_options(), self, gpu=gpu)
        if dialog.exec():
            self.load_options = dialog.options

    def cancel_load(self) -> None:
        self.service.cancel_load()

    def unload(self) -> None:
        self.service.unload()

    def _loading(self, on: bool) -> None:
        if (self.load_button.hasFocus() and on) or (self.cancel_load_button.hasFocus() and not on):
            self.composer.setFocus(Qt.FocusReason.OtherFocusReason)  # see _update_buttons
        self.progress.setVisible(on)
        self.cancel_load_button.setVisible(on)
        self.load_button.setEnabled(not on)
        self.progress.setRange(0, 0)

    def _set_model_label(self) -> None:
        loaded = self.service.loaded
        self.unload_button.setEnabled(loaded is not None)
        self.vision_tag.setVisible(loaded is not None and loaded.info.vision)
        self.refresh_image_note()  # type: ignore[attr-defined]
        if loaded is None:
            self.model_label.setText("No model loaded")
            return
        lines = memory_lines(loaded.info, loaded.estimate)
        total = sum(loaded.info.allocated.values())
        expected = estimated_bytes(loaded.estimate)
        guess = f" (estimated {format_bytes(expected)})" if expected is not None else ""
        line = f"{loaded.model.name} · {loaded.model.engine}, {loaded.info.device.upper()} · "
        self.model_label.setText(line + f"{format_bytes(total)} allocated{guess}")
        # what the memory holds, then the whole line (the label may show it cut)
        self.model_label.setToolTip("\n".join([*lines, "", f"{loaded.model.name} ({loaded.model.path})"]))

    def open_payload(self, payload: object) -> None:
        """My Models' "Chat" (a library id, or a path): one click loads the model — an adapter with its base model —
        and opens a new chat with it."""
        from dataclasses import replace

        from core.models.types import ModelFormat

        options = self.load_options or self.service.default_options()
        if isinstance(payload, Path) or (isinstance(payload, str) and Path(payload).exists()):
            path, lora = str(payload), None
        elif isinstance(payload, str):
            try:
                library = self.service.library()
                entry = library.get(payload)
                if entry.format == ModelFormat.LORA:
                    if not entry.base_model_id:
                        self.show_banner(
                            f"The adapter {entry.name} has no base model in My Models: import the model it was "
                            "trained on, then choose Chat again."
                        )
                        return
                    path, lora = str(library.get(entry.base_model_id).load_path), str(entry.load_path)
                else:
                    path, lora = str(entry.load_path), None
            except Exception as exc:
                self.show_banner(str(exc))
                return
        else:
            return
        self.add_model_path(path)
        self.load_options = replace(options, lora_path=lora)
        loaded = self.service.loaded
        already = (
            loaded is not None and str(loaded.model.path) == path and loaded.options.lora_path == lora
        ) or self.progress.isVisible()
        if not already:
            self.load_selected()
        if self._load_request is not None or already:
            self.new_chat()


class ModelLine(ElidedLabel):
    """The model bar's status line: it asks for no more than its first word, and takes the rest of its row."""

    def __init__(self) -> None:
        super().__init__()
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def first_word_width(self) -> int:
        first = self.text().split(" ", 1)[0]
        margins = self.contentsMargins()
        return QFontMetrics(self.font()).horizontalAdvance(first + " …") + margins.left() + margins.right()

    def sizeHint(self) -> QSize:
        return QSize(self.first_word_width(), super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()


def _toggle(text: str, tip: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setCheckable(True)
    button.setChecked(True)
    button.setToolTip(tip)
    button.setAccessibleName(f"Show {text.lower()}")
    return button
