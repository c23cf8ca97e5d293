"""The settings side of the Fine-tune page: base model, dataset (with preview), backend and hyper-parameters."""

from __future__ import annotations

import platform
import sys

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.finetune.datasets import CsvColumns
from core.finetune.types import FinetuneBackend, FinetuneConfig, LrSchedule

DEFAULTS = FinetuneConfig()


def default_backend() -> FinetuneBackend:
    """MLX on Apple Silicon, PyTorch/PEFT elsewhere."""
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return FinetuneBackend.MLX
    return FinetuneBackend.PEFT


def _spin(low: int, high: int, value: int, name: str, tip: str, step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setValue(value)
    box.setAccessibleName(name)
    box.setToolTip(tip)
    return box


def _double(low: float, high: float, value: float, name: str, tip: str, step: float = 1.0) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setValue(value)
    box.setAccessibleName(name)
    box.setToolTip(tip)
    return box


#: The form's rows that only "Advanced settings" shows.
ADVANCED_ROWS = ("LoRA", "Targets", "Learning rate", "Batches", "Every N steps", "Seed", "Memory")


class FinetuneForm(QFrame):
    #: Something that changes the memory estimate or the data preview was edited.
    changed = Signal()
    dataset_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Card")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(16, 14, 16, 14)
        form = QFormLayout()
        form.setSpacing(8)
        # Centred on the row's controls (which are taller than a label), not a few pixels above them.
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        # Simple by default: a model, a dataset, the backend and the length of the run; the defaults (tuned for a
        # first adapter) fill in the rest. "Advanced" shows every setting.
        self.advanced = QCheckBox("Advanced settings")
        self.advanced.setAccessibleName("Advanced settings")
        self.advanced.setToolTip(
            "Show LoRA, learning-rate, batch, checkpoint and memory settings (the defaults suit a first adapter)"
        )
        outer.addWidget(self.advanced, 0, Qt.AlignmentFlag.AlignRight)
        outer.addLayout(form)
        self._form = form

        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("A Hugging Face or MLX model folder (safetensors)")
        self.model_path.setAccessibleName("Base model folder")
        self.model_path.setToolTip(
            "The model to adapt: a folder with its full weights (safetensors) and tokenizer, not a GGUF file"
        )
        base_row = self._with_browse(self.model_path, self._choose_model, "Pick the base model's folder")
        #: Fine-tunable models of My Models (full weights: safetensors folders); the page fills it.
        self.from_library = QComboBox()
        self.from_library.setAccessibleName("Base model from My Models")
        self.from_library.setToolTip("A model from My Models with its full weights (safetensors), ready to fine-tune")
        self.from_library.setMinimumContentsLength(12)
        self.from_library.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.from_library.activated.connect(self._library_model_chosen)
        base_row.insertWidget(1, self.from_library)
        form.addRow("Base model", base_row)
        self.data_path = QLineEdit()
        self.data_path.setPlaceholderText("JSONL, JSON or CSV, or a folder with train.jsonl")
        self.data_path.setAccessibleName("Dataset")
        self.data_path.setToolTip(
            "Training examples: chat messages, prompt/completion pairs or plain text, one per row. "
            "A folder may hold train.jsonl and valid.jsonl"
        )
        form.addRow("Dataset", self._with_browse(self.data_path, self._choose_data, "Pick the dataset file"))
        self.data_summary = QLabel("")
        self.data_summary.setObjectName("Muted")
        self.data_summary.setWordWrap(True)
        form.addRow("", self.data_summary)
        # CSV only: which columns hold the text, or the prompt and the completion.
        self.csv_text, self.csv_prompt, self.csv_completion = QComboBox(), QComboBox(), QComboBox()
        self.csv_row = QWidget()
        csv_layout = QHBoxLayout(self.csv_row)
        csv_layout.setContentsMargins(0, 0, 0, 0)
        for label, box in (("text", self.csv_text), ("prompt", self.csv_prompt), ("completion", self.csv_completion)):
            box.setAccessibleName(f"CSV {label} column")
            box.setToolTip(
                "The column with the whole text to learn"
                if label == "text"
                else f"The column with the {label}; the model learns to write completions for prompts"
            )
            box.currentIndexChanged.connect(lambda _i: self.dataset_changed.emit(self.data_path.text().strip()))
            csv_layout.addWidget(QLabel(label))
            csv_layout.addWidget(box, 1)
        self.csv_row.setVisible(False)
        form.addRow("CSV columns", self.csv_row)
        self._csv_label = form.labelForField(self.csv_row)
        if self._csv_label is not None:
            self._csv_label.setVisible(False)
        self.csv_source: str | None = None  # the CSV whose columns are offered
        self.skip_bad_rows = QCheckBox("Skip rows with problems (train on the good ones)")
        self.skip_bad_rows.setToolTip(
            "Off: training refuses a dataset with broken rows and lists them. On: those rows are left out"
        )
        form.addRow("", self.skip_bad_rows)
        self.measure_button = QPushButton("Count tokens")
        self.measure_button.setToolTip("Count each row's tokens with the base model's tokenizer and chat template")
        self.token_summary = QLabel("")
        self.token_summary.setObjectName("Muted")
        self.token_summary.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.measure_button)
        row.addWidget(self.token_summary, 1)
        form.addRow("Lengths", row)

        self.backend = QComboBox()
        self.backend.addItem("MLX (Apple Silicon)", FinetuneBackend.MLX.value)
        self.backend.addItem("PyTorch + PEFT (NVIDIA, CPU)", FinetuneBackend.PEFT.value)
        self.backend.setCurrentIndex(self.backend.findData(default_backend().value))
        self.backend.setAccessibleName("Backend")
        self.backend.setToolTip("MLX trains on Apple silicon; PyTorch + PEFT on an NVIDIA GPU or, slowly, the CPU")
        form.addRow("Backend", self.backend)

        self.rank = _spin(
            1,
            512,
            DEFAULTS.rank,
            "LoRA rank",
            "LoRA rank: size of the adapter matrices; higher learns more, "
            "needs more memory and makes a larger adapter (8 to 64 is typical)",
        )
        self.alpha = _double(
            0.5, 2048, DEFAULTS.alpha, "LoRA alpha", "LoRA alpha: the adapter's weight is alpha / rank (often 2 × rank)"
        )
        self.dropout = _double(
            0.0,
            0.9,
            DEFAULTS.dropout,
            "LoRA dropout",
            "Share of the adapter's inputs dropped while training (0 to 0.1); guards small datasets against memorising",
            0.05,
        )
        row = QHBoxLayout()
        for label, box in (("rank", self.rank), ("alpha", self.alpha), ("dropout", self.dropout)):
            row.addWidget(QLabel(label))
            row.addWidget(box)
        form.addRow("LoRA", row)

        self.targets = QLineEdit(", ".join(DEFAULTS.target_modules))
        self.targets.setToolTip("Linear layers that get adapters, e.g. q_proj, k_proj, v_proj, o_proj")
        self.targets.setAccessibleName("Target modules")
        self.layers = _spin(
            -1, 512, DEFAULTS.num_layers, "Adapted layers", "Adapt only the last N layers (-1: all); fewer is faster"
        )
        row = QHBoxLayout()
        row.addWidget(self.targets, 1)
        row.addWidget(QLabel("layers"))
        row.addWidget(self.layers)
        form.addRow("Targets", row)

        self.learning_rate = QLineEdit(f"{DEFAULTS.learning_rate:g}")
        self.learning_rate.setToolTip("Learning rate (1e-5 to 1e-3 for most models)")
        self.learning_rate.setAccessibleName("Learning rate")
        self.schedule = QComboBox()
        for schedule in LrSchedule:
            self.schedule.addItem(schedule.value.capitalize(), schedule.value)
        self.schedule.setCurrentIndex(self.schedule.findData(DEFAULTS.schedule.value))
        self.schedule.setAccessibleName("Learning-rate schedule")
        self.schedule.setToolTip("How the learning rate changes over the run (cosine decays it smoothly to zero)")
        self.warmup = _spin(
            0,
            100_000,
            DEFAULTS.warmup_steps,
            "Warm-up steps",
            "Steps that ramp the learning rate up from zero; steadies the first steps",
        )
        row = QHBoxLayout()
        row.addWidget(self.learning_rate, 1)
        row.addWidget(self.schedule)
        row.addWidget(QLabel("warm-up"))
        row.addWidget(self.warmup)
        form.addRow("Learning rate", row)

        self.iters = _spin(
            1, 1_000_000, DEFAULTS.iters, "Training steps", "Training steps; each step trains on one batch of rows", 50
        )
        self.use_epochs = QCheckBox("epochs instead")
        self.use_epochs.setToolTip("Count the run in passes over the whole dataset instead of steps")
        self.epochs = _double(0.1, 1000, 3.0, "Epochs", "Passes over the whole training set (fractions allowed)")
        self.epochs.setEnabled(False)
        self.use_epochs.toggled.connect(self.epochs.setEnabled)
        self.use_epochs.toggled.connect(lambda on: self.iters.setEnabled(not on))
        row = QHBoxLayout()
        row.addWidget(self.iters)
        row.addWidget(self.use_epochs)
        row.addWidget(self.epochs)
        row.addStretch(1)
        form.addRow("Steps", row)

        self.batch_size = _spin(
            1, 1024, DEFAULTS.batch_size, "Batch size", "Rows per step; larger batches need more memory"
        )
        self.max_length = _spin(
            16,
            131_072,
            DEFAULTS.max_length,
            "Maximum length",
            "Longest row in tokens; longer rows are truncated. Memory grows with it",
            256,
        )
        self.seed = _spin(
            0, 999_999, DEFAULTS.seed, "Seed", "Random seed (split, order, initialisation): same seed, same run"
        )
        row = QHBoxLayout()
        for label, box in (("batch", self.batch_size), ("max length", self.max_length)):
            row.addWidget(QLabel(label))
            row.addWidget(box)
        row.addStretch(1)
        form.addRow("Batches", row)

        self.checkpoint_every = _spin(
            1,
            100_000,
            DEFAULTS.checkpoint_every,
            "Checkpoint interval",
            "Save the adapter every N steps; a stopped run resumes from the last checkpoint",
        )
        self.eval_every = _spin(
            1,
            100_000,
            DEFAULTS.eval_every,
            "Validation interval",
            "Measure the loss on the validation rows every N steps (the dashed line in the chart)",
        )
        row = QHBoxLayout()
        for label, box in (("checkpoint", self.checkpoint_every), ("validate", self.eval_every)):
            row.addWidget(QLabel(label))
            row.addWidget(box)
        row.addStretch(1)
        form.addRow("Every N steps", row)
        row = QHBoxLayout()
        row.addWidget(self.seed)
        row.addStretch(1)
        form.addRow("Seed", row)

        self.qlora = QCheckBox("QLoRA (4-bit base weights)")
        self.qlora.setToolTip("Needs CUDA + bitsandbytes with PEFT; with MLX the base is quantized in memory")
        self.grad_checkpoint = QCheckBox("Gradient checkpointing")
        self.grad_checkpoint.setToolTip("Less activation memory, about a third slower")
        row = QHBoxLayout()
        row.addWidget(self.qlora)
        row.addWidget(self.grad_checkpoint)
        row.addStretch(1)
        form.addRow("Memory", row)

        self.advanced.toggled.connect(self.set_advanced)
        self.set_advanced(False)

        self.data_path.editingFinished.connect(lambda: self.dataset_changed.emit(self.data_path.text().strip()))
        for signal in (
            self.model_path.editingFinished,
            self.backend.currentIndexChanged,
            self.rank.valueChanged,
            self.layers.valueChanged,
            self.batch_size.valueChanged,
            self.max_length.valueChanged,
            self.qlora.toggled,
            self.grad_checkpoint.toggled,
            self.targets.editingFinished,
        ):
            signal.connect(lambda *_: self.changed.emit())

    def set_library_models(self, models: list[tuple[str, str]]) -> None:
        """Offer ``(name, folder)`` pairs from My Models as base models."""
        self.from_library.clear()
        self.from_library.addItem("From My Models…" if models else "No fine-tunable models yet", "")
        for name, folder in models:
            self.from_library.addItem(name, folder)
            self.from_library.setItemData(self.from_library.count() - 1, folder, Qt.ItemDataRole.ToolTipRole)
        self.from_library.setEnabled(bool(models))

    def _library_model_chosen(self, index: int) -> None:
        folder = self.from_library.itemData(index)
        if folder:
            self.model_path.setText(folder)
            self.changed.emit()
        self.from_library.setCurrentIndex(0)

    def set_advanced(self, on: bool) -> None:
        """Show (True) or hide the settings a newcomer can leave at their defaults."""
        if self.advanced.isChecked() != on:
            self.advanced.setChecked(on)  # comes back here through toggled
            return
        for row in range(self._form.rowCount()):
            label = self._form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            text = label.widget().text() if label is not None and isinstance(label.widget(), QLabel) else ""
            if text in ADVANCED_ROWS:
                self._form.setRowVisible(row, on)

    def _with_browse(self, edit: QLineEdit, choose: object, tip: str) -> QHBoxLayout:
        button = QPushButton("Choose…")
        button.setToolTip(tip)
        button.setAccessibleName(f"Choose {edit.accessibleName().lower()}")
        button.clicked.connect(choose)
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(button)
        return row

    def _choose_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a base model folder")
        if folder:
            self.model_path.setText(folder)
            self.changed.emit()

    def _choose_data(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a dataset", "", "Datasets (*.jsonl *.json *.csv)")
        if path:
            self.data_path.setText(path)
            self.dataset_changed.emit(path)

    def set_csv_header(self, header: list[str] | None) -> None:
        """Offer the CSV's columns (None hides the choice: the file is not a CSV)."""
        visible = header is not None
        self.csv_source = self.data_path.text().strip() if visible else None
        self.csv_row.setVisible(visible)
        if self._csv_label is not None:
            self._csv_label.setVisible(visible)
        if header is None:
            return
        lower = {h.lower(): h for h in header}
        guesses = {
            self.csv_text: lower.get("text"),
            self.csv_prompt: lower.get("prompt") or lower.get("instruction") or lower.get("question"),
            self.csv_completion: lower.get("completion") or lower.get("output") or lower.get("answer"),
        }
        for box, guess in guesses.items():
            box.blockSignals(True)
            box.clear()
            box.addItem("—", None)
            for column in header:
                box.addItem(column, column)
            if guess and not (box is self.csv_text and guesses[self.csv_prompt]):
                box.setCurrentIndex(box.findData(guess))
            box.blockSignals(False)

    def columns(self) -> CsvColumns | None:
        if self.csv_row.isHidden():
            return None
        text, prompt, completion = (b.currentData() for b in (self.csv_text, self.csv_prompt, self.csv_completion))
        if not (text or (prompt and completion)):
            return None  # let the dataset reader guess, or explain what to choose
        return CsvColumns(text=None if prompt and completion else text, prompt=prompt, completion=completion)

    # -- values ----------------------------------------------------------------------------------------------
    def backend_value(self) -> FinetuneBackend:
        return FinetuneBackend(self.backend.currentData())

    def config(self) -> FinetuneConfig:
        """The settings as a validated ``FinetuneConfig`` (raises ``FinetuneError`` with what is wrong)."""
        from core.errors import FinetuneError

        try:
            learning_rate = float(self.learning_rate.text())
        except ValueError:
            raise FinetuneError(f"“{self.learning_rate.text()}” is not a learning rate (try 1e-4).") from None
        return FinetuneConfig(
            rank=self.rank.value(),
            alpha=self.alpha.value(),
            dropout=self.dropout.value(),
            target_modules=tuple(t.strip() for t in self.targets.text().split(",") if t.strip()),
            num_layers=self.layers.value() or -1,
            learning_rate=learning_rate,
            schedule=LrSchedule(self.schedule.currentData()),
            warmup_steps=self.warmup.value(),
            iters=self.iters.value(),
            epochs=self.epochs.value() if self.use_epochs.isChecked() else None,
            batch_size=self.batch_size.value(),
            max_length=self.max_length.value(),
            seed=self.seed.value(),
            checkpoint_every=self.checkpoint_every.value(),
            eval_every=self.eval_every.value(),
            quantize_4bit=self.qlora.isChecked(),
            grad_checkpoint=self.grad_checkpoint.isChecked(),
        ).validate()

    def set_config(self, config: FinetuneConfig, backend: str | None = None) -> None:
        """Show a run's settings (choosing a job in the history fills the form, ready to run again)."""
        self.rank.setValue(config.rank)
        self.alpha.setValue(config.alpha)
        self.dropout.setValue(config.dropout)
        self.targets.setText(", ".join(config.target_modules))
        self.layers.setValue(config.num_layers)
        self.learning_rate.setText(f"{config.learning_rate:g}")
        self.schedule.setCurrentIndex(self.schedule.findData(config.schedule.value))
        self.warmup.setValue(config.warmup_steps)
        self.iters.setValue(config.iters)
        self.use_epochs.setChecked(config.epochs is not None)
        if config.epochs is not None:
            self.epochs.setValue(config.epochs)
        self.batch_size.setValue(config.batch_size)
        self.max_length.setValue(config.max_length)
        self.seed.setValue(config.seed)
        self.checkpoint_every.setValue(config.checkpoint_every)
        self.eval_every.setValue(config.eval_every)
        self.qlora.setChecked(config.quantize_4bit)
        self.grad_checkpoint.setChecked(config.grad_checkpoint)
        if backend:
            self.backend.setCurrentIndex(max(0, self.backend.findData(backend)))
