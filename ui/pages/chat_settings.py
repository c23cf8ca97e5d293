"""The chat settings panel: system prompt, sampling parameters with presets, stop strings and output format.
Every change is validated by ``core.chat.store.ChatSettings`` and explained in place when it is refused."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.chat.store import PRESETS, ChatSettings, apply_preset, preset_name
from core.errors import HangarError
from ui.qtfix import emit
from ui.theme import current_colors

CUSTOM = "Custom"
FORMATS = (("Text", "text"), ("JSON", "json"), ("JSON schema", "json_schema"))


class ChatSettingsPanel(QWidget):
    #: (system prompt, settings) — only valid settings are announced.
    changed = Signal(str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedWidth(230)
        self._loading = False
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setPlaceholderText("System prompt (optional)")
        self.system_prompt.setFixedHeight(90)
        self.preset = QComboBox()
        self.preset.addItems([*PRESETS, CUSTOM])
        self.temperature = _double(0.0, 5.0, 0.05)
        self.top_p = _double(0.01, 1.0, 0.01)
        self.top_k = _int(0, 1000)
        self.min_p = _double(0.0, 1.0, 0.01)
        self.repeat_penalty = _double(0.5, 2.5, 0.01)
        self.max_tokens = _int(1, 1_000_000)
        self.seed = _int(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")
        self.stop = QLineEdit()
        self.stop.setPlaceholderText("e.g. ###, User:")
        self.stop.setToolTip("Stop strings, separated by commas")
        self.response_format = QComboBox()
        for label, value in FORMATS:
            self.response_format.addItem(label, value)
        self.json_schema = QPlainTextEdit()
        self.json_schema.setPlaceholderText('{"type": "object", "properties": {...}}')
        self.json_schema.setFixedHeight(80)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {current_colors().bad};")
        self.error.hide()

        tips = {
            self.system_prompt: ("System prompt", "Instructions the model reads before the conversation"),
            self.preset: ("Sampling preset", "Ready-made sampling settings; changing a value below makes it Custom"),
            self.temperature: ("Temperature", "Randomness: 0 always picks the likeliest word, higher is more varied"),
            self.top_p: ("Top-p", "Sample only from the likeliest words that together reach this probability"),
            self.top_k: ("Top-k", "Sample only from this many likeliest words (0 = no limit)"),
            self.min_p: ("Min-p", "Drop words less likely than this fraction of the likeliest one"),
            self.repeat_penalty: ("Repeat penalty", "Above 1 discourages repeating recent words"),
            self.max_tokens: ("Max tokens", "The longest reply, in tokens"),
            self.seed: ("Seed", "Same seed and settings give the same reply; -1 picks a new one each time"),
            self.stop: ("Stop strings", "Stop strings, separated by commas: the reply ends before any of them"),
            self.response_format: ("Output", "Plain text, any JSON object, or JSON that matches the schema below"),
            self.json_schema: ("JSON schema", "The JSON schema replies must match (JSON-schema output only)"),
        }
        for widget, (name, tip) in tips.items():
            widget.setAccessibleName(name)
            widget.setToolTip(tip)

        form = QFormLayout()
        form.addRow("Preset", self.preset)
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-p", self.top_p)
        form.addRow("Top-k", self.top_k)
        form.addRow("Min-p", self.min_p)
        form.addRow("Repeat penalty", self.repeat_penalty)
        form.addRow("Max tokens", self.max_tokens)
        form.addRow("Seed", self.seed)
        form.addRow("Stop strings", self.stop)
        form.addRow("Output", self.response_format)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel("System prompt")
        title.setStyleSheet("font-weight: 600;")
        layout.addWidget(title)
        layout.addWidget(self.system_prompt)
        sampling = QLabel("Sampling")
        sampling.setStyleSheet("font-weight: 600;")
        layout.addWidget(sampling)
        layout.addLayout(form)
        layout.addWidget(self.json_schema)
        layout.addWidget(self.error)
        layout.addStretch(1)

        self.preset.currentTextChanged.connect(self._on_preset)
        for spin in (
            self.temperature,
            self.top_p,
            self.top_k,
            self.min_p,
            self.repeat_penalty,
            self.max_tokens,
            self.seed,
        ):
            spin.valueChanged.connect(self._on_edit)
        self.stop.editingFinished.connect(self._on_edit)
        self.response_format.currentIndexChanged.connect(self._on_edit)
        self.json_schema.textChanged.connect(self._on_edit)
        self.system_prompt.textChanged.connect(self._on_edit)
        self.show_settings("", ChatSettings())

    def show_settings(self, system_prompt: str, settings: ChatSettings) -> None:
        self._loading = True
        try:
            self.system_prompt.setPlainText(system_prompt)
            self.temperature.setValue(settings.temperature)
            self.top_p.setValue(settings.top_p)
            self.top_k.setValue(settings.top_k)
            self.min_p.setValue(settings.min_p)
            self.repeat_penalty.setValue(settings.repeat_penalty)
            self.max_tokens.setValue(settings.max_tokens)
            self.seed.setValue(-1 if settings.seed is None else settings.seed)
            self.stop.setText(", ".join(settings.stop))
            self.response_format.setCurrentIndex(max(0, self.response_format.findData(settings.response_format)))
            self.json_schema.setPlainText(settings.json_schema)
            self.json_schema.setVisible(settings.response_format == "json_schema")
            self.preset.setCurrentText(preset_name(settings) or CUSTOM)
            self.error.hide()
        finally:
            self._loading = False

    def settings(self) -> ChatSettings:
        stops = tuple(s.strip() for s in self.stop.text().split(",") if s.strip())
        return ChatSettings(
            temperature=round(self.temperature.value(), 3),
            top_p=round(self.top_p.value(), 3),
            top_k=self.top_k.value(),
            min_p=round(self.min_p.value(), 3),
            repeat_penalty=round(self.repeat_penalty.value(), 3),
            max_tokens=self.max_tokens.value(),
            seed=None if self.seed.value() < 0 else self.seed.value(),
            stop=stops,
            response_format=str(self.response_format.currentData()),
            json_schema=self.json_schema.toPlainText(),
        )

    def _on_preset(self, name: str) -> None:
        if self._loading or name == CUSTOM:
            return
        self.show_settings(self.system_prompt.toPlainText(), apply_preset(self.settings(), name))
        self._announce()

    def _on_edit(self, *_args: object) -> None:
        if self._loading:
            return
        self.json_schema.setVisible(self.response_format.currentData() == "json_schema")
        self._loading = True
        self.preset.setCurrentText(preset_name(self.settings()) or CUSTOM)
        self._loading = False
        self._announce()

    def _announce(self) -> None:
        try:
            settings = self.settings().validated()
        except HangarError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return
        self.error.hide()
        emit(self.changed, self.system_prompt.toPlainText(), replace(settings))


def _double(low: float, high: float, step: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setDecimals(2)
    return spin


def _int(low: int, high: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    return spin
