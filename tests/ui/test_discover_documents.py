"""Discover's "For your documents" line (issue 15): before the first search it offers the suggested embedding
model; one click downloads it from the (local) Hub into My Models as an embedding model, and the line goes away;
a search hides it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.hub.suggestions import EMBEDDING_SUGGESTION
from tests.support.hub import LocalHub
from tests.support.hub.catalog import add_embedding_repo
from ui.bridge import Bridge
from ui.pages.discover import DiscoverPage


@pytest.fixture
def embed_hub(hub: LocalHub, tmp_path: Path) -> Iterator[LocalHub]:
    add_embedding_repo(hub, tmp_path / "hub-embed")
    yield hub
    hub.repos.pop(EMBEDDING_SUGGESTION.repo_id, None)


def test_the_suggested_embedding_model_downloads_in_one_click(qtbot, app, embed_hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    page = DiscoverPage(app, Bridge())
    qtbot.addWidget(page)
    page.resize(1200, 700)
    page.show()
    qtbot.waitUntil(lambda: page.results_model.rowCount() > 0, timeout=10_000)
    line = page.docs_suggestion
    assert line.isVisibleTo(page) and "For your documents" in line.label.text()
    assert "nomic-embed-text v1.5" in line.label.text() and line.button.text() == "Download"

    line.button.click()
    qtbot.waitUntil(lambda: any(e.is_embedding for e in app.library.list()), timeout=30_000)
    (entry,) = [e for e in app.library.list() if e.is_embedding]
    assert entry.root.name == EMBEDDING_SUGGESTION.file and entry.capabilities == ("embedding",)
    assert entry.repo_id == EMBEDDING_SUGGESTION.repo_id
    assert line.button.text() == "Downloading" and not line.button.isEnabled()

    page.search.setText("chatter")
    page.search_now()
    assert not line.isVisibleTo(page)  # a search replaces the suggestions
    page.search.clear()
    page.search_now()
    assert not line.isVisibleTo(page)  # My Models has one now
    page._fit_pool.waitForDone(5000)


def test_a_failed_download_says_so_and_offers_a_retry(qtbot, app, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    page = DiscoverPage(app, Bridge())  # the local Hub has no such repo here: the Hub answers 404
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.results_model.rowCount() > 0, timeout=10_000)
    page.docs_suggestion.button.click()
    qtbot.waitUntil(lambda: page.docs_suggestion.button.text() == "Try again", timeout=20_000)
    assert page.docs_suggestion.button.isEnabled() and page.docs_suggestion.button.toolTip()
    assert not app.library.list()
    page._fit_pool.waitForDone(5000)
