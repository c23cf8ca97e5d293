"""The Machines page as real widgets: remote servers checked in the background and listed with their models (a real
HTTP peer on 127.0.0.1), removed, and this machine's RPC worker started (a real llama.cpp RPC server child),
answering, and stopped; the exposure warning appears only off loopback."""

from __future__ import annotations

import json

import pytest

from backends.rpc_worker import serve as serve_worker
from core.remote.rpc import query_worker
from tests.support.servers import free_port, http_peer, send
from ui.bridge import Bridge
from ui.pages.machines import MachinesPage, RemoteTableModel


def _listing(handler) -> None:  # type: ignore[no-untyped-def]
    body = {"object": "list", "data": [{"id": "qwen-7b", "owned_by": "vllm"}, {"id": "llama-8b", "owned_by": "vllm"}]}
    send(handler, 200, json.dumps(body).encode())


@pytest.fixture
def page(qtbot, app):  # type: ignore[no-untyped-def]
    app.rpc_worker_entry = serve_worker
    widget = MachinesPage(app, Bridge())
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitUntil(lambda: widget.refresh_button.isEnabled(), timeout=10000)
    return widget


def test_remote_servers_are_listed_with_their_models(page, qtbot, qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    assert page.model.rowCount() == 0 and "No remote servers yet" in page.remote_status.text()
    with http_peer(_listing) as url:
        page.app.remotes.add("box", url)
        page.refresh()
        qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=10000)
        qtmodeltester.check(page.model)
        model = page.model
        assert model.data(model.index(0, RemoteTableModel.COL_NAME)) == "box"
        assert model.data(model.index(0, RemoteTableModel.COL_KIND)) == "vllm"
        assert model.data(model.index(0, RemoteTableModel.COL_MODELS)) == "qwen-7b, llama-8b"
        assert model.data(model.index(0, RemoteTableModel.COL_STATUS)) == "answering"
    page.refresh()  # the peer is gone now
    qtbot.waitUntil(lambda: page.refresh_button.isEnabled(), timeout=10000)
    assert page.model.data(page.model.index(0, RemoteTableModel.COL_STATUS)) == "not answering"
    assert "0 of 1 answering" in page.remote_status.text()
    page.table.selectRow(0)
    assert page.remove_button.isEnabled()
    page.remove_selected()
    qtbot.waitUntil(lambda: page.model.rowCount() == 0, timeout=10000)


def test_worker_starts_answers_and_stops(page, qtbot) -> None:  # type: ignore[no-untyped-def]
    assert not page.warning.isVisible()
    page.host.setCurrentIndex(1)
    assert page.warning.isVisible() and "no authentication" in page.warning.text()
    page.host.setCurrentIndex(0)
    assert not page.warning.isVisible()

    page.port.setValue(free_port())
    page.start_button.click()
    qtbot.waitUntil(lambda: page.worker_status.text().startswith("Listening on"), timeout=30000)
    assert page.start_button.text() == "Stop worker" and not page.port.isEnabled()
    info = query_worker(page.worker.endpoint)
    assert info.answered and info.devices
    page.start_button.click()
    qtbot.waitUntil(lambda: page.worker_status.text() == "Stopped.", timeout=30000)
    assert page.start_button.text() == "Start worker" and page.port.isEnabled()
    assert not query_worker(f"127.0.0.1:{page.port.value()}", timeout=1).answered
