"""Per-model defaults on the Server page: context, GPU layers and sampling for one library model. API loads use
them (a request's own fields still win), so a model behaves the same from any client."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from core.serve.defaults import ModelDefaults, ModelDefaultsStore
from ui.operations import run_in_background

if TYPE_CHECKING:
    from core.app import AppContext
    from core.hardware import Hardware


class ModelDefaultsBox(QGroupBox):
    def __init__(self, app: AppContext, parent: QWidget | None = None) -> None:
        super().__init__("Model defaults", parent)
        self.app = app
        self.store = ModelDefaultsStore(app.store)
        self.model_combo = QComboBox()
        self.model_combo.setToolTip("The library model these defaults belong to")
        # A long model name is cut in the box (whole in the list): it never widens the column past the window.
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(16)
        self.model_combo.currentIndexChanged.connect(self.show_defaults)
        self.context_spin = QSpinBox()
        self.context_spin.setRange(0, 1_048_576)
        self.context_spin.setSingleStep(1024)
        self.context_spin.setSpecialValueText("app default")
        self.context_spin.setToolTip("Context to load the model with, in tokens")
        self.layers_edit = QLineEdit()
        self.layers_edit.setPlaceholderText("app default (auto, -1 = all, or a number)")
        self.layers_edit.setToolTip("GPU layers for this model")
        self.temperature_spin = QDoubleSpinBox()
        self.temperature_spin.setRange(0.0, 5.0)
        self.temperature_spin.setSingleStep(0.1)
        self.temperature_spin.setToolTip("Sampling temperature when a request does not say")
        self.max_tokens_spin = QSpinBox()
        self.max_tokens_spin.setRange(1, 1_000_000)
        self.max_tokens_spin.setToolTip("Longest answer when a request does not say")
        self.save_button = QPushButton("Save defaults")
        self.save_button.setToolTip("Keep these defaults; they apply the next time the model loads")
        self.save_button.clicked.connect(self.save)
        self.message = QLabel()
        for widget, name in (
            (self.model_combo, "Model for defaults"),
            (self.context_spin, "Default context"),
            (self.layers_edit, "Default GPU layers"),
            (self.temperature_spin, "Default temperature"),
            (self.max_tokens_spin, "Default max tokens"),
        ):
            widget.setAccessibleName(name)
        form = QFormLayout(self)
        form.addRow("Model", self.model_combo)
        form.addRow("Context", self.context_spin)
        form.addRow("GPU layers", self.layers_edit)
        form.addRow("Temperature", self.temperature_spin)
        form.addRow("Max tokens", self.max_tokens_spin)
        form.addRow(self.save_button, self.message)
        self._form = form
        # GPU layers mean nothing on a machine without a GPU: the row shows once detection finds one.
        form.setRowVisible(self.layers_edit, False)
        run_in_background(app.hardware, on_success=self.set_hardware, on_failure=lambda _error: None, owner=self)
        self.reload_models()

    def set_hardware(self, hardware: Hardware) -> None:
        self._form.setRowVisible(self.layers_edit, bool(hardware.gpus))

    def reload_models(self) -> None:
        current = self.model_combo.currentData()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for entry in self.app.library.list():
            if entry.engine:
                self.model_combo.addItem(entry.name, entry.id)
        index = self.model_combo.findData(current)
        self.model_combo.setCurrentIndex(max(index, 0))
        self.model_combo.setPlaceholderText("No models in My Models yet")
        self.model_combo.blockSignals(False)
        for widget in (self.model_combo, self.save_button):
            widget.setEnabled(self.model_combo.count() > 0)
        self.show_defaults()

    def show_defaults(self) -> None:
        model_id = self.model_combo.currentData()
        defaults = self.store.get(model_id) if model_id else ModelDefaults()
        self.context_spin.setValue(defaults.context_length or 0)
        self.layers_edit.setText(defaults.gpu_layers or "")
        self.temperature_spin.setValue(defaults.sampling.temperature)
        self.max_tokens_spin.setValue(defaults.sampling.max_tokens)
        self.message.setText("")
        self.save_button.setEnabled(model_id is not None)

    def save(self) -> None:
        model_id = self.model_combo.currentData()
        if not model_id:
            return
        layers = self.layers_edit.text().strip() or None
        if layers is not None and layers != "auto" and not layers.lstrip("-").isdigit():
            self.message.setText("GPU layers: auto, -1 (all) or a number.")
            return
        old = self.store.get(model_id)
        sampling = dataclasses.replace(
            old.sampling, temperature=self.temperature_spin.value(), max_tokens=self.max_tokens_spin.value()
        )
        self.store.set(model_id, ModelDefaults(self.context_spin.value() or None, layers, sampling))
        self.message.setText("Saved.")
