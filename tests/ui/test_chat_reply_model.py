"""Each reply names its model (field report #12 item 14): two replies by two models in one conversation show two
names, and the names are still there when the conversation is opened again. Real llama.cpp."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ui.bridge import Bridge
from ui.pages.chat import ChatPage

WAIT = 60_000


@pytest.fixture
def page(qtbot, app) -> Iterator[ChatPage]:  # type: ignore[no-untyped-def]
    pytest.importorskip("llama_cpp")
    widget = ChatPage(app, Bridge())
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    yield widget
    widget.shutdown()


def _load(qtbot, page: ChatPage, path: Path) -> None:  # type: ignore[no-untyped-def]
    page.add_model_path(str(path))
    with qtbot.waitSignal(page.model_state_changed, timeout=WAIT, check_params_cb=lambda s: s != "loading"):
        page.load_selected()
    assert page.service.loaded is not None, page.banner.text()


def _send(qtbot, page: ChatPage, text: str):  # type: ignore[no-untyped-def]
    page.composer.setPlainText(text)
    with qtbot.waitSignal(page.reply_finished, timeout=WAIT) as blocker:
        page.send_button.click()
    return blocker.args[0]


def _captions(page: ChatPage) -> list[str]:
    cards = sorted(page.transcript.cards.values(), key=lambda c: c.message.position)
    return [c.model_caption.text() for c in cards if c.message.role == "assistant" and c.model_caption.isVisibleTo(c)]


def test_two_models_in_one_conversation_name_their_own_replies(
    qtbot, page: ChatPage, tiny_gguf: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    other = shutil.copy(tiny_gguf, tmp_path / "second-model-Q8.gguf")
    _load(qtbot, page, tiny_gguf)
    first = _send(qtbot, page, "hello")
    conversation = page.conversation_id
    _load(qtbot, page, Path(other))
    assert page.conversation_id == conversation
    second = _send(qtbot, page, "and you?")
    assert first.model == tiny_gguf.stem and second.model == "second-model-Q8"
    assert _captions(page) == [tiny_gguf.stem, "second-model-Q8"]
    # user messages carry no caption
    users = [c for c in page.transcript.cards.values() if c.message.role == "user"]
    assert users and not any(c.model_caption.isVisibleTo(c) for c in users)

    # reopened (as after a restart): the names come from the store
    page.new_chat()
    page.open_conversation(conversation)
    assert _captions(page) == [tiny_gguf.stem, "second-model-Q8"]
