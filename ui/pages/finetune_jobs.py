"""The fine-tune job list: a table model over ``FinetuneRun`` values (newest first)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt

from core.finetune.service import FinetuneRun
from core.jobs import Job
from ui.widgets.record_model import RecordTableModel

Index = QModelIndex | QPersistentModelIndex


class FinetuneJobsModel(RecordTableModel):
    COL_NAME, COL_BACKEND, COL_STATE, COL_PROGRESS, COL_LOSS = range(5)
    HEADERS = ("Run", "Backend", "State", "Progress", "Last loss")
    RunRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._runs: list[FinetuneRun] = []
        self._last_loss: dict[str, float] = {}

    def set_runs(self, runs: list[FinetuneRun]) -> None:
        self.beginResetModel()
        self._runs = list(runs)
        self._last_loss = {r.job.id: r.train_curve[-1].loss for r in runs if r.train_curve}
        self.endResetModel()

    def run_at(self, row: int) -> FinetuneRun:
        return self._runs[row]

    def row_of(self, job_id: str) -> int | None:
        for row, run in enumerate(self._runs):
            if run.job.id == job_id:
                return row
        return None

    def update_job(self, job: Job) -> bool:
        """Refresh one row from a job change; False when the job is not listed (the caller reloads)."""
        row = self.row_of(job.id)
        if row is None:
            return False
        from dataclasses import replace

        self._runs[row] = replace(self._runs[row], job=job)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.HEADERS) - 1))
        return True

    def set_last_loss(self, job_id: str, loss: float) -> None:
        self._last_loss[job_id] = loss
        row = self.row_of(job_id)
        if row is not None:
            self.dataChanged.emit(self.index(row, self.COL_LOSS), self.index(row, self.COL_LOSS))

    # -- Qt -------------------------------------------------------------------------------------------------
    def records(self) -> Sequence[Any]:
        return self._runs

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._runs):
            return None
        run = self._runs[index.row()]
        if role == self.RunRole:
            return run
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.COL_NAME:
                return run.job.title.removeprefix("Fine-tune ")
            if column == self.COL_BACKEND:
                return {"mlx": "MLX", "peft": "PEFT"}.get(run.backend, run.backend)
            if column == self.COL_STATE:
                return str(run.job.state).capitalize()
            if column == self.COL_PROGRESS:
                return f"{(run.job.progress or 0.0) * 100:.0f}%"
            if column == self.COL_LOSS:
                loss = self._last_loss.get(run.job.id)
                return f"{loss:.3f}" if loss is not None else "–"
        if role == Qt.ItemDataRole.ToolTipRole:
            return run.job.error or run.job.message or run.base_model
        return None
