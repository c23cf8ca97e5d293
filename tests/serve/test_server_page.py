"""The Server page as a real widget (offscreen): start and stop from the page, the base URL and snippet, the
loaded model and a live request log row for a real request, and the key kept out of settings."""

from __future__ import annotations

import pytest

from tests.serve.support import request

pytestmark = pytest.mark.slow


@pytest.fixture
def page(qtbot, app, served_models):  # type: ignore[no-untyped-def]
    from ui.bridge import Bridge
    from ui.pages.server import ServerPage

    widget = ServerPage(app, Bridge())
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    app.serve.stop()


def test_start_request_log_and_stop(qtbot, page, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    from core.serve.server import ServerState

    page.port_spin.setValue(_free_port())
    assert page.start_button.text() == "Start server"
    page.start_button.click()
    qtbot.waitUntil(lambda: page.service.state == ServerState.RUNNING and bool(page.url_edit.text()), timeout=20000)
    base_url = page.url_edit.text()
    assert base_url == f"http://127.0.0.1:{page.port_spin.value()}/v1"
    assert base_url in page.snippet.toPlainText() and served_models[0] in page.snippet.toPlainText()
    assert page.start_button.text() == "Stop server" and not page.host_edit.isEnabled()
    chat = {
        "model": served_models[0],
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4,
        "temperature": 0,
    }
    assert request(base_url, "POST", "/chat/completions", chat)[0] == 200
    qtbot.waitUntil(lambda: page.log_model.rowCount() == 1, timeout=10000)
    assert page.log_view.parentWidget().currentIndex() == 0  # the table, no longer the empty note
    row = [page.log_model.index(0, c).data() for c in range(page.log_model.columnCount())]
    assert row[1] == "chat/completions" and row[2] == served_models[0] and row[3] == "200"
    assert int(row[5]) > 0 and row[7].endswith("ms")
    qtbot.waitUntil(lambda: page.models_model.rowCount() == 1, timeout=10000)
    assert page.models_model.index(0, 0).data() == served_models[0]
    assert page.models_model.index(0, 3).data() != ""
    page.start_button.click()
    qtbot.waitUntil(lambda: page.service.state == ServerState.STOPPED, timeout=20000)
    qtbot.waitUntil(lambda: page.start_button.text() == "Start server" and page.start_button.isEnabled())
    assert page.url_edit.text() == "" and page.models_model.rowCount() == 0


def test_key_is_kept_out_of_the_settings_files(qtbot, page, app) -> None:  # type: ignore[no-untyped-def]
    page._generate_key()
    key = page.key_edit.text()
    assert key.startswith("hk-") and page.service.keys.get() == key
    page.idle_spin.setValue(5)
    page.autostart.setChecked(True)
    assert page.service.config.idle_unload_seconds == 300 and page.service.config.start_with_app
    for saved in app.paths.config_dir.glob("*"):
        if saved.is_file():
            assert key not in saved.read_text(errors="replace")


def test_a_refused_start_is_shown_on_the_page(qtbot, page) -> None:  # type: ignore[no-untyped-def]
    page.service.keys.clear()
    page.key_edit.setText("")
    page.host_edit.setText("0.0.0.0")
    page.start_button.click()
    qtbot.waitUntil(lambda: "needs an API key" in page.error_label.text(), timeout=10000)
    assert page.start_button.isEnabled() and page.start_button.text() == "Start server"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_model_defaults_saved_in_the_window_apply_to_api_loads(qtbot, page, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    box = page.defaults_box
    assert [box.model_combo.itemText(i) for i in range(box.model_combo.count())] == served_models
    box.model_combo.setCurrentIndex(0)
    box.context_spin.setValue(512)
    box.max_tokens_spin.setValue(3)
    box.save_button.click()
    assert box.message.text() == "Saved."
    base_url = page.service.start(port=0).base_url
    chat = {"model": served_models[0], "messages": [{"role": "user", "content": "x"}], "ignore_eos": True}
    status, body, _ = request(base_url, "POST", "/chat/completions", chat)
    assert status == 200 and body["usage"]["completion_tokens"] == 3  # the saved max tokens
    assert page.service.loaded()[0].context_length == 512  # the saved context
    box.layers_edit.setText("lots")
    box.save_button.click()
    assert "GPU layers" in box.message.text()


def test_stopped_page_says_where_it_will_listen_and_what_that_exposes(qtbot, page) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QStackedWidget

    page.port_spin.setValue(9123)
    assert page.url_edit.text() == "" and "127.0.0.1:9123/v1" in page.url_edit.placeholderText()
    assert "http://127.0.0.1:9123/v1" in page.snippet.toPlainText() and not page.copy_url.isEnabled()
    assert "this machine only" in page.exposure_label.text()
    page.host_edit.setText("0.0.0.0")
    assert "any computer" in page.exposure_label.text() and "0.0.0.0:9123" in page.exposure_label.text()
    for view in (page.models_view, page.log_view):  # empty tables give way to a note
        stack = view.parentWidget()
        assert isinstance(stack, QStackedWidget) and stack.currentIndex() == 1
    page.host_edit.setText("127.0.0.1")
    base_url = page.service.start(port=0).base_url
    qtbot.waitUntil(lambda: page.url_edit.text() == base_url and page.copy_url.isEnabled(), timeout=10000)
    assert "Running on" in page.status_label.text()
