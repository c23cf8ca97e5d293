"""My Models: the library as a sortable, filterable table with a details pane and actions (Chat, Fine-tune,
Reveal, Delete); imports from drag and drop anywhere on the window or the Import button, run as background jobs.

The page registers itself with the main window as the drop handler and shows the drop indicator over the whole
window while files are dragged over it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QItemSelection, QObject, QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from core.jobs import Job, JobState
from core.models.types import ImportPreview, LibraryEntry, ModelFormat
from ui.operations import run_in_background
from ui.widgets.common import EmptyState, Page, size_columns
from ui.widgets.delete_dialog import DeleteDialog
from ui.widgets.drop_overlay import DropOverlay
from ui.widgets.estimate_panel import EstimatePanel
from ui.widgets.import_dialog import ImportDialog
from ui.widgets.library_table import (
    COL_ARCH,
    COL_CONTEXT,
    COL_FIT,
    COL_FORMAT,
    COL_NAME,
    COL_ORIGIN,
    COL_PARAMS,
    COL_QUANT,
    COL_SIZE,
    ENTRY_ROLE,
    FORMAT_LABELS,
    LibraryFilterProxy,
    LibraryTableModel,
)
from ui.widgets.model_details import ModelDetails
from ui.widgets.responsive import ColumnsThatFit

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge

logger = logging.getLogger(__name__)


class ModelsPage(Page):
    #: The user asked to chat with / fine-tune a library entry (its id). The shell also gets
    #: ``bridge.navigate_requested("chat" | "finetune", entry_id)``.
    chat_requested = Signal(str)
    finetune_requested = Signal(str)
    #: An import job ended (the ``Job``), a rescan ended (the ``ScanReport``).
    import_finished = Signal(object)
    scan_finished = Signal(object)
    #: The import dialog was opened (tests and screenshots drive it).
    import_dialog_opened = Signal(object)
    #: The estimate panel shows the model with this id.
    estimate_ready = Signal(str)

    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__("My Models", "Everything on this machine that Hangar can run or fine-tune.", parent)
        self.app = app
        self.bridge = bridge
        self.library = app.library
        self.import_dialog: ImportDialog | None = None
        self.delete_dialog: DeleteDialog | None = None
        self.overlay: DropOverlay | None = None
        self._import_job: str | None = None
        self._window: QWidget | None = None

        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter models…")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Filter models")
        self.search.setToolTip("Show only models whose name, architecture, quant or origin contains this (Ctrl+K)")
        self.format_filter = QComboBox()
        self.format_filter.addItem("All formats", None)
        for fmt, label in FORMAT_LABELS.items():
            self.format_filter.addItem(label, fmt.value)
        self.format_filter.setAccessibleName("Format filter")
        self.format_filter.setToolTip("Show only one kind of model: GGUF files, MLX folders or LoRA adapters")
        self.rescan_button = QPushButton("Rescan")
        self.rescan_button.setToolTip(
            "Look again in the Hugging Face cache, LM Studio, Ollama, GPT4All and your folders (F5)"
        )
        self.folder_button = QPushButton("Add folder…")
        self.folder_button.setToolTip("Always look for models in a folder of yours (nothing is copied)")
        self.import_button = QPushButton("Import…")
        self.import_button.setObjectName("Primary")
        self.import_button.setToolTip(
            "Add .gguf files or model folders from this computer (or drop them on the window)"
        )
        # Page actions in the header; the filters sit over the table they filter, as on Discover.
        for widget in (self.rescan_button, self.folder_button, self.import_button):
            self.header.actions.addWidget(widget)
        filters = QHBoxLayout()
        filters.addWidget(self.search, 1)
        filters.addWidget(self.format_filter)

        self.model = LibraryTableModel(self)
        self.proxy = LibraryFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setObjectName("LibraryTable")
        self.table.setAccessibleName("Models")
        self.table.setToolTip("Your models; select one to see its details and whether it fits in memory")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COL_NAME, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        # Architecture, context length and origin are in the details pane (and the row's tooltip; the filter
        # matches them too); the table keeps what people compare at a glance.
        for column in (COL_ARCH, COL_CONTEXT, COL_ORIGIN):
            self.table.setColumnHidden(column, True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)  # names cut at the end; tooltips hold them whole
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        size_columns(
            self.table,
            {COL_FORMAT: 76, COL_PARAMS: 60, COL_QUANT: 70, COL_SIZE: 74, COL_ORIGIN: 90, COL_FIT: 60},
        )
        # Narrow (a small window): parameters, format and quant give way (the details pane has them) before names.
        self.table_columns = ColumnsThatFit(self.table, COL_NAME, 150, [COL_PARAMS, COL_FORMAT, COL_QUANT])

        self.details = ModelDetails()
        self.details.source_requested.connect(self.select)  # "Made from X": X's link selects X
        #: The fit feature's estimate (memory needed, will it fit) for the selected model.
        self.estimate = EstimatePanel()
        self.estimate.setVisible(False)  # until a model with an engine is selected
        self._estimated: str | None = None
        self.chat_button = QPushButton("Chat")
        self.chat_button.setObjectName("Primary")
        self.chat_button.setToolTip("Load the selected model and chat with it")
        self.finetune_button = QPushButton("Fine-tune")
        self.reveal_button = QPushButton("Reveal in file manager")
        self.reveal_button.setToolTip("Open the folder that holds the selected model's files")
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setObjectName("Danger")
        self.delete_button.setToolTip(
            "Remove the selected model from the library, deleting its files if Hangar owns them"
        )
        actions = QHBoxLayout()
        for button in (self.chat_button, self.finetune_button):
            actions.addWidget(button)
        actions.addStretch(1)
        more = QHBoxLayout()
        more.addWidget(self.reveal_button)
        more.addStretch(1)
        more.addWidget(self.delete_button)
        info = QWidget()
        info_layout = QVBoxLayout(info)
        info_layout.setContentsMargins(0, 0, 8, 0)
        info_layout.addWidget(self.details)
        info_layout.addWidget(self.estimate)
        info_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(info)
        side = QWidget()
        side.setMinimumWidth(340)
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(12, 0, 0, 0)
        side_layout.addWidget(scroll, 1)
        side_layout.addLayout(actions)
        side_layout.addLayout(more)
        splitter = QSplitter()
        library = QWidget()
        library_layout = QVBoxLayout(library)
        library_layout.setContentsMargins(0, 0, 0, 0)
        library_layout.addLayout(filters)
        library_layout.addWidget(self.table, 1)
        splitter.addWidget(library)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([560, 400])  # model names are long: the table gets the larger share

        self.empty = EmptyState(
            "models",
            "No models yet",
            "Download one from Discover, or drop .gguf files and MLX folders anywhere on this window to import them.",
            "Import…",
        )
        self.content = QStackedWidget()
        self.content.addWidget(self.empty)
        self.content.addWidget(splitter)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel import")
        self.cancel_button.setToolTip("Stop the import; a model cut off half-way leaves no files behind")
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_label)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        self.progress_box = QWidget()
        self.progress_box.setLayout(progress_row)
        self.progress_box.hide()
        self.message = QLabel()
        self.message.setObjectName("PageSubtitle")
        self.message.setWordWrap(True)

        self.body.addWidget(self.content, 1)
        self.body.addWidget(self.progress_box)
        self.body.addWidget(self.message)

        self.search.textChanged.connect(self.proxy.set_text)
        self.format_filter.currentIndexChanged.connect(self._on_format_filter)
        self.rescan_button.clicked.connect(self.rescan)
        self.folder_button.clicked.connect(self.choose_scan_folder)
        self.import_button.clicked.connect(self.choose_files)
        if self.empty.action is not None:
            self.empty.action.setToolTip(self.import_button.toolTip())
            self.empty.action.clicked.connect(self.choose_files)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.chat_button.clicked.connect(self._chat)
        self.finetune_button.clicked.connect(self._finetune)
        self.reveal_button.clicked.connect(self._reveal)
        self.delete_button.clicked.connect(self.confirm_delete)
        self.cancel_button.clicked.connect(self.cancel_import)
        bridge.connect_hook(self.library.changed, self.refresh)
        bridge.connect_hook(app.jobs.changed, self._on_job_changed)

        # Whoever starts a download (Discover, `hangar pull`), it enters the library when it finishes (wired
        # once, in core.app); what finished while no Hangar was running is indexed here, off the GUI thread.
        self._downloads = app.downloads
        run_in_background(app.index_finished_downloads, owner=self)

        self.refresh()
        # The window does not exist yet while pages are built; attach once the event loop runs.
        QTimer.singleShot(0, self.attach_to_window)
        QTimer.singleShot(0, self.rescan)
        QTimer.singleShot(0, self._detect_hardware)

    def shutdown(self) -> None:
        """The window is closing; the app closes its services (and stops indexing downloads) itself."""

    # -- the window-wide drop target ------------------------------------------------------------------------
    def attach_to_window(self) -> bool:
        """Register as the window's drop handler and put the drop indicator over it. Idempotent."""
        window = self.window()
        if self._window is window or window is self or not hasattr(window, "set_drop_handler"):
            return self._window is not None
        window.set_drop_handler(self.accepts_drop, self.handle_drop)
        self.overlay = DropOverlay(window)
        window.installEventFilter(self)
        self._window = window
        return True

    @property
    def attached(self) -> bool:
        return self._window is not None

    def accepts_drop(self, paths: list[Path]) -> bool:
        # Anything local is accepted: the import dialog explains what is not a model, which beats a silent
        # "no entry" cursor.
        return bool(paths)

    def handle_drop(self, paths: list[Path]) -> None:
        self.bridge.navigate_requested.emit("models", None)
        self.start_import(paths)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._window and self.overlay is not None:
            kind = event.type()
            if kind == QEvent.Type.DragEnter and isinstance(event, QDragEnterEvent):
                urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
                paths = [Path(u.toLocalFile()) for u in urls if u.isLocalFile()]
                if paths and self.accepts_drop(paths):
                    self.overlay.show_for(len(paths), [p.name for p in paths])
            elif kind in (QEvent.Type.DragLeave, QEvent.Type.Drop) or isinstance(event, QDropEvent):
                self.overlay.hide()
        return False

    def open_payload(self, payload: Any) -> None:
        """``window.show_page("models", [paths])`` imports them (the OS "open with" path)."""
        if isinstance(payload, (list, tuple)) and payload and all(isinstance(p, (str, Path)) for p in payload):
            self.start_import([Path(p) for p in payload])
        elif isinstance(payload, str):
            self.select(payload)

    # -- import ---------------------------------------------------------------------------------------------
    def last_folder(self) -> str:
        """Where the file dialogs open: the folder models were last imported from (home the first time)."""
        state = QSettings(str(self.app.paths.window_state_file), QSettings.Format.IniFormat)
        folder = str(state.value("import/last_folder", "") or "")
        return folder if folder and Path(folder).is_dir() else str(Path.home())

    def remember_folder(self, folder: Path) -> None:
        state = QSettings(str(self.app.paths.window_state_file), QSettings.Format.IniFormat)
        state.setValue("import/last_folder", str(folder))
        state.sync()

    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Import models", self.last_folder(), "GGUF models (*.gguf);;All files (*)"
        )
        if files:
            self.remember_folder(Path(files[0]).parent)
            self.start_import([Path(f) for f in files])

    def start_import(self, paths: list[Path]) -> None:
        """Recognise and validate ``paths`` off the GUI thread, then show the import dialog."""
        if paths:  # dropped or chosen: the next file dialog opens where they came from
            self.remember_folder(paths[0].parent)
        self.message.setText(f"Checking {len(paths)} item{'s' if len(paths) != 1 else ''}…")
        run_in_background(
            lambda: self.library.preview_import(paths),
            on_success=self._show_import_dialog,
            on_failure=lambda error: self.message.setText(str(error)),
            owner=self,
        )

    def _show_import_dialog(self, preview: ImportPreview) -> None:
        self.message.setText("")
        dialog = ImportDialog(preview, self)
        self.import_dialog = dialog
        dialog.accepted.connect(lambda: self._run_import(dialog))
        dialog.open()
        self.import_dialog_opened.emit(dialog)

    def _run_import(self, dialog: ImportDialog) -> None:
        paths = dialog.paths_to_import()
        if not paths:
            return
        self._import_job = self.library.submit_import(self.app.jobs, paths, dialog.mode())
        self.progress.setValue(0)
        self.progress_label.setText("Importing…")
        self.progress_box.show()

    def cancel_import(self) -> None:
        if self._import_job is not None:
            self.app.jobs.cancel(self._import_job)

    def _on_job_changed(self, job: Job) -> None:
        if job.id != self._import_job:
            return
        if job.progress is not None:
            self.progress.setValue(int(job.progress * 1000))
        if job.message:
            self.progress_label.setText(job.message)
        if not job.state.finished:
            return
        self._import_job = None
        self.progress_box.hide()
        if job.state == JobState.SUCCEEDED and job.result is not None:
            self.message.setText(_summary(job.result))
            imported = job.result.get("imported") or []
            if imported:
                self.select(imported[0]["id"])
        elif job.state == JobState.CANCELLED:
            self.message.setText("Import cancelled; nothing was left behind.")
        else:
            self.message.setText(job.error or "The import failed.")
        self.import_finished.emit(job)

    # -- keyboard (the window's Ctrl+K / Ctrl+F and F5) ---------------------------------------------------------
    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def refresh_page(self) -> None:
        if self.rescan_button.isEnabled():  # a scan already running is not started twice
            self.rescan()

    # -- scanning -------------------------------------------------------------------------------------------
    def choose_scan_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Look for models in", self.last_folder())
        if folder:
            self.remember_folder(Path(folder))
        if folder:
            self.add_scan_folder(Path(folder))

    def add_scan_folder(self, folder: Path) -> None:
        """Remember ``folder`` in the settings' scan folders and scan it now (its models are linked, not copied)."""
        current = tuple(self.app.settings.current.scan_folders)
        if str(folder) not in current:
            self.app.settings.update(scan_folders=(*current, str(folder)))
        self.rescan()

    def rescan(self) -> None:
        self.rescan_button.setEnabled(False)

        def done(report: Any) -> None:
            if not isValid(self):  # the window closed while the scan ran
                return
            self.rescan_button.setEnabled(True)
            if report.problems:
                self.message.setText(
                    f"{len(report.problems)} file{'s' if len(report.problems) != 1 else ''} in other apps' folders "
                    f"could not be used: {report.problems[0].message}"
                )
            self.scan_finished.emit(report)

        def failed(error: Exception) -> None:
            if not isValid(self):
                return
            self.rescan_button.setEnabled(True)
            self.message.setText(f"Scanning other apps' folders failed: {error}")

        run_in_background(self.library.rescan, on_success=done, on_failure=failed, owner=self)

    # -- table and details ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        selected = self.selected_entry()
        self.model.set_entries(self.library.list())
        self.content.setCurrentIndex(1 if self.model.rowCount() else 0)
        if selected is None or not self.select(selected.id):
            self.table.clearSelection()
            self._show_details(None)  # the selected model is gone: no details, no live buttons for it

    def select(self, entry_id: str) -> bool:
        row = self.model.row_of(entry_id)
        if row is None:  # just added (a download that finished a moment ago): the change may still be queued
            self.model.set_entries(self.library.list())
            self.content.setCurrentIndex(1 if self.model.rowCount() else 0)
            row = self.model.row_of(entry_id)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            return False
        self.table.selectRow(index.row())
        self._show_details(self.model.entry(row))
        return True

    def selected_entry(self) -> LibraryEntry | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return rows[0].data(ENTRY_ROLE) if rows else None

    def _on_selection(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self._show_details(self.selected_entry())

    def _on_format_filter(self) -> None:
        value = self.format_filter.currentData()
        self.proxy.set_format(ModelFormat(value) if value else None)

    def _show_details(self, entry: LibraryEntry | None) -> None:
        base = None
        if entry is not None and entry.base_model_id:
            row = self.model.row_of(entry.base_model_id)
            base = self.model.entry(row).name if row is not None else None
        made = self.app.workshop.lineage([entry.root, *entry.files]) if entry is not None else None
        source = self.library.find_by_path(Path(made.source_path)) if made is not None else None
        self.details.set_entry(entry, base, made, source.id if source is not None else None)
        has = entry is not None
        self.chat_button.setEnabled(has and entry.available and not entry.is_embedding)  # embedding: documents only
        can_tune = has and entry.format == ModelFormat.MLX and entry.available
        self.finetune_button.setEnabled(can_tune)
        self.finetune_button.setToolTip(
            "Train a LoRA adapter on top of the selected model"
            if can_tune
            else "Fine-tuning needs the model's full weights (an MLX or safetensors folder)."
        )
        self.reveal_button.setEnabled(has and entry.root.exists())
        self.delete_button.setEnabled(has)
        self._update_estimate(entry)

    # -- the fit estimate -----------------------------------------------------------------------------------
    def _detect_hardware(self) -> None:
        run_in_background(
            lambda: self.app.hardware(),
            on_success=self._hardware_detected,
            on_failure=lambda error: logger.warning("hardware detection failed: %s", error),
            owner=self,
        )

    def _hardware_detected(self, hardware: Any) -> None:
        if isValid(self):
            self.model.set_hardware(hardware)
            self.estimate.set_hardware(hardware)

    def _update_estimate(self, entry: LibraryEntry | None) -> None:
        """Read the selected model's header (off the GUI thread) for the estimate panel."""
        wanted = entry.id if entry is not None and entry.engine is not None and entry.available else None
        if wanted == self._estimated:
            return
        self._estimated = wanted
        self.estimate.set_model(None)
        self.estimate.setVisible(wanted is not None)
        if entry is None or wanted is None:
            return
        from core.estimate.fitting import read_target

        def show(header: Any) -> None:
            if isValid(self) and self._estimated == wanted:
                self.estimate.set_model(header)
                self.estimate_ready.emit(wanted)

        run_in_background(
            lambda: read_target(str(entry.load_path)),
            on_success=show,
            on_failure=lambda error: logger.info("no estimate for %s: %s", entry.name, error),
            owner=self,
        )

    # -- actions --------------------------------------------------------------------------------------------
    def _chat(self) -> None:
        entry = self.selected_entry()
        if entry is not None:
            self.chat_requested.emit(entry.id)
            self.bridge.navigate_requested.emit("chat", entry.id)

    def _finetune(self) -> None:
        entry = self.selected_entry()
        if entry is not None:
            self.finetune_requested.emit(entry.id)
            self.bridge.navigate_requested.emit("finetune", entry.id)

    def reveal_target(self) -> Path | None:
        entry = self.selected_entry()
        if entry is None:
            return None
        return entry.root if entry.root.is_dir() else entry.root.parent

    def _reveal(self) -> None:
        target = self.reveal_target()
        if target is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(target)))

    def confirm_delete(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            return
        dialog = DeleteDialog(entry, self.library.space_freed_by_delete(entry.id), self)
        self.delete_dialog = dialog
        dialog.accepted.connect(lambda: self._delete(entry, dialog.delete_files()))
        dialog.open()

    def _delete(self, entry: LibraryEntry, delete_files: bool | None) -> None:
        def done(result: Any) -> None:
            if result.files_deleted:
                from ui.widgets.library_table import human_size

                self.message.setText(f"Deleted {entry.name}; {human_size(result.freed_bytes)} freed.")
            else:
                self.message.setText(f"Removed {entry.name} from the library; its files are still in {entry.root}.")

        run_in_background(
            lambda: self.library.remove(entry.id, delete_files=delete_files),
            on_success=done,
            on_failure=lambda error: self.message.setText(str(error)),
            owner=self,
        )


def _summary(result: dict[str, Any]) -> str:
    imported = result.get("imported") or []
    duplicates = result.get("duplicates") or []
    problems = result.get("problems") or []
    parts = [f"Imported {len(imported)} model{'s' if len(imported) != 1 else ''}."]
    if duplicates:
        parts.append(f"{len(duplicates)} already in your library.")
    if problems:
        parts.append(f"{len(problems)} not imported: {problems[0]['message']}")
    return " ".join(parts)
