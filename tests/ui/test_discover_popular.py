"""Discover never opens empty (field report item 22): before the first search it lists the Hub's popular models,
says so, and a search replaces them; without a connection it says why, with a retry. Local Hub."""

from __future__ import annotations

from tests.support.hub import LocalHub
from ui.bridge import Bridge
from ui.pages.discover import DiscoverPage


def _page(qtbot, app) -> DiscoverPage:  # type: ignore[no-untyped-def]
    page = DiscoverPage(app, Bridge())
    qtbot.addWidget(page)
    page.resize(1200, 700)
    page.show()
    return page


def test_popular_models_before_the_first_search(qtbot, app, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    page = _page(qtbot, app)
    qtbot.waitUntil(lambda: page.results_model.rowCount() > 0, timeout=10_000)
    assert page.left_stack.currentIndex() == 1
    assert "Popular" in page.results_message.label.text()
    downloads = [r.downloads for r in page.results_model.rows]
    assert downloads == sorted(downloads, reverse=True)
    page.search.setText("chatter")
    page.search_now()
    qtbot.waitUntil(lambda: all("chatter" in r.repo_id for r in page.results_model.rows), timeout=10_000)
    assert "Popular" not in page.results_message.label.text()
    page._fit_pool.waitForDone(5000)


def test_no_connection_is_explained_with_a_retry(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    page = _page(qtbot, app)  # HF_ENDPOINT points at a closed local port (tests/conftest.py)
    qtbot.waitUntil(lambda: page.results_message.retry.isVisibleTo(page), timeout=20_000)
    assert page.results_message.label.text()
