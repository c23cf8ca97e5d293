"""The Downloads page against the local Hub: live progress, pause / resume / cancel / retry, the summary."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.downloads.manager import DownloadState
from tests.support.hub import LocalHub
from tests.support.hub.catalog import BIGGER_REPO, GGUF_REPO
from ui.app import create_window
from ui.bridge import Bridge
from ui.pages.downloads import DownloadsPage
from ui.pages.downloads_model import DownloadsModel


@pytest.fixture
def page(qtbot, app, hub: LocalHub) -> Iterator[DownloadsPage]:  # type: ignore[no-untyped-def]
    widget = DownloadsPage(app, Bridge())
    qtbot.addWidget(widget)
    widget.resize(1100, 500)
    widget.show()
    yield widget


def _state(page: DownloadsPage, download_id: str) -> DownloadState | None:
    return next((i.state for i in page.model.items if i.id == download_id), None)


def test_progress_pause_resume(page: DownloadsPage, qtbot, hub: LocalHub, qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    assert page.stack.currentIndex() == 0  # the empty state first
    hub.faults.throttle_bps = 2_000_000
    item = page.manager.enqueue(BIGGER_REPO)
    qtbot.waitUntil(
        lambda: any(i.id == item.id and i.done > 500_000 and i.speed > 0 for i in page.model.items), timeout=15_000
    )
    assert page.stack.currentIndex() == 1
    row = next(r for r, i in enumerate(page.model.items) if i.id == item.id)
    assert page.model.index(row, DownloadsModel.COL_SPEED).data().endswith("MB/s")
    assert ":" in page.model.index(row, DownloadsModel.COL_ETA).data()
    assert "downloading" in page.summary.text()
    page.select(item.id)
    assert page.pause_button.isEnabled() and not page.resume_button.isEnabled()
    page.pause_button.click()
    qtbot.waitUntil(lambda: _state(page, item.id) == DownloadState.PAUSED, timeout=10_000)
    assert page.resume_button.isEnabled()
    hub.faults.throttle_bps = None
    page.resume_button.click()
    qtbot.waitUntil(lambda: _state(page, item.id) == DownloadState.DONE, timeout=30_000)
    assert page.model.index(row, DownloadsModel.COL_PROGRESS).data() == "100.0%"
    qtmodeltester.check(page.model)


def test_cancel_then_retry(page: DownloadsPage, qtbot, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    hub.faults.throttle_bps = 1_000_000
    item = page.manager.enqueue(BIGGER_REPO)
    qtbot.waitUntil(lambda: _state(page, item.id) == DownloadState.RUNNING, timeout=10_000)
    page.select(item.id)
    page.cancel_button.click()
    qtbot.waitUntil(lambda: _state(page, item.id) == DownloadState.CANCELLED, timeout=10_000)
    assert page.retry_button.isEnabled()
    hub.faults.throttle_bps = None
    page.retry_button.click()
    qtbot.waitUntil(lambda: _state(page, item.id) == DownloadState.DONE, timeout=30_000)


def test_a_failure_shows_its_reason(page: DownloadsPage, qtbot, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    hub.faults.corrupt.add(f"{GGUF_REPO}/tiny-llama-Q4_0.gguf")
    item = page.manager.enqueue(GGUF_REPO, quant="Q4_0")
    qtbot.waitUntil(lambda: _state(page, item.id) == DownloadState.FAILED, timeout=15_000)
    row = next(r for r, i in enumerate(page.model.items) if i.id == item.id)
    assert "integrity check" in page.model.index(row, DownloadsModel.COL_MESSAGE).data()


def test_summary_sits_in_the_window_status_bar(qtbot, app, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    window = create_window(app)
    qtbot.addWidget(window)
    window.show()
    page = window.pages["downloads"]
    qtbot.waitUntil(lambda: page.summary.parent() is not None and page.summary.window() is window, timeout=5_000)
    hub.faults.throttle_bps = 2_000_000
    item = app.downloads.enqueue(BIGGER_REPO)
    qtbot.waitUntil(lambda: "downloading" in page.summary.text(), timeout=10_000)
    app.downloads.cancel(item.id)
