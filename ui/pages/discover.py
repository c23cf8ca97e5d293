"""The Discover page: search the Hub as you type (debounced; stale answers are dropped), filter and sort, scroll
for more, and open a model to see its card, every file grouped by quant, and a fit badge per quant computed from
the remote GGUF header. All network work runs off the GUI thread; errors show in place with a retry."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import QItemSelection, Qt, QThreadPool, QTimer
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.hub.files import FileGroup
from ui.operations import run_in_background
from ui.pages.discover_detail import InlineMessage, ModelDetailView
from ui.pages.discover_models import ITEM_ROLE, ResultsModel
from ui.widgets.common import EmptyState, Page, size_columns
from ui.widgets.responsive import ColumnsThatFit, FlowLayout

if TYPE_CHECKING:
    from core.app import AppContext
    from core.downloads.manager import DownloadManager
    from core.hub.client import HubClient, ModelDetail, SearchPage, SearchQuery
    from core.hub.fit import QuantFit
    from core.secrets import SecretStore
    from ui.bridge import Bridge

logger = logging.getLogger(__name__)

DEBOUNCE_MS = 300
PAGE_SIZE = 30
POPULAR_DELAY_MS = 150


class DiscoverPage(Page):
    def __init__(self, app: AppContext, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__(
            "Discover",
            "Search Hugging Face for models to run (GGUF, MLX) or fine-tune (safetensors) and see what fits here.",
            parent,
        )
        self.app = app
        self.bridge = bridge
        # The Hub client, the keyring and the download manager are imported on first use: a fast start.
        self._secrets: SecretStore | None = None
        self._client: HubClient | None = None
        self._downloads: DownloadManager | None = None
        self._search_generation = 0
        self._detail_generation = 0
        self._next_url: str | None = None
        self._query: SearchQuery | None = None
        self._popular = False
        self._shown_once = False
        self._loading = False
        self._fit_pool = QThreadPool(self)
        self._fit_pool.setMaxThreadCount(1)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search models, e.g. “qwen”, “llama 8b”, “gemma”…")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search models")
        self.search.setToolTip("Search Hugging Face by name, author or keyword; results update as you type (Ctrl+K)")
        self.format = QComboBox()
        for label, value in (
            # core.hub.client's FormatFilter and SearchSort values (that module loads huggingface_hub)
            ("GGUF and MLX", "any"),
            ("GGUF", "gguf"),
            ("MLX", "mlx"),
            ("Safetensors (fine-tune)", "safetensors"),
        ):
            self.format.addItem(label, value)
        self.format.setAccessibleName("Format")
        self.format.setToolTip(
            "GGUF runs with llama.cpp on any machine; MLX runs on Apple silicon only; "
            "Safetensors are a model's full weights, the base a fine-tune starts from"
        )
        self.sort = QComboBox()
        for label, value in (
            ("Most downloaded", "downloads"),
            ("Most liked", "likes"),
            ("Trending", "trending"),
            ("Recently updated", "updated"),
        ):
            self.sort.addItem(label, value)
        self.sort.setAccessibleName("Sort")
        self.sort.setToolTip("Order of the results")
        self.text_only = QCheckBox("Text generation")
        self.text_only.setChecked(True)
        self.text_only.setToolTip("Only models tagged for text generation (hides embedding, vision and audio models)")
        self.min_params = _billions("Min size")
        self.max_params = _billions("Max size")
        # One row where there is room; in a small window the filters wrap onto a second line (never sideways).
        self.filters = FlowLayout()
        self.search.setMinimumWidth(180)
        for widget in (self.search, self.format, self.sort, self.text_only, self.min_params, self.max_params):
            self.filters.addWidget(widget)
        self.body.addLayout(self.filters)
        from ui.pages.discover_docs import DocumentsSuggestion

        self.docs_suggestion = DocumentsSuggestion(app, bridge)  # before the first search: an embedding model
        self.docs_suggestion.setVisible(False)
        self.body.addWidget(self.docs_suggestion)

        self.results_model = ResultsModel()
        self.results = QTableView()
        self.results.setModel(self.results_model)
        self.results.setAccessibleName("Search results")
        self.results.setToolTip("Select a model to see its files and which quant fits this machine")
        self.results.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.results.verticalHeader().setVisible(False)
        self.results.setAlternatingRowColors(True)
        self.results.setWordWrap(False)
        # Cut at the end ("lmquant/Qwen2.5-7B-Ins…"): two repos cut in the middle read alike; the tooltip has it all.
        self.results.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.results.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        size_columns(
            self.results,
            {
                ResultsModel.COL_DOWNLOADS: 56,
                ResultsModel.COL_LIKES: 44,
                ResultsModel.COL_UPDATED: 84,
                ResultsModel.COL_PARAMS: 60,
            },
        )
        # Tags would be a sliver at this width ("gguf…tion"); they are in each row's tooltip instead, and the
        # repository name, the one column people read, gets the room.
        self.results.setColumnHidden(ResultsModel.COL_TAGS, True)
        header.setSectionResizeMode(ResultsModel.COL_NAME, QHeaderView.ResizeMode.Stretch)
        # In a narrow pane likes and dates give way (both are in each row's tooltip) before names shrink to "c…".
        self.results_columns = ColumnsThatFit(
            self.results, ResultsModel.COL_NAME, 150, [ResultsModel.COL_LIKES, ResultsModel.COL_UPDATED]
        )
        self.results.selectionModel().selectionChanged.connect(self._on_result_selected)
        self.results.verticalScrollBar().valueChanged.connect(self._maybe_load_more)
        self.more = QPushButton("Load more")
        self.more.setToolTip("Fetch the next page of results (scrolling to the end does it too)")
        self.more.setVisible(False)
        self.more.clicked.connect(self.load_more)
        self.results_message = InlineMessage()
        self.results_message.retry_clicked.connect(self._retry_search)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.results_message)
        left_layout.addWidget(self.results, 1)
        left_layout.addWidget(self.more)
        self.empty = EmptyState(
            "discover",
            "Search for a model",
            "Type a name like “qwen” or “llama” to browse GGUF and MLX repositories, with a fit verdict for "
            "every file.",
        )

        self.detail = ModelDetailView()
        self.detail.message.retry_clicked.connect(self._retry_detail)
        self.detail.download_requested.connect(self._download)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 9)
        self.splitter.setStretchFactor(1, 11)
        # Proportions (Qt scales them to the real width): the file table has more columns than the results.
        self.splitter.setSizes([900, 1100])
        # The empty state (fixed-width text) takes the whole area, so it never widens the results pane.
        self.left_stack = QStackedWidget()
        self.left_stack.addWidget(self.empty)
        self.left_stack.addWidget(self.splitter)
        self.body.addWidget(self.left_stack, 1)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.search_now)
        self.search.textChanged.connect(lambda _text: self._debounce.start())
        self.search.returnPressed.connect(self.search_now)
        for combo in (self.format, self.sort):
            combo.currentIndexChanged.connect(lambda _i: self._debounce.start())
        self.text_only.toggled.connect(lambda _on: self._debounce.start())
        for spin in (self.min_params, self.max_params):
            spin.valueChanged.connect(lambda _v: self._debounce.start())

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            if not self.search.text() and not self.results_model.rows:
                # Popular models once the window has painted (the Hub client is imported then, not at start-up).
                QTimer.singleShot(POPULAR_DELAY_MS, self._show_popular)

    def _show_popular(self) -> None:
        if not self.search.text() and not self.results_model.rows and not self._loading:
            self.search_now()

    # -- services, on first use -----------------------------------------------------------------------------------
    @property
    def secrets(self) -> SecretStore:
        if self._secrets is None:
            self._secrets = self.app.secrets
        return self._secrets

    @property
    def client(self) -> HubClient:
        if self._client is None:
            from core.hub.client import HubClient

            self._client = HubClient(self.secrets.get_token)
        return self._client

    # -- search -------------------------------------------------------------------------------------------------
    def current_query(self) -> SearchQuery:
        from core.hub.client import FormatFilter, SearchQuery, SearchSort

        return SearchQuery(
            text=self.search.text().strip(),
            # Qt hands enum item data back as plain strings
            format=FormatFilter(self.format.currentData()),
            sort=SearchSort(self.sort.currentData()),
            task="text-generation" if self.text_only.isChecked() else None,
            min_params_b=self.min_params.value() or None,
            max_params_b=self.max_params.value() or None,
            limit=PAGE_SIZE,
        )

    def search_now(self) -> None:
        """Start a new search; any answer still on its way for an older one is dropped when it arrives."""
        self._debounce.stop()
        self._search_generation += 1
        query = self.current_query()
        # No words: the Hub's most popular models (in the chosen order), so Discover never opens empty.
        self._popular = not query.text
        self.docs_suggestion.setVisible(self._popular and self.docs_suggestion.wanted())
        generation = self._search_generation
        self._query = query
        self._next_url = None
        self._loading = True
        self.left_stack.setCurrentIndex(1)
        self.results_message.show_message("Searching…", error=False)
        run_in_background(
            lambda: self.client.search(query),
            on_success=self._guard(lambda page: self._on_page(generation, page, reset=True)),
            on_failure=self._guard(lambda error: self._on_search_failed(generation, error)),
        )

    def load_more(self) -> None:
        if self._loading or not self._next_url or self._query is None:
            return
        generation, query, url = self._search_generation, self._query, self._next_url
        self._loading = True
        self.more.setText("Loading…")
        run_in_background(
            lambda: self.client.search(query, url),
            on_success=self._guard(lambda page: self._on_page(generation, page, reset=False)),
            on_failure=self._guard(lambda error: self._on_search_failed(generation, error)),
        )

    def _maybe_load_more(self, value: int) -> None:
        bar = self.results.verticalScrollBar()
        if bar.maximum() > 0 and value >= bar.maximum() - 2:
            self.load_more()

    def _on_page(self, generation: int, page: SearchPage, *, reset: bool) -> None:
        if generation != self._search_generation:
            return  # an older search: the person has typed since
        self._loading = False
        self._next_url = page.next_url
        if reset:
            self.results_model.reset(list(page.results))
            if getattr(self, "_open_repo", None) not in {r.repo_id for r in page.results}:
                self._detail_generation += 1  # drop a detail still on its way for the previous search
                self._open_repo = None
                self.detail.show_nothing()
        else:
            self.results_model.append(list(page.results))
        self.results_message.clear()
        if not self.results_model.rows:
            self.results_message.show_message("No models match.", error=False)
        elif self._popular:
            self.results_message.show_message(
                f"Popular on Hugging Face ({self.sort.currentText().lower()}) — type a name to search.", error=False
            )
        self.more.setText("Load more")
        self.more.setVisible(bool(page.next_url))

    def _on_search_failed(self, generation: int, error: Exception) -> None:
        if generation != self._search_generation:
            return
        self._loading = False
        self.more.setText("Load more")
        self.results_message.show_message(str(error), retry=True)

    def _retry_search(self) -> None:
        if self._next_url and self.results_model.rows:
            self.load_more()
        else:
            self.search_now()

    # -- keyboard (the window's Ctrl+K / Ctrl+F and F5) ------------------------------------------------------------
    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def refresh_page(self) -> None:
        """F5: retry what failed (the open model, else the search), or run the search again."""
        if self.detail.message.retry.isVisibleTo(self):
            self._retry_detail()
        elif self.results_message.retry.isVisibleTo(self):
            self._retry_search()
        else:
            self.search_now()

    # -- detail -------------------------------------------------------------------------------------------------
    def _on_result_selected(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        indexes = selected.indexes()
        if indexes:
            self.open_model(self.results_model.data(indexes[0], ITEM_ROLE).repo_id)

    def open_payload(self, payload: object) -> None:
        """Another page asks to show a model (``bridge.navigate_requested.emit("discover", repo_id)``)."""
        if isinstance(payload, str):
            self.open_model(payload)

    def open_model(self, repo_id: str) -> None:
        self._detail_generation += 1
        generation = self._detail_generation
        self._open_repo = repo_id
        self.left_stack.setCurrentIndex(1)
        self.detail.show_loading(repo_id)
        run_in_background(
            lambda: self.client.model_detail(repo_id),
            on_success=self._guard(lambda detail: self._on_detail(generation, detail)),
            on_failure=self._guard(lambda error: self._on_detail_failed(generation, error)),
        )

    def _retry_detail(self) -> None:
        if getattr(self, "_open_repo", None):
            self.open_model(self._open_repo)

    def _on_detail(self, generation: int, detail: ModelDetail) -> None:
        if generation != self._detail_generation:
            return
        from core.hub.fit import ESTIMATED_KINDS

        self.detail.show_detail(detail)
        quants = [g for g in detail.groups if g.kind in ESTIMATED_KINDS]
        if quants:
            self._start_fit(generation, detail, quants)

    def _on_detail_failed(self, generation: int, error: Exception) -> None:
        if generation == self._detail_generation:
            self.detail.show_error(str(error))

    def _start_fit(self, generation: int, detail: ModelDetail, quants: list[FileGroup]) -> None:
        from core.estimate.llama import EngineSettings
        from core.hub.fit import best_fit, fit_all

        secrets = self.secrets
        settings = EngineSettings(context_length=self.app.settings.current.default_context_length)

        def work() -> list[QuantFit]:
            from core.hardware import cached_hardware

            hardware = cached_hardware()
            self.bridge.call_soon(self._guard(self._set_fit_hardware), generation, hardware)
            return fit_all(
                detail.summary.repo_id,
                detail.commit,
                quants,
                token=secrets.get_token(),  # here: a keyring lookup may block
                hardware=hardware,
                settings=settings,
                on_result=lambda fit: self.bridge.call_soon(self._guard(self._on_fit), generation, fit),
                cancelled=lambda: generation != self._detail_generation,
            )

        def done(fits: list[QuantFit]) -> None:
            if generation != self._detail_generation:
                return
            best = best_fit(fits, {g.key: g.size for g in quants})
            self.detail.files_model.set_best(best)
            if best is not None:
                self.detail.select_group(best)

        def failed(error: Exception) -> None:
            logger.warning("fit estimation failed: %s", error)
            self.detail.files_model.fit_available = False
            self.detail.files.viewport().update()

        run_in_background(work, on_success=self._guard(done), on_failure=self._guard(failed), pool=self._fit_pool)

    def _set_fit_hardware(self, generation: int, hardware: object) -> None:
        if generation == self._detail_generation:
            self.detail.files_model.hardware = hardware  # type: ignore[assignment]

    def _on_fit(self, generation: int, fit: QuantFit) -> None:
        if generation == self._detail_generation:
            self.detail.files_model.set_fit(fit)

    # -- download -----------------------------------------------------------------------------------------------
    @property
    def downloads(self) -> DownloadManager:
        if self._downloads is None:
            self._downloads = self.app.downloads
        return self._downloads

    def _download(self, group: FileGroup) -> None:
        detail = self.detail.detail
        if detail is None:
            return
        manager = self.downloads
        self.detail.message.clear()
        run_in_background(
            lambda: manager.enqueue(detail.summary.repo_id, group=group, detail=detail),
            on_success=self._guard(
                lambda item: self.bridge.status_message.emit(f"Downloading {item.label} — see Downloads.", 5000)
            ),
            on_failure=self._guard(lambda error: self.detail.message.show_message(str(error))),
        )

    def _guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Drop callbacks that arrive after the page is gone (a late network answer at shutdown)."""

        def call(*args: Any) -> Any:
            if shiboken6.isValid(self):
                return fn(*args)
            return None

        return call


def _billions(name: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(0, 2000)
    spin.setDecimals(1)
    spin.setSuffix(" B")
    spin.setSpecialValueText(f"{name}: any")
    spin.setAccessibleName(name)
    spin.setToolTip(f"{name} in billions of parameters (0 = any)")
    return spin
