"""The Workshop page: pick models and a text, then compare them side by side (size, memory, speed on this
machine, perplexity and KL divergence) in a table and a plot, or quantize one to another llama.cpp type. The work
runs as jobs of ``app.workshop`` (a child process each); this page starts them and listens through the bridge."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.errors import HangarError
from core.jobs import Job, JobState
from core.workshop.compare import CompareRow
from core.workshop.types import QUANT_TYPES, BenchRequest
from ui.pages.workshop_table import CompareTableModel, TradeoffChart
from ui.widgets.common import Page

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge

logger = logging.getLogger(__name__)

PathRole = Qt.ItemDataRole.UserRole + 1


class WorkshopPage(Page):
    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__(
            "Workshop", "Which file should you run? Measure quality, speed and size on this machine.", parent
        )
        self.app = app
        self.bridge = bridge
        #: The speed test run for models without a stored one (tests shrink it).
        self.bench: BenchRequest = BenchRequest("", 512, 128, (0,), 1)
        self._job_id: str | None = None
        self._job_kind = ""

        self.models = QListWidget()
        self.models.setAccessibleName("Models to compare")
        self.models.setToolTip("Tick two or more GGUF models (or quants of one model) to compare")
        add_file = QPushButton("Add file…")
        add_file.setToolTip("Add a .gguf file that is not in My Models")
        add_file.clicked.connect(self._add_file_dialog)
        refresh = QPushButton("Refresh")
        refresh.setToolTip("Reload the list from My Models")
        refresh.clicked.connect(self.reload_models)

        self.text = QLineEdit()
        self.text.setPlaceholderText("A UTF-8 text file, e.g. wiki.test.raw")
        self.text.setToolTip("Every model is measured on this text")
        self.text.setAccessibleName("Evaluation text")
        browse = QPushButton("Browse…")
        browse.setToolTip("Choose the evaluation text")
        browse.clicked.connect(self._browse_text)
        text_row = QHBoxLayout()
        text_row.addWidget(self.text, 1)
        text_row.addWidget(browse)
        self.ctx = QSpinBox()
        self.ctx.setRange(16, 32768)
        self.ctx.setSingleStep(128)
        self.ctx.setValue(512)
        self.ctx.setToolTip("Tokens per chunk (llama-perplexity's -c)")
        self.ctx.setAccessibleName("Chunk size")
        self.chunks = QSpinBox()
        self.chunks.setRange(0, 100000)
        self.chunks.setSpecialValueText("all")
        self.chunks.setToolTip("Evaluate only the first N chunks (all: the whole text)")
        self.chunks.setAccessibleName("Chunks")
        self.measure_speed = QCheckBox("Measure speed")
        self.measure_speed.setChecked(True)
        self.measure_speed.setToolTip("Run a prompt and generation speed test for models without one on this machine")
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Measure what is missing and show the ticked models side by side")
        self.compare_button.clicked.connect(self.start_compare)

        self.qtype = QComboBox()
        self.qtype.addItems([q.name for q in QUANT_TYPES if not q.needs_imatrix])
        self.qtype.setCurrentText("Q4_K_M")
        self.qtype.setToolTip("The llama.cpp type to quantize to")
        self.qtype.setAccessibleName("Quant type")
        self.requantize = QCheckBox("Allow requantize")
        self.requantize.setToolTip("Quantize an already quantized file (best from Q8_0)")
        self.quantize_button = QPushButton("Quantize selected")
        self.quantize_button.setToolTip("Write a quantized copy of the selected model next to it; it joins My Models")
        self.quantize_button.clicked.connect(self.start_quantize)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running measurement or quantization")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)

        form = QFormLayout()
        form.addRow("Text", text_row)
        form.addRow("Chunk size", self.ctx)
        form.addRow("Chunks", self.chunks)
        form.addRow("", self.measure_speed)
        quant_row = QHBoxLayout()
        quant_row.addWidget(self.qtype)
        quant_row.addWidget(self.requantize)
        form.addRow("Quantize to", quant_row)
        buttons = QHBoxLayout()
        for button in (self.compare_button, self.quantize_button, self.cancel_button):
            buttons.addWidget(button)
        list_buttons = QHBoxLayout()
        list_buttons.addWidget(add_file)
        list_buttons.addWidget(refresh)
        list_buttons.addStretch(1)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(QLabel("Models"))
        left_layout.addWidget(self.models, 1)
        left_layout.addLayout(list_buttons)
        left_layout.addLayout(form)
        left_layout.addLayout(buttons)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setAccessibleName("Progress")
        self.progress.setToolTip("Progress of the running job")
        self.progress.hide()  # only while a job runs: idle, it was an empty box over the table
        self.status = QLabel("Tick two or more models, choose a text, then Compare.")
        self.status.setObjectName("Muted")
        self.status.setWordWrap(True)
        self.table_model = CompareTableModel(self)
        self.table = QTableView()
        self.table.setModel(self.table_model)
        self.table.setAccessibleName("Comparison")
        self.table.setToolTip("The ticked models side by side")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.chart = TradeoffChart()
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.progress)
        right_layout.addWidget(self.status)
        right_layout.addWidget(self.table, 1)
        right_layout.addWidget(self.chart, 1)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 2)
        self.body.addWidget(splitter, 1)
        bridge.connect_hook(app.jobs.changed, self._job_changed)
        self.reload_models()

    # -- the model list ---------------------------------------------------------------------------------------
    def reload_models(self) -> None:
        from core.models.types import ModelFormat

        ticked = set(self.checked_paths())
        present = {self.models.item(i).data(PathRole) for i in range(self.models.count())}
        try:
            entries = self.app.library.list()
        except HangarError as exc:
            self.status.setText(str(exc))
            return
        for entry in entries:
            if entry.format in (ModelFormat.GGUF, ModelFormat.GGUF_SPLIT) and str(entry.files[0]) not in present:
                self.add_model(entry.files[0], label=f"{entry.name} · {entry.metadata.quant or '?'}")
        for i in range(self.models.count()):
            item = self.models.item(i)
            if item.data(PathRole) in ticked:
                item.setCheckState(Qt.CheckState.Checked)

    def add_model(self, path: Path, *, label: str | None = None, checked: bool = False) -> None:
        for i in range(self.models.count()):
            item = self.models.item(i)
            if item.data(PathRole) == str(path):
                item.setCheckState(Qt.CheckState.Checked if checked else item.checkState())
                return
        item = QListWidgetItem(label or Path(path).name)
        item.setData(PathRole, str(path))
        item.setToolTip(str(path))
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        self.models.addItem(item)

    def checked_paths(self) -> list[str]:
        return [
            self.models.item(i).data(PathRole)
            for i in range(self.models.count())
            if self.models.item(i).checkState() == Qt.CheckState.Checked
        ]

    def _add_file_dialog(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Add a model", "", "GGUF models (*.gguf)")
        if name:
            self.add_model(Path(name), checked=True)

    def _browse_text(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Evaluation text", "", "Text (*.txt *.raw);;All files (*)")
        if name:
            self.text.setText(name)

    # -- actions ----------------------------------------------------------------------------------------------
    def start_compare(self) -> None:
        models = self.checked_paths()
        if len(models) < 2:
            self.status.setText("Tick at least two models to compare.")
            return
        if not self.text.text().strip():
            self.status.setText("Choose a text to measure perplexity on.")
            return
        try:
            job_id = self.app.workshop.start_compare(
                list(models),
                self.text.text().strip(),
                ctx=self.ctx.value(),
                chunks=self.chunks.value() or None,
                bench=self.bench if self.measure_speed.isChecked() else None,
            )
        except HangarError as exc:
            self.status.setText(str(exc))
            return
        self._started(job_id, "compare")

    def start_quantize(self) -> None:
        current = self.models.currentItem()
        if current is None:
            self.status.setText("Select the model to quantize.")
            return
        source = Path(current.data(PathRole))
        qtype = self.qtype.currentText()
        stem = source.stem
        for suffix in ("-F32", "-F16", "-BF16", "-f16", "-f32", "-bf16"):
            stem = stem.removesuffix(suffix)
        output = source.with_name(f"{stem}-{qtype}.gguf")
        try:
            job_id = self.app.workshop.start_quantize(source, output, qtype, requantize=self.requantize.isChecked())
        except HangarError as exc:
            self.status.setText(str(exc))
            return
        self._started(job_id, "quantize")

    def cancel(self) -> None:
        if self._job_id is not None:
            self.app.jobs.cancel(self._job_id)

    def _started(self, job_id: str, kind: str) -> None:
        self._job_id, self._job_kind = job_id, kind
        self.progress.setValue(0)
        self.progress.show()
        self.status.setText("Starting…")
        self.compare_button.setEnabled(False)
        self.quantize_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

    def _job_changed(self, job: Job) -> None:
        if job.id != self._job_id:
            return
        if job.progress is not None:
            self.progress.setValue(int(job.progress * 1000))
        if job.message:
            self.status.setText(job.message)
        if not job.state.finished:
            return
        self._job_id = None
        self.progress.hide()
        self.compare_button.setEnabled(True)
        self.quantize_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if job.state == JobState.CANCELLED:
            self.status.setText("Cancelled.")
        elif job.state == JobState.FAILED:
            self.status.setText(job.error or "The job failed.")
        elif self._job_kind == "compare":
            self.show_rows([CompareRow(**row) for row in (job.result or {}).get("rows", [])])
            self.status.setText("Done.")
        else:
            result = job.result or {}
            self.reload_models()
            self.add_model(Path(result["path"]), checked=True)
            self.status.setText(f"Wrote {Path(result['path']).name}, made from {result.get('made_from')}.")

    def show_rows(self, rows: list[CompareRow]) -> None:
        self.table_model.set_rows(rows)
        self.chart.set_rows(rows)
