"""Discover finds fine-tunable models (field report item 24): the "Safetensors (fine-tune)" format lists full-weight
repos only, the detail pane shows such a repo as one model row with its size and a fine-tuning fit verdict, and
Download fetches the whole set as one job, after which the Fine-tune page offers it as a base model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.downloads.manager import DownloadState
from core.hub.files import GroupKind
from tests.support.hub import LocalHub
from tests.support.hub.catalog import HF_REPO, MLX_REPO
from ui.bridge import Bridge
from ui.pages.discover import DiscoverPage
from ui.pages.discover_models import FilesModel
from ui.pages.finetune import FinetunePage


@pytest.fixture
def page(qtbot, app, hub: LocalHub) -> Iterator[DiscoverPage]:  # type: ignore[no-untyped-def]
    widget = DiscoverPage(app, Bridge())
    qtbot.addWidget(widget)
    widget.resize(1200, 700)
    widget.show()
    qtbot.waitUntil(lambda: widget.results_model.rowCount() > 0 and not widget._loading, timeout=10_000)
    yield widget
    widget._detail_generation += 1
    widget._fit_pool.waitForDone(5000)


def test_discover_finds_downloads_and_hands_over_a_fine_tunable_model(page, qtbot, app, hub) -> None:  # type: ignore[no-untyped-def]
    page.format.setCurrentIndex(page.format.findData("safetensors"))
    assert page.format.currentText() == "Safetensors (fine-tune)"
    page.text_only.setChecked(False)
    page.search_now()
    qtbot.waitUntil(lambda: not page._loading and page.results_model.rowCount() > 0, timeout=10_000)
    ids = {r.repo_id for r in page.results_model.rows}
    assert HF_REPO in ids and MLX_REPO not in ids
    assert all(r.formats == ("safetensors",) for r in page.results_model.rows)

    page.open_model(HF_REPO)
    files = page.detail.files_model
    qtbot.waitUntil(lambda: files.best is not None, timeout=20_000)
    row = next(r for r, g in enumerate(files.groups) if g.kind == GroupKind.SAFETENSORS)
    group = files.groups[row]
    assert files.index(row, FilesModel.COL_NAME).data() == "Safetensors model"
    assert files.index(row, FilesModel.COL_SIZE).data() not in ("", "?")
    fit = files.index(row, FilesModel.COL_FIT).data()
    assert "Fits (tune)" in fit, fit
    assert "LoRA" in files.index(row, FilesModel.COL_FIT).data(0x03)  # ToolTipRole: what the figure is for
    assert page.detail.selected_group() == group
    assert page.detail.download.text() == "Download Safetensors model"

    with qtbot.waitSignal(page.bridge.status_message, timeout=10_000):
        page.detail.download.click()
    (item,) = app.downloads.list()
    assert len(item.files) == len(group.files) > 4  # config, tokenizer, both shards and the index: one job
    assert app.downloads.wait(item.id, 60).state == DownloadState.DONE
    qtbot.waitUntil(lambda: any(e.repo_id == HF_REPO for e in app.library.list()), timeout=10_000)

    tune = FinetunePage(app, Bridge())
    qtbot.addWidget(tune)
    tune.refresh_library_models()
    combo = tune.form.from_library
    offered = [combo.itemData(i) for i in range(combo.count())]
    assert str(app.models_dir / HF_REPO) in offered
