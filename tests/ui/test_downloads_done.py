"""A finished download is no dead end (field report item 15): its row offers Chat and Show in My Models, the
window says it finished, finished rows can be cleared (and stay cleared), and the columns keep their widths while
numbers tick. Real window, local Hub, real library."""

from __future__ import annotations

import pytest

from core.downloads.manager import DownloadState
from tests.support.hub import LocalHub
from tests.support.hub.catalog import BIGGER_REPO, GGUF_REPO
from ui.app import create_window
from ui.bridge import Bridge
from ui.pages.downloads import COLUMN_WIDTHS, DownloadsPage


@pytest.fixture
def window(qtbot, app, hub: LocalHub):  # type: ignore[no-untyped-def]
    win = create_window(app)
    qtbot.addWidget(win)
    win.resize(1180, 760)
    win.show()
    win.show_page("downloads")
    return win


def test_a_finished_download_offers_chat_and_show_and_says_so(window, qtbot, app) -> None:  # type: ignore[no-untyped-def]
    page: DownloadsPage = window.pages["downloads"]
    messages: list[str] = []
    window.bridge.status_message.connect(lambda text, _ms: messages.append(text))
    item = app.downloads.enqueue(GGUF_REPO, quant="Q8_0")
    qtbot.waitUntil(
        lambda: any(i.id == item.id and i.state == DownloadState.DONE for i in page.model.items), timeout=30_000
    )
    qtbot.waitUntil(lambda: any(m.startswith("Downloaded") for m in messages), timeout=5000)
    page.select(item.id)
    assert page.chat_button.isVisibleTo(page) and page.show_button.isVisibleTo(page)
    qtbot.waitUntil(lambda: page.library_entry(page.selected()) is not None, timeout=10_000)  # indexed by My Models
    entry = page.library_entry(page.selected())
    page.show_button.click()
    assert window.current_page_key() == "models"
    assert window.pages["models"].selected_entry().id == entry.id
    window.show_page("downloads")
    page.chat_button.click()
    assert window.current_page_key() == "chat"
    assert window.pages["chat"].model_picker.currentData() == str(entry.load_path)


def test_clearing_finished_rows_is_remembered(window, qtbot, app) -> None:  # type: ignore[no-untyped-def]
    page: DownloadsPage = window.pages["downloads"]
    item = app.downloads.enqueue(GGUF_REPO, quant="Q8_0")
    qtbot.waitUntil(
        lambda: any(i.id == item.id and i.state == DownloadState.DONE for i in page.model.items), timeout=30_000
    )
    assert page.clear_button.isEnabled()
    page.clear_button.click()
    assert page.model.items == [] and not page.clear_button.isEnabled()
    again = DownloadsPage(app, Bridge())
    qtbot.addWidget(again)
    assert again.model.items == []  # still cleared after a restart; the file stays in My Models


def test_columns_keep_their_widths_while_numbers_tick(window, qtbot, app, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    page: DownloadsPage = window.pages["downloads"]
    header = page.table.horizontalHeader()
    hub.faults.throttle_bps = 3_000_000
    item = app.downloads.enqueue(BIGGER_REPO)
    widths = []
    for done in (200_000, 1_000_000, 2_000_000):
        qtbot.waitUntil(lambda d=done: any(i.id == item.id and i.done > d for i in page.model.items), timeout=20_000)
        widths.append([header.sectionSize(c) for c in COLUMN_WIDTHS])
    assert widths[0] == widths[1] == widths[2] == list(COLUMN_WIDTHS.values())
    app.downloads.cancel(item.id)
