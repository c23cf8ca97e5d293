"""The Chat page with a real engine and tiny models: load, chat with streaming Markdown, stop with Esc,
regenerate, edit and resend, continue, conversations (rename, delete, search), and failures explained in place."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from core.chat.store import ChatSettings, MessageState
from ui.bridge import Bridge
from ui.pages.chat import ChatPage
from ui.pages.chat_markdown import MarkdownRenderer

WAIT = 60_000


@pytest.fixture
def page(qtbot, app) -> Iterator[ChatPage]:  # type: ignore[no-untyped-def]
    bridge = Bridge()
    widget = ChatPage(app, bridge)
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    yield widget
    widget.shutdown()


def load(qtbot, page: ChatPage, path: Path) -> None:  # type: ignore[no-untyped-def]
    page.add_model_path(str(path))
    with qtbot.waitSignal(page.model_state_changed, timeout=WAIT, check_params_cb=lambda s: s != "loading"):
        page.load_selected()
    assert page.service.loaded is not None, page.banner.text()


def send(qtbot, page: ChatPage, text: str):  # type: ignore[no-untyped-def]
    page.composer.setPlainText(text)
    with qtbot.waitSignal(page.reply_finished, timeout=WAIT) as blocker:
        page.send_button.click()
    return blocker.args[0]


def test_chat_streams_a_reply_with_stats(qtbot, page: ChatPage, tiny_gguf: Path) -> None:  # type: ignore[no-untyped-def]
    load(qtbot, page, tiny_gguf)
    assert "allocated" in page.model_label.text() and "estimated" in page.model_label.text()
    assert "KV cache" in page.model_label.toolTip()
    reply = send(qtbot, page, "hello world")
    assert reply.state == MessageState.DONE
    cards = sorted(page.transcript.cards.values(), key=lambda c: c.message.position)
    assert [c.message.role for c in cards] == ["user", "assistant"]
    assert "tok/s" in cards[1].stats.text() and "first token" in cards[1].stats.text()
    assert page.conversations.model.rowCount() == 1
    assert page.conversations.model.index(0).data() == "hello world"
    assert page.composer.toPlainText() == ""
    qtbot.waitUntil(lambda: "tokens" in page.meter_label.text(), timeout=WAIT)
    assert page.meter.value() > 0


def test_esc_stops_a_long_reply_and_continue_goes_on(qtbot, page: ChatPage, mid_gguf: Path) -> None:  # type: ignore[no-untyped-def]
    load(qtbot, page, mid_gguf)
    page.new_chat()
    # greedy on this random model writes thousands of tokens without an end-of-sequence
    page.settings_panel.preset.setCurrentText("Deterministic")
    page.settings_panel.max_tokens.setValue(3000)
    page.composer.setPlainText("tell me a story")
    with qtbot.waitSignal(page.reply_finished, timeout=WAIT) as finished:
        page.send_button.click()
        qtbot.waitUntil(lambda: page.stop_button.isEnabled() and page.transcript.redraws > 0, timeout=WAIT)
        qtbot.keyClick(page.composer, Qt.Key.Key_Escape)
    stopped = finished.args[0]
    assert stopped.state == MessageState.STOPPED
    assert 0 < stopped.completion_tokens < 3000
    card = page.transcript.cards[stopped.id]
    assert card.error.text() == "Stopped." and card.continue_button.isVisibleTo(card)
    page.settings_panel.max_tokens.setValue(5)
    with qtbot.waitSignal(page.reply_finished, timeout=WAIT) as again:
        card.continue_button.click()
    longer = again.args[0]
    assert longer.id == stopped.id and longer.content.startswith(stopped.content)
    assert len(longer.content) > len(stopped.content)


def test_regenerate_and_edit_and_resend(qtbot, page: ChatPage, tiny_gguf: Path) -> None:  # type: ignore[no-untyped-def]
    load(qtbot, page, tiny_gguf)
    first = send(qtbot, page, "first")
    card = page.transcript.cards[first.id]
    assert card.regenerate_button.isVisibleTo(card)
    page.settings_panel.seed.setValue(99)
    with qtbot.waitSignal(page.reply_finished, timeout=WAIT) as regenerated:
        card.regenerate_button.click()
    new = regenerated.args[0]
    assert new.id != first.id and first.id not in page.transcript.cards
    user_card = next(c for c in page.transcript.cards.values() if c.message.role == "user")
    user_card.edit_button.click()
    assert page.composer.toPlainText() == "first" and page.editing_label.isVisibleTo(page)
    edited = send(qtbot, page, "first, edited")
    messages = page.service.chats.messages(page.conversation_id)
    assert [(m.role, m.id == edited.id) for m in messages] == [("user", False), ("assistant", True)]
    assert messages[0].content == "first, edited"
    assert len(page.transcript.cards) == 2


def test_conversations_rename_delete_search_and_reopen(qtbot, page: ChatPage, tiny_gguf: Path, app) -> None:  # type: ignore[no-untyped-def]
    load(qtbot, page, tiny_gguf)
    send(qtbot, page, "about cats")
    page.new_chat()
    send(qtbot, page, "about dogs")
    assert page.conversations.model.rowCount() == 2
    page.conversations.rename_current("Dog notes")
    assert page.conversations.model.index(0).data() == "Dog notes"
    page.conversations.search.setText("cats")
    assert page.conversations.model.rowCount() == 1
    page.conversations.search.setText("")
    cats_id = page.service.chats.conversations("cats")[0].id
    page.conversations.select(cats_id)
    assert page.conversation_id == cats_id
    assert [c.message.content for c in page.transcript.cards.values() if c.message.role == "user"] == ["about cats"]
    page.conversations.delete_current(confirmed=True)
    assert page.conversations.model.rowCount() == 1 and page.conversation_id is None


def test_settings_are_saved_per_conversation_and_bad_values_explained(qtbot, page: ChatPage) -> None:  # type: ignore[no-untyped-def]
    page.new_chat()
    panel = page.settings_panel
    panel.preset.setCurrentText("Creative")
    saved = page.service.chats.get(page.conversation_id).settings
    assert saved.temperature == 1.0 and saved.top_k == 100
    panel.system_prompt.setPlainText("Answer in French.")
    assert page.service.chats.get(page.conversation_id).system_prompt == "Answer in French."
    panel.response_format.setCurrentIndex(panel.response_format.findData("json_schema"))
    panel.json_schema.setPlainText("{not json")
    assert panel.error.isVisibleTo(panel) and "not valid JSON" in panel.error.text()
    assert page.service.chats.get(page.conversation_id).settings.response_format == "text"  # refused, not saved
    panel.json_schema.setPlainText('{"type": "object"}')
    assert not panel.error.isVisibleTo(panel)
    assert page.service.chats.get(page.conversation_id).settings == ChatSettings(
        temperature=1.0,
        top_p=0.98,
        top_k=100,
        min_p=0.02,
        repeat_penalty=1.1,
        max_tokens=1024,
        response_format="json_schema",
        json_schema='{"type": "object"}',
    )


def test_sending_without_a_model_is_explained(qtbot, page: ChatPage) -> None:  # type: ignore[no-untyped-def]
    page.composer.setPlainText("hello?")
    page.send_button.click()
    qtbot.waitUntil(lambda: page.banner.isVisibleTo(page), timeout=WAIT)
    assert "No model is loaded" in page.banner.text()
    assert page.composer.toPlainText() == "hello?"  # nothing typed is lost


def test_corrupt_and_unsupported_models_are_explained(qtbot, page: ChatPage, tiny_gguf: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(tiny_gguf.read_bytes()[:4000])
    page.add_model_path(str(broken))
    with qtbot.waitSignal(page.model_state_changed, timeout=WAIT, check_params_cb=lambda s: s == "failed"):
        page.load_selected()
    assert "broken.gguf" in page.banner.text()
    odd = tmp_path / "odd.gguf"
    odd.write_bytes(tiny_gguf.read_bytes().replace(b"llama", b"hngar"))
    page.add_model_path(str(odd))
    with qtbot.waitSignal(page.model_state_changed, timeout=WAIT, check_params_cb=lambda s: s == "failed"):
        page.load_selected()
    assert "hngar architecture is not supported" in page.banner.text()
    assert page.model_label.text() == "No model loaded"


def test_killed_engine_is_explained_and_the_conversation_kept(qtbot, page: ChatPage, mid_gguf: Path) -> None:  # type: ignore[no-untyped-def]
    load(qtbot, page, mid_gguf)
    page.new_chat()
    page.settings_panel.preset.setCurrentText("Deterministic")
    page.settings_panel.max_tokens.setValue(3000)
    page.composer.setPlainText("tell me a story")
    with qtbot.waitSignal(page.reply_finished, timeout=WAIT) as finished:
        page.send_button.click()
        qtbot.waitUntil(lambda: page.transcript.redraws > 0, timeout=WAIT)
        page.service.host.kill()
    reply = finished.args[0]
    assert reply.state == MessageState.FAILED and reply.content
    qtbot.waitUntil(lambda: page.banner.isVisibleTo(page), timeout=WAIT)
    assert "killed" in page.banner.text() and "conversation is saved" in page.banner.text()
    assert page.banner_action.text() == "Reload"
    card = page.transcript.cards[reply.id]
    assert "killed" in card.error.text()
    messages = page.service.chats.messages(page.conversation_id)
    assert messages[0].content == "tell me a story" and messages[1].content == reply.content
    with qtbot.waitSignal(page.model_state_changed, timeout=WAIT, check_params_cb=lambda s: s == "loaded"):
        page.banner_action.click()


def test_load_can_be_cancelled(qtbot, page: ChatPage, tiny_gguf: Path) -> None:  # type: ignore[no-untyped-def]
    page.add_model_path(str(tiny_gguf))
    page.load_selected()
    assert page.cancel_load_button.isVisibleTo(page)
    with qtbot.waitSignal(page.model_state_changed, timeout=WAIT, check_params_cb=lambda s: s != "loading"):
        page.cancel_load_button.click()
    # a load that already finished is simply discarded by the restart: either way nothing stays loaded
    qtbot.waitUntil(lambda: not page.progress.isVisibleTo(page), timeout=WAIT)
    assert page.service.host.model is None or page.service.loaded is not None


def test_markdown_code_blocks_are_highlighted_and_copyable(qtbot, page: ChatPage) -> None:  # type: ignore[no-untyped-def]
    rendered = MarkdownRenderer().render("Try:\n\n```python\ndef f(x):\n    return x\n```\n<b>raw</b>")
    assert "color" in rendered.html and "copy:0" in rendered.html
    assert "&lt;b&gt;raw" in rendered.html  # model output never injects markup
    assert rendered.code_blocks == ("def f(x):\n    return x\n",)
    page.new_chat()
    message = page.service.chats.add_message(page.conversation_id, "assistant", "```python\nprint(1)\n```")
    page.transcript.upsert(message)
    page.transcript.cards[message.id].body.linkActivated.emit("copy:0")
    assert QGuiApplication.clipboard().text() == "print(1)\n"


def test_load_options_apply_to_the_next_load(qtbot, page: ChatPage, tiny_gguf: Path, mid_gguf: Path) -> None:  # type: ignore[no-untyped-def]
    from core.chat.models import AUTO_GPU_LAYERS
    from ui.pages.chat_load import LoadOptionsDialog

    dialog = LoadOptionsDialog(page.service.default_options(), page)
    qtbot.addWidget(dialog)
    assert dialog.read().gpu_layers == AUTO_GPU_LAYERS
    dialog.gpu_layers.setCurrentText("lots")
    dialog._accept()
    assert dialog.error.isVisibleTo(dialog) and "GPU layers" in dialog.error.text()
    dialog.gpu_layers.setCurrentText("all")
    dialog.kv_cache.setCurrentText("q8_0")
    dialog._accept()
    assert "flash attention" in dialog.error.text()
    dialog.flash.setChecked(True)
    dialog.context.setValue(512)
    dialog._accept()
    assert dialog.result() == dialog.DialogCode.Accepted
    page.load_options = dialog.options
    # the tiny model's 16-wide heads cannot hold a q8_0 cache (32-value blocks): explained, not "damaged file"
    page.add_model_path(str(tiny_gguf))
    with qtbot.waitSignal(page.model_state_changed, timeout=WAIT, check_params_cb=lambda s: s == "failed"):
        page.load_selected()
    assert "load options" in page.banner.text() and "does not divide" in page.banner.text()
    load(qtbot, page, mid_gguf)
    assert page.service.loaded.info.context_length == 512
    assert page.service.loaded.options.kv_cache_type == "q8_0" and page.service.loaded.options.gpu_layers == -1


def test_chat_from_my_models_opens_the_library_model(qtbot, page: ChatPage, tiny_gguf: Path, app) -> None:  # type: ignore[no-untyped-def]
    from core.models.types import ImportMode

    report = app.library.import_paths([tiny_gguf], ImportMode.LINK)
    (entry,) = report.imported
    page.open_payload(entry.id)
    assert page.model_picker.currentData() == str(entry.load_path)
    page.open_payload("no-such-id")
    assert page.banner.isVisibleTo(page) and "no model" in page.banner.text().lower()


@pytest.mark.slow  # MLX on the CPU: loads and generates for several seconds
def test_mlx_model_chats_and_refuses_json_mode_in_place(qtbot, page: ChatPage, tiny_hf_model: Path) -> None:  # type: ignore[no-untyped-def]
    load(qtbot, page, tiny_hf_model)
    assert "mlx" in page.model_label.text() and "estimated" in page.model_label.text()
    assert page.model_label.toolTip().startswith("Weights:")
    page.new_chat()
    panel = page.settings_panel
    panel.response_format.setCurrentIndex(panel.response_format.findData("json"))
    refused = send(qtbot, page, "give me JSON")
    assert refused.state == MessageState.FAILED
    card = page.transcript.cards[refused.id]
    assert "not supported by the MLX engine" in card.error.text() and card.error.isVisibleTo(card)
    panel.response_format.setCurrentIndex(panel.response_format.findData("text"))
    panel.max_tokens.setValue(8)
    with qtbot.waitSignal(page.reply_finished, timeout=WAIT) as regenerated:
        card.regenerate_button.click()
    assert regenerated.args[0].state == MessageState.DONE


def test_out_of_memory_is_explained_with_the_estimators_advice(qtbot, page: ChatPage, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
    from core.engine.protocol import LoadOptions

    wide = write_tiny_gguf(tmp_path / "wide.gguf", TinyModelConfig(n_embd=2048, n_ff=64, n_head=16, n_head_kv=16))
    page.load_options = LoadOptions(context_length=2**24)
    page.add_model_path(str(wide))
    with qtbot.waitSignal(page.model_state_changed, timeout=WAIT, check_params_cb=lambda s: s == "failed"):
        page.load_selected()
    text = page.banner.text()
    assert "Not enough memory to load wide.gguf" in text
    assert "The estimator expects" in text and "A context of up to" in text


def test_unload_frees_the_model(qtbot, page: ChatPage, tiny_gguf: Path) -> None:  # type: ignore[no-untyped-def]
    load(qtbot, page, tiny_gguf)
    assert page.unload_button.isEnabled()
    with qtbot.waitSignal(page.model_state_changed, timeout=WAIT, check_params_cb=lambda s: s == "unloaded"):
        page.unload_button.click()
    assert page.service.host.model is None and page.service.loaded is None
    assert page.model_label.text() == "No model loaded" and not page.unload_button.isEnabled()


def test_a_load_in_safe_mode_says_what_crashed_and_what_changed(
    qtbot, page: ChatPage, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The engine crashes until memory-mapping is off (the fault switch, any CPU): the window says the engine
    crashed and is trying again, then that the model runs in safe mode and what was turned off; chat works."""
    monkeypatch.setenv("HANGAR_TEST_ENGINE_CRASH", "load:mmap")
    notices: list[str] = []
    original = page.show_banner
    monkeypatch.setattr(page, "show_banner", lambda text, **kw: (notices.append(text), original(text, **kw)))
    load(qtbot, page, tiny_gguf)
    assert any("Trying again in safe mode" in n for n in notices), notices
    assert "Loaded in safe mode" in page.banner.text() and "memory-mapped" in page.banner.text()
    assert page.banner.isVisibleTo(page)
    page.new_chat()
    assert send(qtbot, page, "Hello").content
