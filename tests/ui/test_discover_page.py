"""The Discover page against the local Hub: search as you type, filters, paging, details with fit badges,
inline errors with retry, and queueing a download."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt

from core.downloads.manager import DownloadState
from core.hub.files import GroupKind
from tests.support.hub import LocalHub
from tests.support.hub.catalog import GATED_REPO, GGUF_REPO
from ui.bridge import Bridge
from ui.pages.discover import DiscoverPage
from ui.pages.discover_models import FIT_PENDING, FIT_UNKNOWN, FilesModel


@pytest.fixture
def page(qtbot, app, hub: LocalHub) -> Iterator[DiscoverPage]:  # type: ignore[no-untyped-def]
    bridge = Bridge()
    widget = DiscoverPage(app, bridge)
    qtbot.addWidget(widget)
    widget.resize(1200, 700)
    widget.show()
    # Discover opens with the popular models (test_discover_popular.py); start from that settled page.
    qtbot.waitUntil(lambda: widget.results_model.rowCount() > 0 and not widget._loading, timeout=10_000)
    yield widget
    widget._detail_generation += 1  # stop a fit estimate still running
    widget._fit_pool.waitForDone(5000)


def _search_requests(hub: LocalHub) -> int:
    return sum(1 for r in hub.requests if r.path == "/api/models")


def test_search_as_you_type_is_debounced(page: DiscoverPage, qtbot, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    before = _search_requests(hub)
    qtbot.keyClicks(page.search, "chat")
    qtbot.keyClicks(page.search, "ter")
    qtbot.waitUntil(lambda: _search_requests(hub) > before and not page._loading, timeout=10_000)
    assert _search_requests(hub) == before + 1  # one request for the whole burst of typing
    assert all("chatter" in r.repo_id for r in page.results_model.rows)
    downloads = [r.downloads for r in page.results_model.rows]
    assert downloads == sorted(downloads, reverse=True)


def test_stale_answers_are_dropped(page: DiscoverPage, qtbot, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    before = _search_requests(hub)
    page.search.setText("chatter")
    page.search_now()
    page.search.setText("tiny-llama")
    page.search_now()  # the first answer arrives after this one was asked for
    qtbot.waitUntil(lambda: _search_requests(hub) == before + 2 and not page._loading, timeout=10_000)
    qtbot.waitUntil(lambda: page.results_model.rowCount() > 0, timeout=10_000)
    assert {r.repo_id for r in page.results_model.rows} <= {GGUF_REPO, "mlx-community/tiny-llama-4bit"}


def test_filters_and_sort(page: DiscoverPage, qtbot, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    page.format.setCurrentIndex(page.format.findText("MLX"))
    page.sort.setCurrentIndex(page.sort.findText("Most liked"))
    page.search.setText("chatter")
    page.search_now()
    qtbot.waitUntil(lambda: page.results_model.rowCount() > 0 and not page._loading, timeout=10_000)
    rows = page.results_model.rows
    assert all("mlx" in r.formats for r in rows)
    assert [r.likes for r in rows] == sorted((r.likes for r in rows), reverse=True)


def test_scrolling_to_the_end_loads_the_next_page(page: DiscoverPage, qtbot, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    hub.page_size_cap = 8
    page.resize(1200, 380)  # short enough that eight rows scroll
    try:
        page.text_only.setChecked(False)
        page.search.setText("chatter")
        page.search_now()
        qtbot.waitUntil(lambda: page.results_model.rowCount() == 8, timeout=10_000)
        assert page.more.isVisible()
        bar = page.results.verticalScrollBar()
        qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=5_000)
        bar.setValue(bar.maximum())
        qtbot.waitUntil(lambda: page.results_model.rowCount() == 16, timeout=10_000)
        while page.more.isVisible():
            count = page.results_model.rowCount()
            page.more.click()
            qtbot.waitUntil(lambda c=count: page.results_model.rowCount() > c, timeout=10_000)
        assert page.results_model.rowCount() == 25
        assert len({r.repo_id for r in page.results_model.rows}) == 25
    finally:
        hub.page_size_cap = 1000


def test_detail_shows_card_grouped_files_and_fit_badges(page: DiscoverPage, qtbot, qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    page.open_model(GGUF_REPO)
    files = page.detail.files_model
    qtbot.waitUntil(lambda: files.rowCount() > 0, timeout=10_000)
    assert "Tiny Llama GGUF" in page.detail.card.toPlainText()
    assert "license:" not in page.detail.card.toPlainText()
    kinds = [g.kind for g in files.groups]
    assert kinds.count(GroupKind.QUANT) == 4 and kinds.count(GroupKind.COMPANION) == 1
    split_row = next(row for row, g in enumerate(files.groups) if g.is_split)
    assert "2-part split" in files.index(split_row, FilesModel.COL_KIND).data()
    qtbot.waitUntil(lambda: files.best is not None, timeout=20_000)
    quant_rows = [row for row, g in enumerate(files.groups) if g.kind == GroupKind.QUANT]
    texts = [files.index(row, FilesModel.COL_FIT).data() for row in quant_rows]
    assert all(t not in (FIT_PENDING, FIT_UNKNOWN, "") for t in texts), texts
    best_row = next(row for row, g in enumerate(files.groups) if g.key == files.best)
    assert files.index(best_row, FilesModel.COL_FIT).data().startswith("★ ")
    assert files.index(best_row, 0).data(Qt.ItemDataRole.FontRole).bold()
    assert page.detail.selected_group().key == files.best  # the recommendation is preselected
    qtmodeltester.check(files)
    qtmodeltester.check(page.results_model)


def test_gated_detail_links_to_the_licence(page: DiscoverPage, qtbot, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    page.open_model(GATED_REPO)
    qtbot.waitUntil(lambda: page.detail.detail is not None, timeout=10_000)
    assert page.detail.gated.isVisible()
    assert f"{hub.url}/{GATED_REPO}" in page.detail.gated.text()
    page.detail.download.click()  # no token: the reason shows in place
    qtbot.waitUntil(lambda: page.detail.message.isVisible(), timeout=10_000)
    assert "accept its licence" in page.detail.message.label.text()


def test_network_errors_show_inline_with_a_retry(page: DiscoverPage, qtbot, hub: LocalHub, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    page.search.setText("chatter")
    page.search_now()
    qtbot.waitUntil(lambda: page.results_message.retry.isVisible(), timeout=15_000)
    assert "Could not reach" in page.results_message.label.text()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    page.results_message.retry.click()
    qtbot.waitUntil(lambda: not page._loading, timeout=10_000)
    assert page.results_model.rowCount() > 0 and all("chatter" in r.repo_id for r in page.results_model.rows)
    assert not page.results_message.isVisible()


def test_download_button_queues_the_selected_quant(page: DiscoverPage, qtbot, app, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    page.open_model(GGUF_REPO)
    qtbot.waitUntil(lambda: page.detail.files_model.best is not None, timeout=20_000)
    chosen = page.detail.selected_group()
    with qtbot.waitSignal(page.bridge.status_message, timeout=10_000):
        page.detail.download.click()
    manager = app.downloads
    [item] = manager.list()
    assert item.files == chosen.files
    assert manager.wait(item.id, 30).state == DownloadState.DONE
