"""Tools in the window's chat (issue 15), with a real tiny llama.cpp model and the real MCP test server: the Tools
menu turns a server on; a grammar-forced call appears as a card waiting for approval; "Allow once" runs it and shows
the result and time before the final reply; "Deny" tells the model; "Always allow" is not asked again; the cards
come back when the conversation is reopened; a server that speaks garbage is one line and the chat goes on; the
MCP servers editor in Settings refuses bad JSON in one line and lists each server's tools."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.chat.tools import CallState
from ui.bridge import Bridge
from ui.pages.chat import ChatPage
from ui.pages.chat_tool_card import ToolCallCard

WAIT = 60_000
SERVER = Path(__file__).resolve().parents[1] / "support" / "mcp_server.py"
pytestmark = pytest.mark.slow


def write_config(app) -> None:  # type: ignore[no-untyped-def]
    config = {
        "mcpServers": {
            "kit": {"command": sys.executable, "args": [str(SERVER)]},
            "noise": {"command": sys.executable, "args": ["-c", "print('not MCP at all')"], "startup_timeout": 5},
        }
    }
    (app.paths.data_dir / "mcp.json").write_text(json.dumps(config))


@pytest.fixture
def page(qtbot, app, tiny_gguf: Path) -> Iterator[ChatPage]:  # type: ignore[no-untyped-def]
    pytest.importorskip("llama_cpp")
    write_config(app)
    widget = ChatPage(app, Bridge())
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    widget.add_model_path(str(tiny_gguf))
    with qtbot.waitSignal(widget.model_state_changed, timeout=WAIT, check_params_cb=lambda s: s != "loading"):
        widget.load_selected()
    assert widget.service.loaded is not None, widget.banner.text()
    widget.new_chat()
    yield widget
    widget.shutdown()


def _use_kit_add(qtbot, page: ChatPage) -> None:  # type: ignore[no-untyped-def]
    page.tools_action("kit").trigger()
    assert page.tools_button.text() == "Tools (1)"
    qtbot.waitUntil(lambda: "kit: 4 tool(s)" in page.tools_status.text(), timeout=WAIT)
    page._fill_tools_menu()  # the menu as it is shown next: the server's tools are known now
    forced = next(a for a in page.tools_menu.actions() if a.data() == "add")
    assert forced.text() == "The model must call add"
    forced.trigger()
    assert page.chat_options.tool_choice == "add"


def _cards(page: ChatPage) -> list[ToolCallCard]:
    return [tc for card in page.transcript.cards.values() for tc in card.tool_cards.values()]


def _send_and_answer(qtbot, page: ChatPage, button: str | None):  # type: ignore[no-untyped-def]
    before = len(_cards(page))
    page.composer.setPlainText("What is 2 + 40?")
    with qtbot.waitSignal(page.reply_finished, timeout=WAIT) as blocker:
        page.send_button.click()
        if button is not None:
            qtbot.waitUntil(lambda: len(_cards(page)) > before and _cards(page)[-1].approval.isVisible(), timeout=WAIT)
            card = _cards(page)[-1]
            assert card.entry.state == CallState.PENDING and card.state.text() == "waiting for your answer"
            assert '"a"' in card.arguments.text()  # the arguments, as pretty JSON
            getattr(card, button).click()
    return blocker.args[0], _cards(page)[-1]


def test_allow_once_runs_the_tool_and_the_model_answers(qtbot, page: ChatPage) -> None:  # type: ignore[no-untyped-def]
    _use_kit_add(qtbot, page)
    reply, card = _send_and_answer(qtbot, page, "allow_button")
    assert reply.state == "done" and reply.completion_tokens
    qtbot.waitUntil(lambda: card.entry.state == CallState.DONE, timeout=WAIT)
    arguments = card.entry.arguments
    assert card.result.text() == str(arguments["a"] + arguments["b"]) and card.expanded  # short: shown open
    assert card.seconds.text().endswith(" s") and not card.approval.isVisible()
    assert card.title.text() == "Tool: add  ·  kit" and card.state.text() == "done"

    # reopened: the card comes back from the store, with its result
    conversation = page.conversation_id
    page.new_chat()
    page.open_conversation(conversation)
    (again,) = _cards(page)
    assert again.entry.state == CallState.DONE and again.result.text() == card.result.text()
    assert page.tools_button.text() == "Tools (1)"  # the conversation's tools come back too


def test_deny_then_always_allow(qtbot, page: ChatPage) -> None:  # type: ignore[no-untyped-def]
    _use_kit_add(qtbot, page)
    reply, card = _send_and_answer(qtbot, page, "deny_button")
    assert reply.state == "done"
    qtbot.waitUntil(lambda: card.entry.state == CallState.DENIED, timeout=WAIT)
    assert card.state.text() == "denied" and card.entry.result == "The user denied this call."

    reply, card = _send_and_answer(qtbot, page, "always_button")
    assert card.always_button.text() == "Always allow add"
    qtbot.waitUntil(lambda: card.entry.state == CallState.DONE, timeout=WAIT)
    assert page.service.tool_store.always_allowed() == {"kit__add"}

    # not asked again: the call runs at once
    reply, card = _send_and_answer(qtbot, page, None)
    assert card.entry.state == CallState.DONE and len(_cards(page)) == 3


def test_a_server_that_speaks_garbage_is_one_line_and_chat_goes_on(qtbot, page: ChatPage) -> None:  # type: ignore[no-untyped-def]
    page.tools_action("noise").trigger()
    qtbot.waitUntil(
        lambda: "noise" in page.tools_status.text() and "Starting" not in page.tools_status.text(), timeout=WAIT
    )
    assert "did not start" in page.tools_status.text() and "\n" not in page.tools_status.text()
    page.composer.setPlainText("hello")
    with qtbot.waitSignal(page.reply_finished, timeout=WAIT) as blocker:
        page.send_button.click()
    assert blocker.args[0].state == "done" and not page.banner.isVisible()


def test_mcp_servers_editor_in_settings(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    from ui.pages.settings import SettingsPage

    write_config(app)
    settings = SettingsPage(app, Bridge())
    qtbot.addWidget(settings)
    editor = settings.mcp_servers
    assert '"kit"' in editor.text.toPlainText()
    original = (app.paths.data_dir / "mcp.json").read_text()
    editor.text.setPlainText('{"mcpServers": {"x": ')
    editor.save_button.click()
    assert editor.status.text().startswith("Not valid JSON") and "\n" not in editor.status.text()
    editor.text.setPlainText('{"servers": {}}')
    editor.save_button.click()
    assert "mcpServers" in editor.status.text()
    assert (app.paths.data_dir / "mcp.json").read_text() == original  # nothing written while it is wrong

    editor.text.setPlainText(original)
    editor.check_button.click()
    qtbot.waitUntil(lambda: "✓ kit" in editor.status.text() and "✗ noise" in editor.status.text(), timeout=WAIT)
    assert "add, weather, explode, slow" in editor.status.text()
    assert editor.status.text().count("<br>") == 1  # one line per server
