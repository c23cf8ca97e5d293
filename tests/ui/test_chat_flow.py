"""The chat flow a newcomer takes (field report item 14, 23): "Chat" in My Models loads the model — an adapter with
its base — and opens a new chat; Send loads the selected model when none is; the picker shows the loaded model;
nothing selected creates no empty conversation; the focus stays in the composer after Stop. Real llama.cpp."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from core.models.types import ImportMode
from tests.support.fixtures_chat import write_tiny_gguf_lora
from ui.bridge import Bridge
from ui.pages.chat import ChatPage

WAIT = 60_000


@pytest.fixture
def page(qtbot, app) -> Iterator[ChatPage]:  # type: ignore[no-untyped-def]
    pytest.importorskip("llama_cpp")
    bridge = Bridge()
    widget = ChatPage(app, bridge)
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    yield widget
    widget.shutdown()


def _loaded(qtbot, page: ChatPage):  # type: ignore[no-untyped-def]
    return qtbot.waitSignal(page.model_state_changed, timeout=WAIT, check_params_cb=lambda s: s != "loading")


def test_chat_in_my_models_loads_the_model_and_opens_a_new_chat(qtbot, page: ChatPage, tiny_gguf: Path, app) -> None:  # type: ignore[no-untyped-def]
    (entry,) = app.library.import_paths([tiny_gguf], ImportMode.LINK).imported
    with _loaded(qtbot, page) as blocker:
        page.open_payload(entry.id)
    assert blocker.args == ["loaded"], page.banner.text()
    assert page.service.loaded is not None and page.service.loaded.model.path == Path(entry.load_path)
    assert page.conversation_id is not None
    assert page.service.chats.get(page.conversation_id).model == str(entry.load_path)
    assert page.model_picker.currentData() == str(entry.load_path)


def test_chat_on_an_adapter_loads_its_base_with_the_adapter(
    qtbot, page: ChatPage, tiny_gguf: Path, app, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    library = app.library
    (base,) = library.import_paths([tiny_gguf], ImportMode.LINK).imported
    adapter = library.register_adapter(write_tiny_gguf_lora(tmp_path / "tiny-lora.gguf"), base.id)
    with _loaded(qtbot, page) as blocker:
        page.open_payload(adapter.id)
    assert blocker.args == ["loaded"], page.banner.text()
    loaded = page.service.loaded
    assert loaded is not None
    assert loaded.model.path == Path(base.load_path)  # the adapter's own base, not whatever was selected
    assert loaded.options.lora_path == str(adapter.load_path)


def test_send_loads_the_selected_model_first(qtbot, page: ChatPage, tiny_gguf: Path) -> None:  # type: ignore[no-untyped-def]
    page.add_model_path(str(tiny_gguf))
    assert page.service.loaded is None
    page.composer.setPlainText("hello")
    with qtbot.waitSignal(page.reply_finished, timeout=WAIT) as blocker:
        page.send_button.click()
    assert blocker.args[0].role == "assistant"
    assert page.service.loaded is not None
    assert [m.role for m in page.service.chats.messages(page.conversation_id)] == ["user", "assistant"]
    assert page.model_picker.currentData() == str(tiny_gguf)


def test_send_with_no_model_chosen_creates_no_conversation(qtbot, page: ChatPage) -> None:  # type: ignore[no-untyped-def]
    page.composer.setPlainText("hello?")
    page.send_button.click()
    assert page.banner.isVisibleTo(page) and "No model is loaded" in page.banner.text()
    assert page.service.chats.conversations() == []
    assert page.composer.toPlainText() == "hello?"


def test_the_focus_stays_in_the_composer_after_stop(qtbot, page: ChatPage, mid_gguf: Path) -> None:  # type: ignore[no-untyped-def]
    page.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is page, timeout=2000)
    page.add_model_path(str(mid_gguf))
    with _loaded(qtbot, page):
        page.load_selected()
    page.settings_panel.max_tokens.setValue(4000) if hasattr(page.settings_panel, "max_tokens") else None
    page.composer.setPlainText("Write a very long story.")
    page.send_button.click()
    qtbot.waitUntil(page.stop_button.isEnabled, timeout=WAIT)
    page.stop_button.setFocus()
    with qtbot.waitSignal(page.reply_finished, timeout=WAIT):
        page.stop_button.click()
    qtbot.waitUntil(lambda: not page.stop_button.isEnabled(), timeout=WAIT)
    assert page.composer.hasFocus(), QApplication.focusWidget()
