"""The library as a Qt table: a ``QAbstractTableModel`` over ``LibraryEntry`` values and a filter/sort proxy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QSortFilterProxyModel, Qt

from core.estimate.fitting import FitLevel, rough_fit_level
from core.hardware import Hardware
from core.models.types import LibraryEntry, ModelFormat
from ui.widgets.fit_badge import badge_color, badge_text
from ui.widgets.record_model import RecordTableModel

ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1
SORT_ROLE = Qt.ItemDataRole.UserRole + 2

COL_NAME, COL_FORMAT, COL_ARCH, COL_PARAMS, COL_QUANT, COL_CONTEXT, COL_SIZE, COL_ORIGIN, COL_FIT = range(9)
HEADERS = ("Name", "Format", "Architecture", "Params", "Quant", "Context", "Size", "Origin", "Fit")
_FIT_ORDER = {FitLevel.FITS: 0, FitLevel.PARTIAL: 1, FitLevel.TOO_LARGE: 2, FitLevel.UNKNOWN: 3}
FORMAT_LABELS = {
    ModelFormat.GGUF: "GGUF",
    ModelFormat.GGUF_SPLIT: "GGUF (split)",
    ModelFormat.MLX: "MLX",
    ModelFormat.LORA: "LoRA adapter",
}
SOURCE_LABELS = {
    "huggingface": "Hugging Face cache",
    "lmstudio": "LM Studio",
    "ollama": "Ollama",
    "gpt4all": "GPT4All",
    "folder": "scan folder",
}

Index = QModelIndex | QPersistentModelIndex


def human_size(n: int) -> str:
    """A model's size in the window's one unit system (GiB/MiB, as memory estimates are written)."""
    from ui.units import format_bytes

    return format_bytes(n)


def human_params(n: int | None) -> str:
    if not n:
        return "—"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.1f}{suffix}".replace(".0", "")
    return str(n)


def origin_label(entry: LibraryEntry) -> str:
    if entry.source and entry.origin.value == "found":
        return f"Found in {SOURCE_LABELS.get(entry.source, entry.source)}"
    return {"downloaded": "Downloaded", "imported": "Imported copy", "linked": "Linked in place"}.get(
        entry.origin.value, entry.origin.value
    )


def short_origin(entry: LibraryEntry) -> str:
    """The table's origin column: the other app's name for found models, one word otherwise."""
    if entry.source and entry.origin.value == "found":
        return SOURCE_LABELS.get(entry.source, entry.source).replace(" cache", "").replace("scan folder", "Folder")
    return {"downloaded": "Downloaded", "imported": "Imported", "linked": "Linked"}.get(
        entry.origin.value, entry.origin.value
    )


class LibraryTableModel(RecordTableModel):
    HEADERS = HEADERS

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._entries: list[LibraryEntry] = []
        self._hardware: Hardware | None = None

    def set_hardware(self, hardware: Hardware | None) -> None:
        """The machine the fit column judges against (detected in the background, so it arrives late)."""
        self._hardware = hardware
        if self._entries:
            self.dataChanged.emit(self.index(0, COL_FIT), self.index(len(self._entries) - 1, COL_FIT))

    @property
    def hardware(self) -> Hardware | None:
        return self._hardware

    def fit_level(self, entry: LibraryEntry) -> FitLevel:
        # A quick verdict from the size on disk; the details pane reads the header for the real estimate.
        if entry.engine is None:
            return FitLevel.UNKNOWN
        return rough_fit_level(entry.size_bytes, self._hardware)

    def set_entries(self, entries: Sequence[LibraryEntry]) -> None:
        """Show ``entries``: rows of entries that are gone are removed, changed ones updated in place and new ones
        appended, so a selection, the scroll position and the sort survive a library change (no model reset)."""
        wanted = {e.id: e for e in entries}
        if not self._entries or not wanted:
            self.beginResetModel()  # the first fill, or everything went: a reset is the honest signal
            self._entries = list(entries)
            self.endResetModel()
            return
        # Remove from the bottom up, one contiguous run of rows at a time.
        gone = [row for row, e in enumerate(self._entries) if e.id not in wanted]
        while gone:
            last = gone.pop()
            first = last
            while gone and gone[-1] == first - 1:
                first = gone.pop()
            self.beginRemoveRows(QModelIndex(), first, last)
            del self._entries[first : last + 1]
            self.endRemoveRows()
        last_column = len(self.HEADERS) - 1
        for row, old in enumerate(self._entries):
            new = wanted[old.id]
            if new != old:
                self._entries[row] = new
                self.dataChanged.emit(self.index(row, 0), self.index(row, last_column))
        present = {e.id for e in self._entries}
        added = [e for e in entries if e.id not in present]
        if added:
            start = len(self._entries)
            self.beginInsertRows(QModelIndex(), start, start + len(added) - 1)
            self._entries.extend(added)
            self.endInsertRows()

    def entry(self, row: int) -> LibraryEntry:
        return self._entries[row]

    def row_of(self, entry_id: str) -> int | None:
        for row, e in enumerate(self._entries):
            if e.id == entry_id:
                return row
        return None

    def records(self) -> Sequence[Any]:
        return self._entries

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        entry = self._entries[index.row()]
        column = index.column()
        if role == ENTRY_ROLE:
            return entry
        if column == COL_FIT:
            level = self.fit_level(entry)
            if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
                return "—" if entry.engine is None else badge_text(level)
            if role == Qt.ItemDataRole.ForegroundRole:
                return badge_color(level)
            if role == SORT_ROLE:
                return _FIT_ORDER[level]
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(entry, column)
        if role == SORT_ROLE:
            return self._sort_key(entry, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            where = str(entry.root) if entry.available else f"Missing: {entry.root}"
            use = (
                "\nAn embedding model: it searches your documents by meaning; it does not chat"
                if entry.is_embedding
                else ""
            )
            return f"{entry.name}\n{origin_label(entry)}\n{where}{use}"
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (COL_PARAMS, COL_CONTEXT, COL_SIZE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _display(entry: LibraryEntry, column: int) -> str:
        meta = entry.metadata
        if column == COL_NAME:
            return entry.name
        if column == COL_FORMAT:  # an embedding model is told apart at a glance: it does not chat
            return "Embedding" if entry.is_embedding else FORMAT_LABELS[entry.format]
        if column == COL_ARCH:
            return meta.architecture or "—"
        if column == COL_PARAMS:
            return human_params(meta.parameter_count)
        if column == COL_QUANT:
            return meta.quant or "—"
        if column == COL_CONTEXT:
            return f"{meta.context_length:,}" if meta.context_length else "—"
        if column == COL_SIZE:
            return human_size(entry.size_bytes)
        return short_origin(entry)

    @staticmethod
    def _sort_key(entry: LibraryEntry, column: int) -> Any:
        meta = entry.metadata
        if column == COL_PARAMS:
            return meta.parameter_count or 0
        if column == COL_CONTEXT:
            return meta.context_length or 0
        if column == COL_SIZE:
            return entry.size_bytes
        return LibraryTableModel._display(entry, column).lower()


class LibraryFilterProxy(QSortFilterProxyModel):
    """Filters on free text (name, architecture, quant, origin) and on one format; sorts numbers as numbers."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._format: ModelFormat | None = None
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    def set_text(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "_text", text.strip().lower()))

    def set_format(self, fmt: ModelFormat | None) -> None:
        self._refilter(lambda: setattr(self, "_format", fmt))

    def _refilter(self, change: Callable[[], None]) -> None:
        # Qt 6.9 replaced invalidateFilter() with a begin/end pair around the change; keep older Qt working.
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        entry = model.data(model.index(source_row, 0, source_parent), ENTRY_ROLE)
        if entry is None:
            return False
        if self._format is not None and entry.format != self._format:
            return False
        if not self._text:
            return True
        meta = entry.metadata
        haystack = " ".join(
            str(v).lower()
            for v in (
                entry.name,
                meta.architecture,
                meta.quant,
                entry.repo_id,
                origin_label(entry),
                entry.format.value,
                *entry.capabilities,
            )
            if v
        )
        return all(word in haystack for word in self._text.split())
