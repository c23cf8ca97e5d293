"""Qt table models of the Discover page: search results (appended page by page) and one repo's file rows with
their fit badges."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QFont

from core.hub.files import FileGroup, GroupKind
from ui.theme import current_colors
from ui.units import format_bytes
from ui.widgets.fit_badge import badge_color, badge_text, badge_tooltip
from ui.widgets.record_model import RecordTableModel

if TYPE_CHECKING:
    from core.estimate.training import TrainingEstimate
    from core.hardware import Hardware
    from core.hub.client import ModelSummary
    from core.hub.fit import QuantFit

#: core.hub.fit's ESTIMATED_KINDS (that module loads the GGUF reader, imported when a fit arrives)
ESTIMATED_KINDS = (GroupKind.QUANT, GroupKind.MLX, GroupKind.SAFETENSORS)
#: The quant offered before (or without) an estimate: a common middle ground, never the smallest (Q2_K).
PREFERRED_QUANTS = ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q4_0", "Q5_0", "Q6_K", "Q8_0")


def preferred_group(groups: Sequence[FileGroup]) -> FileGroup | None:
    """The file to select first: a preferred quant if the repo has one, else the middle of its model files."""
    models = [g for g in groups if g.kind in ESTIMATED_KINDS]
    for quant in PREFERRED_QUANTS:
        found = next((g for g in models if (g.quant or "").upper() == quant), None)
        if found is not None:
            return found
    return models[len(models) // 2] if models else None


Index = QModelIndex | QPersistentModelIndex
ITEM_ROLE = Qt.ItemDataRole.UserRole + 1


def human_size(count: int | None) -> str:
    return "?" if count is None else format_bytes(count)


def human_params(count: int | None) -> str:
    """Written as My Models writes it ("8B", "3.3B", "147.5K"), blank when the Hub does not say."""
    from ui.widgets.library_table import human_params as library_params

    return library_params(count) if count else ""


def human_count(count: int) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)


def _shown_tags(summary: ModelSummary) -> list[str]:
    return [t for t in summary.tags if not t.startswith(("license:", "region:", "base_model:"))][:5]


class ResultsModel(RecordTableModel):
    COL_NAME, COL_DOWNLOADS, COL_LIKES, COL_UPDATED, COL_PARAMS, COL_TAGS = range(6)
    # The Hub's own symbols for downloads and likes keep those columns narrow; the header tooltip names them.
    HEADERS = ("Model", "⬇", "♥", "Updated", "Params", "Tags")
    HEADER_TIPS = ("Repository", "Downloads in the last month", "Likes", "Last updated", "Parameters", "Tags")

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[ModelSummary] = []

    def records(self) -> Sequence[Any]:
        return self.rows

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        r = self.rows[index.row()]
        column = index.column()
        if role == ITEM_ROLE:
            return r
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.COL_NAME:
                return f"{r.repo_id} (gated)" if r.gated else r.repo_id
            if column == self.COL_DOWNLOADS:
                return human_count(r.downloads)
            if column == self.COL_LIKES:
                return human_count(r.likes)
            if column == self.COL_UPDATED:
                return r.updated.strftime("%Y-%m-%d") if r.updated else ""
            if column == self.COL_PARAMS:
                return human_params(r.parameters)
            if column == self.COL_TAGS:
                return ", ".join(_shown_tags(r))
        if role == Qt.ItemDataRole.ToolTipRole:
            gated = f"\nGated ({r.gated}): accept the licence on the Hub first." if r.gated else ""
            licence = f"\nLicence: {r.licence}" if r.licence else ""
            tags = f"\nTags: {', '.join(_shown_tags(r))}" if _shown_tags(r) else ""
            updated = f" · updated {r.updated:%Y-%m-%d}" if r.updated else ""
            return (
                f"{r.repo_id} by {r.author}\n{r.downloads:,} downloads · {r.likes:,} likes{updated}{licence}{tags}"
                f"{gated}"
            )
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (
            self.COL_DOWNLOADS,
            self.COL_LIKES,
            self.COL_PARAMS,
        ):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def reset(self, rows: list[ModelSummary]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def append(self, rows: list[ModelSummary]) -> None:
        known = {r.repo_id for r in self.rows}
        fresh = [r for r in rows if r.repo_id not in known]
        if not fresh:
            return
        self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows) + len(fresh) - 1)
        self.rows.extend(fresh)
        self.endInsertRows()


FIT_PENDING = "estimating…"
FIT_UNKNOWN = "fit unknown"


class FilesModel(RecordTableModel):
    """One row per quant / split set / MLX model / companion / other file; the fit column fills in as the
    remote headers are read."""

    COL_NAME, COL_QUANT, COL_SIZE, COL_KIND, COL_FIT = range(5)
    HEADERS = ("File", "Quant", "Size", "Notes", "Fit here")

    def __init__(self) -> None:
        super().__init__()
        self.groups: list[FileGroup] = []
        self.fits: dict[str, QuantFit] = {}
        self.best: str | None = None
        self.fit_available = True
        #: The machine, for a size-based verdict where a file's header gives no estimate (set by the page).
        self.hardware: Hardware | None = None

    def records(self) -> Sequence[Any]:
        return self.groups

    def fit_text(self, group: FileGroup) -> str:
        if group.kind not in ESTIMATED_KINDS:
            return ""
        fit = self.fits.get(group.key)
        if fit is None:
            return FIT_PENDING if self.fit_available else self.rough_fit_text(group)
        if fit.training is not None:
            text = f"{badge_text(fit.level)} (tune) · {human_size(fit.training.total_bytes)}"
            return f"★ {text}" if group.key == self.best else text
        if fit.estimate is None:
            return self.rough_fit_text(group)
        from core.estimate.llama import Estimate, Verdict

        where = ""
        if isinstance(fit.estimate, Estimate) and fit.estimate.verdict == Verdict.CPU_ONLY:
            where = " (CPU)"
        text = f"{badge_text(fit.level)}{where} · {human_size(fit.estimate.total_bytes)}"
        return f"★ {text}" if group.key == self.best else text

    def rough_fit_text(self, group: FileGroup) -> str:
        """No estimate from the header (no shape data): a verdict from the file size, marked as such."""
        if self.hardware is None or not group.size:
            return FIT_UNKNOWN
        from core.estimate.fitting import rough_fit_level

        return f"≈ {badge_text(rough_fit_level(group.size, self.hardware))} · {human_size(group.size)} (by size)"

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.groups):
            return None
        group = self.groups[index.row()]
        column = index.column()
        if role == ITEM_ROLE:
            return group
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.COL_NAME:
                return group.label
            if column == self.COL_QUANT:
                return group.quant or {GroupKind.MLX: "MLX", GroupKind.SAFETENSORS: "full"}.get(group.kind, "")
            if column == self.COL_SIZE:
                return human_size(group.size)
            if column == self.COL_KIND:
                kind = {GroupKind.COMPANION: "companion", GroupKind.REFUSED: "refused", GroupKind.OTHER: "other"}
                prefix = kind.get(group.kind, "")
                return " · ".join(p for p in (prefix, group.note) if p)
            if column == self.COL_FIT:
                return self.fit_text(group)
        if role == Qt.ItemDataRole.ToolTipRole:
            fit = self.fits.get(group.key)
            if column == self.COL_FIT and fit is not None:
                if fit.training is not None:
                    return training_tooltip(fit.training)
                if fit.estimate is None:
                    return f"Fit unknown: {fit.error}"
                best = "\nThe best choice for this machine." if group.key == self.best else ""
                return badge_tooltip(fit.estimate) + best
            # Quant and size are here too: a narrow pane hides their columns (ui/widgets/responsive.py).
            quant = f"{group.quant} · " if group.quant else ""
            return "\n".join(f.path for f in group.files) + f"\n{quant}{human_size(group.size)}"
        if role == Qt.ItemDataRole.FontRole and group.key == self.best:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ForegroundRole:
            colors = current_colors()
            if group.kind == GroupKind.REFUSED:
                return QColor(colors.bad)
            if column == self.COL_FIT:
                fit = self.fits.get(group.key)
                return badge_color(fit.level) if fit is not None else QColor(colors.muted)
            if group.kind in (GroupKind.OTHER, GroupKind.COMPANION):
                return QColor(colors.muted)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == self.COL_SIZE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def reset(self, groups: list[FileGroup]) -> None:
        self.beginResetModel()
        self.groups = list(groups)
        self.fits = {}
        self.best = None
        self.endResetModel()

    def set_fit(self, fit: QuantFit) -> None:
        self.fits[fit.key] = fit
        self._changed_row(fit.key)

    def set_best(self, key: str | None) -> None:
        previous, self.best = self.best, key
        for changed in (previous, key):
            if changed is not None:
                self._changed_row(changed)

    def _changed_row(self, key: str) -> None:
        for row, group in enumerate(self.groups):
            if group.key == key:
                self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))


def training_tooltip(estimate: TrainingEstimate) -> str:
    """The fine-tuning verdict in words: what the memory figure is for, and against what."""
    need = human_size(estimate.total_bytes)
    run = "a LoRA fine-tune (rank 8, 2,048 tokens, batch 1)"
    if estimate.budget is None:
        return f"Downloads the full weights for fine-tuning; {run} needs about {need}."
    have = human_size(estimate.budget)
    verdict = "fits" if estimate.fits else "does not fit"
    return (
        f"Downloads the full weights for fine-tuning; {run} needs about {need} of the {have} available: it "
        f"{verdict} here (the Fine-tune page suggests smaller settings)."
    )
