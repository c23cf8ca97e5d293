"""The Fine-tune page: settings and data on the left; the job list, a live loss chart, the numbers of the
running step and the run's log on the right. Training runs in a child process owned by a job (core); this page
only listens to ``app.finetune.events`` and ``app.jobs.changed`` through the bridge."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.errors import HangarError
from core.finetune.datasets import csv_header, load_dataset
from core.finetune.types import (
    ExportFormat,
    TrainingEvent,
    TrainingFailed,
    TrainingLog,
    TrainingProgress,
    TrainingStarted,
    ValidationReport,
)
from core.jobs import Job, JobState
from ui.operations import run_in_background
from ui.pages.finetune_form import FinetuneForm
from ui.pages.finetune_jobs import FinetuneJobsModel
from ui.widgets.common import Page
from ui.widgets.loss_chart import LossChart
from ui.widgets.responsive import ResponsiveSplitter

if TYPE_CHECKING:
    from core.app import AppContext
    from core.finetune.datasets import Dataset, TokenStats
    from core.finetune.memory import TrainingMemoryPlan
    from core.finetune.service import FinetuneRun
    from ui.bridge import Bridge

logger = logging.getLogger(__name__)

CHOOSE_FIRST = "Choose a base model and a dataset first."


def run_status(state: str, detail: str) -> str:
    """ "Cancelled." — not "Cancelled. Cancelled." when the job's own message already says the state."""
    detail = detail.strip()
    if detail.lower().startswith(state.lower()):
        return detail
    head = f"{state.capitalize()}."
    return f"{head} {detail}" if detail else head


def _bytes(n: int) -> str:
    from ui.units import format_bytes

    return format_bytes(n)


class FinetunePage(Page):
    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__("Fine-tune", "Teach a model your own data with LoRA, on MLX or PyTorch.", parent)
        self.app = app
        self.bridge = bridge
        self.selected_job: str | None = None
        self._preview_generation = 0  # the newest dataset read; older answers are dropped
        self._exports: dict[str, str] = {}  # export job -> the run it exports

        self.start_button = QPushButton("Start training")
        self.start_button.setObjectName("Primary")
        self.start_button.setToolTip(
            "Train a LoRA adapter with these settings; it runs in the background and survives closing this page"
        )
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the run; its last checkpoint is kept so it can be resumed")
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the selected run from its last checkpoint")
        self.resume_button.clicked.connect(self.resume)
        for button in (self.resume_button, self.cancel_button, self.start_button):
            self.header.actions.addWidget(button)

        # left: settings, data preview, memory
        self.form = FinetuneForm()
        self.form.model_path.textChanged.connect(lambda _text: self._inputs_changed())
        self.form.data_path.textChanged.connect(lambda _text: self._inputs_changed())
        self.memory_label = QLabel("Choose a base model to see how much memory training needs.")
        self.memory_label.setWordWrap(True)
        self.memory_label.setObjectName("Muted")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setObjectName("ErrorText")
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.form)
        left_layout.addWidget(self.memory_label)
        left_layout.addWidget(self.message)
        left_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)

        # right: jobs, chart, numbers, log
        self.jobs_model = FinetuneJobsModel(self)
        self.jobs_view = QTableView()
        self.jobs_view.setModel(self.jobs_model)
        self.jobs_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.jobs_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.jobs_view.verticalHeader().hide()
        self.jobs_view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.jobs_view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.jobs_view.setMaximumHeight(150)
        self.jobs_view.setWordWrap(False)  # a long run name is elided (its tooltip has it whole), not two lines
        self.jobs_view.setAccessibleName("Fine-tune jobs")
        self.jobs_view.setToolTip("Your fine-tuning runs; select one to see its loss curve and reuse its settings")
        self.jobs_view.selectionModel().currentRowChanged.connect(lambda cur, _prev: self._select_row(cur.row()))
        self.chart = LossChart()
        self.stats = QLabel(
            "No fine-tuning runs yet: choose a base model and a dataset (JSONL or CSV), then Start training."
        )
        self.stats.setObjectName("Muted")
        self.stats.setWordWrap(True)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setAccessibleName("Training log")
        self.log.setToolTip("What the trainer reports, step by step, for the selected run")
        self.log.setMaximumHeight(140)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.jobs_view)
        right_layout.addWidget(self.chart, 1)
        right_layout.addWidget(self.stats)
        self.export_merged_button = QPushButton("Export merged model")
        self.export_merged_button.setToolTip("Base + adapter as one model folder (MLX fuse, or merged safetensors)")
        self.export_merged_button.clicked.connect(lambda: self.export(ExportFormat.MERGED))
        self.export_gguf_button = QPushButton("Export for llama.cpp")
        self.export_gguf_button.setToolTip("The adapter as a GGUF LoRA, and the base model as a GGUF to apply it to")
        self.export_gguf_button.clicked.connect(lambda: self.export(ExportFormat.GGUF_BASE, ExportFormat.GGUF_LORA))
        exports = QHBoxLayout()
        exports.addWidget(self.export_merged_button)
        exports.addWidget(self.export_gguf_button)
        exports.addStretch(1)
        right_layout.addLayout(exports)
        right_layout.addWidget(self.log)

        # Side by side where both fit; in a small window the runs go below the form (the page scrolls down).
        splitter = ResponsiveSplitter()
        splitter.addWidget(scroll)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        # The settings at their natural width, the chart and list take the rest.
        scroll.setMinimumWidth(min(460, left.sizeHint().width() + 16))  # the form scrolls in a small window
        right.setMinimumWidth(300)
        self.body.addWidget(splitter, 1)

        self._estimate_timer = QTimer(self)
        self._estimate_timer.setSingleShot(True)
        self._estimate_timer.setInterval(300)
        self._estimate_timer.timeout.connect(self.update_estimate)
        self.form.changed.connect(self._estimate_timer.start)
        self.form.dataset_changed.connect(self.preview_dataset)
        self.form.measure_button.clicked.connect(self.measure_tokens)

        bridge.connect_hook(app.finetune.events, self._on_training_event)
        bridge.connect_hook(app.jobs.changed, self._on_job_changed)
        self.reload()

    # -- actions ---------------------------------------------------------------------------------------------
    def _inputs_changed(self) -> None:
        """A new model or dataset: what was said about the old ones no longer holds."""
        if self.message.text() == CHOOSE_FIRST:
            self.message.clear()
        if self.form.token_summary.text() != "Counting…":  # a count (or a refusal) of the old inputs
            self.form.token_summary.setText("")

    def start(self) -> None:
        self.message.clear()
        model, data = self.form.model_path.text().strip(), self.form.data_path.text().strip()
        if not model or not data:
            self.message.setText(CHOOSE_FIRST)
            return
        try:
            config = self.form.config()
        except HangarError as exc:
            self.message.setText(str(exc))
            return
        backend = self.form.backend_value()
        columns, strict = self.form.columns(), not self.form.skip_bad_rows.isChecked()
        self.start_button.setEnabled(False)

        def start() -> str:
            dataset = load_dataset(data, columns=columns, strict=strict)
            return self.app.finetune.start(model, dataset, config, backend=backend)

        run_in_background(
            start,
            on_success=self._started,
            on_failure=self._failed_to_start,
            owner=self,
        )

    def _started(self, job_id: str) -> None:
        self.start_button.setEnabled(True)
        self.reload(select=job_id)

    def _failed_to_start(self, error: Exception) -> None:
        self.start_button.setEnabled(True)
        self.message.setText(str(error))

    def cancel(self) -> None:
        if self.selected_job:
            self.app.finetune.cancel(self.selected_job)

    def resume(self) -> None:
        if not self.selected_job:
            return
        self.message.clear()
        try:
            self.app.finetune.resume(self.selected_job)
        except HangarError as exc:
            self.message.setText(str(exc))

    def export(self, *formats: ExportFormat) -> None:
        if not self.selected_job:
            return
        job_id = self.selected_job
        self.message.clear()
        for fmt in formats:
            try:
                export_id = self.app.finetune.export(job_id, fmt)
            except HangarError as exc:
                self.message.setText(str(exc))
                return
            self._exports[export_id] = job_id
            self.append_log(f"Exporting {fmt}…")

    def measure_tokens(self) -> None:
        model, data = self.form.model_path.text().strip(), self.form.data_path.text().strip()
        if not model or not data:
            self.form.token_summary.setText(CHOOSE_FIRST)
            return
        max_length = self.form.max_length.value()
        self.form.measure_button.setEnabled(False)
        self.form.token_summary.setText("Counting…")

        def done(stats: TokenStats) -> None:
            self.form.measure_button.setEnabled(True)
            text = (
                f"{stats.count} rows: {stats.min_tokens}–{stats.max_tokens} tokens "
                f"(mean {stats.mean_tokens:.0f}, 95% under {stats.p95_tokens})."
            )
            self.form.token_summary.setText(f"{text}\n⚠ {stats.warning}" if stats.warning else f"✔ {text}")

        def failed(error: Exception) -> None:
            self.form.measure_button.setEnabled(True)
            self.form.token_summary.setText(f"⚠ {error}")

        run_in_background(
            lambda: self.app.finetune.measure_tokens(model, load_dataset(data, strict=False), max_length),
            on_success=done,
            on_failure=failed,
            owner=self,
        )

    def preview_dataset(self, path: str) -> None:
        if not path:
            self.form.data_summary.clear()
            return
        self.form.data_summary.setText("Reading…")
        is_csv = path.lower().endswith(".csv")
        if not is_csv:
            self.form.set_csv_header(None)
        elif self.form.csv_source != path:
            try:
                self.form.set_csv_header(csv_header(path))
            except OSError as exc:
                self.form.data_summary.setText(f"⚠ {path} could not be read: {exc}")
                return
        columns = self.form.columns()
        # Reads run in parallel; only the newest may fill the preview (an older, slower one arrives late).
        self._preview_generation = generation = self._preview_generation + 1
        run_in_background(
            lambda: load_dataset(path, columns=columns, strict=False),
            on_success=lambda dataset: self._show_dataset(dataset, generation),
            on_failure=lambda error: self._show_dataset_error(error, generation),
            owner=self,
        )

    def _show_dataset_error(self, error: Exception, generation: int) -> None:
        if generation == self._preview_generation:
            self.form.data_summary.setText(f"⚠ {error}")

    def _show_dataset(self, dataset: Dataset, generation: int) -> None:
        from core.finetune.datasets import preview

        if generation != self._preview_generation:
            return

        lines = [f"{len(dataset)} rows in {dataset.format} format"]
        if dataset.valid_examples:
            lines[0] += f", {len(dataset.valid_examples)} validation rows"
        if dataset.issues:
            bad = "; ".join(str(i) for i in dataset.issues[:5])
            lines.append(
                f"⚠ {len(dataset.issues)} rows have problems — fix them, or tick “Skip rows with problems”: {bad}"
            )
        lines += [f"{line}: {text}" for line, text in preview(dataset, 3, 90)]
        self.form.data_summary.setText("\n".join(lines))

    def update_estimate(self) -> None:
        model = self.form.model_path.text().strip()
        if not model:
            return
        try:
            config = self.form.config()
        except HangarError as exc:
            self.memory_label.setText(str(exc))
            return
        backend = self.form.backend_value()

        def plan() -> TrainingMemoryPlan:
            from core.finetune.memory import plan_training_memory

            return plan_training_memory(model, config, backend, self.app.hardware())

        run_in_background(
            plan, on_success=self._show_estimate, on_failure=lambda e: self.memory_label.setText(str(e)), owner=self
        )

    def _show_estimate(self, plan: TrainingMemoryPlan) -> None:
        text = ("✔ " if plan.fits else "⚠ ") + plan.summary()
        if not plan.fits and plan.advice:
            text += "\nTo fit, try: " + "; ".join(
                f"{a.change} (≈{_bytes(a.total_bytes)}{', fits' if a.fits else ''})" for a in plan.advice[:4]
            )
        self.memory_label.setText(text)

    # -- the list and the selected run -----------------------------------------------------------------------
    def reload(self, select: str | None = None) -> None:
        self.jobs_model.set_runs(self.app.finetune.runs())
        target = select or self.selected_job
        row = self.jobs_model.row_of(target) if target else (0 if self.jobs_model.rowCount() else None)
        if row is not None:
            self.jobs_view.selectionModel().setCurrentIndex(
                self.jobs_model.index(row, 0),
                QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
            )
            self._select_row(row)
        self._update_buttons()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh_library_models()

    def refresh_library_models(self) -> None:
        """The base-model picker lists My Models' fine-tunable models (full weights: MLX/safetensors folders)."""
        from core.models.types import ModelFormat

        try:
            entries = self.app.library.list(format=ModelFormat.MLX)
        except HangarError as exc:
            logger.warning("no library models for fine-tuning: %s", exc)
            entries = []
        self.form.set_library_models([(e.name, str(e.root)) for e in entries if e.available])

    def open_payload(self, payload: object) -> None:
        """``navigate_requested("finetune", library entry id)`` from My Models: that model becomes the base."""

        try:
            entry = self.app.library.get(str(payload))
        except HangarError as exc:
            self.message.setText(str(exc))
            return
        self.form.model_path.setText(str(entry.root))
        self._estimate_timer.start()

    def _select_row(self, row: int) -> None:
        if row < 0 or row >= self.jobs_model.rowCount():
            return
        run = self.app.finetune.run(self.jobs_model.run_at(row).job.id)
        self.selected_job = run.job.id
        self._show_run(run)
        self._update_buttons()

    def _show_run(self, run: FinetuneRun) -> None:
        self.chart.set_curves(
            [(p.step, p.loss) for p in run.train_curve], [(p.step, p.loss) for p in run.val_curve], run.total_steps
        )
        self.log.setPlainText("\n".join(self.app.finetune.log(run.job.id)))
        self._follow_log(True)
        adapter = f" Adapter: {run.adapter_path}" if run.adapter_path else ""
        self.stats.setText(run_status(str(run.job.state), run.job.error or run.job.message) + adapter)

    def append_log(self, line: str) -> None:
        """Add a line to the log, following new lines unless the person scrolled up to read."""
        bar = self.log.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        self.log.appendPlainText(line)
        self._follow_log(at_end)

    def _follow_log(self, follow: bool) -> None:
        if follow:
            self.log.verticalScrollBar().setValue(self.log.verticalScrollBar().maximum())

    def _update_buttons(self) -> None:
        job = self._selected()
        self.cancel_button.setEnabled(job is not None and job.state.active)
        done = job is not None and job.state == JobState.SUCCEEDED
        self.export_merged_button.setEnabled(done)
        self.export_gguf_button.setEnabled(done)
        self.resume_button.setEnabled(
            job is not None and job.resumable and job.state in (JobState.PAUSED, JobState.FAILED, JobState.CANCELLED)
        )

    def _selected(self) -> Job | None:
        if self.selected_job is None:
            return None
        row = self.jobs_model.row_of(self.selected_job)
        return self.jobs_model.run_at(row).job if row is not None else None

    # -- live updates ----------------------------------------------------------------------------------------
    def _on_job_changed(self, job: Job) -> None:
        if job.id in self._exports and job.state.finished:
            source = self._exports.pop(job.id)
            if source == self.selected_job:
                if job.state == JobState.SUCCEEDED and job.result:
                    self.append_log(f"Exported {job.result.get('format')} to {job.result.get('path')}.")
                else:
                    self.append_log(f"⚠ {job.title} failed: {job.error or job.state}")
            return
        if job.kind != "finetune":
            return
        if not self.jobs_model.update_job(job):
            self.reload()
            return
        if job.id == self.selected_job:
            self._update_buttons()
            if job.state.finished or job.state == JobState.PAUSED:
                self._show_run(self.app.finetune.run(job.id))

    def _on_training_event(self, job_id: str, event: TrainingEvent) -> None:
        if isinstance(event, TrainingProgress):
            self.jobs_model.set_last_loss(job_id, event.train_loss)
        if job_id != self.selected_job:
            return
        if isinstance(event, TrainingProgress):
            self.chart.add_train(event.step, event.train_loss)
            self.stats.setText(
                f"Step {event.step} · epoch {event.epoch:.2f} · loss {event.train_loss:.4f} · "
                f"lr {event.learning_rate:.2e} · {event.tokens_per_second:,.0f} tok/s · "
                f"peak {_bytes(event.peak_memory_bytes)} · ETA {event.eta_seconds or 0:.0f} s"
            )
        elif isinstance(event, ValidationReport):
            self.chart.add_val(event.step, event.val_loss)
        elif isinstance(event, TrainingStarted):
            self.chart.set_total_steps(event.total_steps)
        elif isinstance(event, (TrainingLog, TrainingFailed)):
            self.append_log(
                event.message if isinstance(event, TrainingLog) and event.level == "info" else f"⚠ {event.message}"
            )
