"""The Settings page: theme, models folder, defaults for loading models, downloads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from core.errors import HangarError
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
        self.theme.setToolTip("Colours of the window")
        self.theme.setAccessibleName("Theme")
        self.theme.currentIndexChanged.connect(lambda _: self._save(theme=self.theme.currentData()))
        form.addRow("Theme", self.theme)

        self.models_dir = QLineEdit(current.models_dir or str(app.paths.models_dir))
        self.models_dir.setReadOnly(True)
        self.models_dir.setAccessibleName("Models folder")
        browse = QPushButton("Choose…")
        browse.setToolTip("Choose where downloaded and copied models are kept")
        browse.clicked.connect(self._choose_models_dir)
        row = QHBoxLayout()
        row.addWidget(self.models_dir, 1)
        row.addWidget(browse)
        form.addRow("Models folder", row)

        self.context = QSpinBox()
        self.context.setRange(256, 1_048_576)
        self.context.setSingleStep(1024)
        self.context.setValue(current.default_context_length)
        self.context.setSuffix(" tokens")
        self.context.setToolTip("Context length used when a model is loaded, unless you change it for one chat")
        self.context.setAccessibleName("Default context length")
        self.context.editingFinished.connect(lambda: self._save(default_context_length=self.context.value()))
        form.addRow("Default context", self.context)

        self.gpu_layers = QComboBox()
        self.gpu_layers.setEditable(True)
        self.gpu_layers.addItem("auto")
        self.gpu_layers.setCurrentText(current.gpu_layers)
        self.gpu_layers.setToolTip("'auto' puts as many layers on the GPU as fit with a safety margin")
        self.gpu_layers.setAccessibleName("GPU layers")
        self.gpu_layers.lineEdit().editingFinished.connect(
            lambda: self._save(gpu_layers=self.gpu_layers.currentText().strip())
        )
        form.addRow("GPU layers", self.gpu_layers)

        self.parallel = QSpinBox()
        self.parallel.setRange(1, 8)
        self.parallel.setValue(current.max_parallel_downloads)
        self.parallel.setToolTip("How many files download at the same time")
        self.parallel.setAccessibleName("Parallel downloads")
        self.parallel.valueChanged.connect(lambda v: self._save(max_parallel_downloads=v))
        form.addRow("Parallel downloads", self.parallel)

        self.hf_token = HfTokenBox()
        form.addRow("Hugging Face token", self.hf_token)

        self.error = QLabel()
        self.error.setObjectName("ErrorText")
        self.error.setWordWrap(True)
        self.error.hide()

        self.body.addWidget(card)
        self.body.addWidget(self.error)
        self.body.addStretch(1)

    def _choose_models_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Models folder", self.models_dir.text())
        if folder:
            self.models_dir.setText(folder)
            self._save(models_dir=folder)

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
