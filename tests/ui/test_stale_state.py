"""Never show stale state (field report item 16): a deleted model's details and buttons go with it; a search that
finds nothing clears the previous repo from the detail pane; "choose a base model and a dataset first" goes once
both are chosen. Real pages, real library, local Hub."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.models.types import ImportMode
from tests.support.fixtures_library import write_gguf
from tests.support.hub import LocalHub
from tests.support.hub.catalog import GGUF_REPO
from ui.app import create_window
from ui.bridge import Bridge
from ui.pages.discover import DiscoverPage
from ui.pages.finetune import CHOOSE_FIRST, FinetunePage


def test_a_deleted_models_details_and_buttons_go_with_it(qtbot, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window = create_window(app)
    qtbot.addWidget(window)
    window.show_page("models")
    page = window.pages["models"]
    library = page.library
    library.import_paths([write_gguf(tmp_path / "keep.gguf", seed=1)], ImportMode.LINK)
    (gone,) = library.import_paths([write_gguf(tmp_path / "gone.gguf", seed=2)], ImportMode.LINK).imported
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=5000)
    assert page.select(gone.id) and page.chat_button.isEnabled() and page.delete_button.isEnabled()
    library.remove(gone.id)  # from elsewhere (the command line, another window)
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=5000)
    assert page.selected_entry() is None
    assert not page.chat_button.isEnabled() and not page.delete_button.isEnabled()
    assert page.details.title.text() == "Select a model"
    assert all(value.text() == "" for value in page.details.values.values())


@pytest.fixture
def discover(qtbot, app, hub: LocalHub):  # type: ignore[no-untyped-def]
    widget = DiscoverPage(app, Bridge())
    qtbot.addWidget(widget)
    widget.resize(1200, 700)
    widget.show()
    yield widget
    widget._detail_generation += 1
    widget._fit_pool.waitForDone(5000)


def test_an_empty_search_clears_the_previous_repo(discover: DiscoverPage, qtbot) -> None:  # type: ignore[no-untyped-def]
    discover.search.setText("tiny-llama")
    discover.search_now()
    qtbot.waitUntil(lambda: discover.results_model.rowCount() > 0, timeout=10_000)
    discover.open_model(GGUF_REPO)
    qtbot.waitUntil(lambda: discover.detail.detail is not None, timeout=10_000)
    discover.search.setText("no-such-model-anywhere")
    discover.search_now()
    qtbot.waitUntil(lambda: not discover._loading, timeout=10_000)
    assert discover.results_model.rowCount() == 0
    assert discover.detail.detail is None
    assert GGUF_REPO not in discover.detail.title.text()
    assert discover.detail.files_model.rowCount() == 0 and not discover.detail.download.isEnabled()


def test_choose_first_goes_once_both_are_chosen(qtbot, ft_app, tiny_hf_model: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = FinetunePage(ft_app, Bridge())
    qtbot.addWidget(page)
    page.start()
    assert page.message.text() == CHOOSE_FIRST
    page.form.model_path.setText(str(tiny_hf_model))
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "hello"}\n')
    page.form.data_path.setText(str(data))
    assert page.message.text() == ""
