"""Screenshot states of the chat's tools and documents (``tests/tools/screenshots.py``): tool-call cards in every
state (waiting for approval, done with a long result folded, denied, failed, timed out), a reply naming its model and
citing its sources, a file attached to the next message, a citation's viewer, and the MCP servers editor."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from core.chat.documents import Attachment
from core.chat.store import MessageState
from core.chat.tools import CallState, ConversationOptions
from core.engine.protocol import GenerationStats

_FILES = Path(tempfile.mkdtemp(prefix="hangar-shot-docs-"))
NOTES = """# Sourdough bread
Feed the starter with flour and water the night before.
Knead the dough, let it rise for six hours,
then bake it at 250 degrees in a Dutch oven for forty minutes.

# Storing
Keep the loaf in a linen bag; it stays fresh for three days.
"""
FORECAST = "\n".join(
    f"{hour:02d}:00  {12 + hour % 9} °C  wind {3 + hour % 4} m/s  {'sun' if hour % 3 else 'clouds'}"
    for hour in range(24)
)


def _conversation(page: Any) -> int:
    chats, tools = page.service.chats, page.service.tool_store
    notes = _FILES / "bread.md"
    notes.write_text(NOTES)
    conv = chats.create(title="Weekend baking and weather", model="")
    tools.set_options(conv.id, ConversationOptions(("kit",), "auto", None))
    chats.add_message(conv.id, "user", "Will it rain in Lyon on Saturday, and how long must my dough rise?")
    reply = chats.add_message(conv.id, "assistant", "", MessageState.STREAMING, model="Qwen2.5-7B-Instruct-Q4_K_M")
    done = tools.add_call(reply.id, "weather", "forecast", {"city": "Lyon", "day": "Saturday"}, CallState.RUNNING)
    tools.update_call(done.id, CallState.DONE, result=FORECAST, seconds=0.42)
    denied = tools.add_call(reply.id, "files", "delete_file", {"path": "~/notes/old.md"}, CallState.PENDING)
    tools.update_call(denied.id, CallState.DENIED, result="The user denied this call.")
    failed = tools.add_call(reply.id, "kit", "explode", {"code": 7}, CallState.RUNNING)
    tools.update_call(
        failed.id, CallState.FAILED, result="Error executing tool explode: exploded with code 7", seconds=0.01
    )
    slow = tools.add_call(reply.id, "kit", "slow", {"seconds": 90}, CallState.RUNNING)
    tools.update_call(
        slow.id, CallState.TIMED_OUT, result='The MCP server "kit" did not answer within 30 s.', seconds=30.0
    )
    answer = (
        "Saturday in Lyon looks dry: sun most of the day, 12–20 °C. Your dough should rise for **six hours** "
        "before baking [1]."
    )
    stats = GenerationStats(812, 46, 31.5, 220.0, "stop", answer)
    chats.finish_message(reply.id, answer, MessageState.DONE, stats=stats)
    source = {
        "n": 1,
        "path": str(notes),
        "place": "lines 1-4",
        "page": None,
        "first_line": 1,
        "last_line": 4,
        "score": 0.03,
        "text": NOTES[:160],
    }
    chats.set_sources(reply.id, [source])
    chats.add_message(conv.id, "user", "And on Sunday?")
    second = chats.add_message(conv.id, "assistant", "", MessageState.STREAMING, model="Llama-3.2-3B-Instruct-Q4_K_M")
    tools.add_call(second.id, "weather", "forecast", {"city": "Lyon", "day": "Sunday"}, CallState.PENDING)
    return conv.id


def tools_and_sources(window: Any) -> None:
    """A reply that called tools (every state), names its model and cites a file; a call waiting for approval."""
    window.show_page("chat")
    page = window.pages["chat"]
    conv = _conversation(page)
    page.conversations.refresh(select=conv)
    page.open_conversation(conv)
    page._tools_line("kit: 4 tool(s) · weather: 1 tool(s)", bad=False)
    page._docs_line("bread.md is long (about 9,200 tokens): indexing it… 40%", bad=False)
    page.attach(Attachment("shopping-list.txt", str(_FILES / "shopping-list.txt"), "flour\nsalt\nyeast\n"))
    page.composer.setPlainText("What should I buy?")
    # the first reply's cards in view: a long result folded, denied, failed, timed out
    window.repaint()
    first = next(c for c in page.transcript.cards.values() if c.message.role == "assistant")
    page.transcript._follow = False
    page.transcript.verticalScrollBar().setValue(first.y() - 4)


def broken_server(window: Any) -> None:
    """A server that does not start: one line in place, the chat goes on."""
    page = window.pages["chat"]
    page.clear_attachments()
    page._tools_line('The MCP server "noise" did not start or stopped: Connection closed', bad=True)
    page._docs_line("photo.png: a binary file, not text.", bad=True)


def source_viewer(window: Any) -> object:
    from ui.pages.chat_viewer import SourceViewer

    page = window.pages["chat"]
    notes = _FILES / "bread.md"
    source = {"n": 1, "path": str(notes), "place": "lines 2-3", "first_line": 2, "last_line": 3, "text": ""}
    return SourceViewer(source, page)


def mcp_editor(window: Any) -> None:
    window.show_page("settings")
    editor = window.pages["settings"].mcp_servers
    config = {
        "mcpServers": {
            "kit": {"command": sys.executable, "args": ["mcp_server.py"]},
            "web": {"url": "http://127.0.0.1:8931/mcp"},
        }
    }
    editor.text.setPlainText(json.dumps(config, indent=2))
    from core.tools.mcp import ServerTools, ToolSpec

    kit = tuple(ToolSpec("kit", name, "", {}) for name in ("add", "weather", "explode", "slow"))
    refused = 'The MCP server "web" did not start or stopped: Connection refused'
    editor._checked([ServerTools("kit", "stdio", kit), ServerTools("web", "http", error=refused)])


SCENES = [
    ("chat-tools-sources", tools_and_sources),
    ("chat-tools-broken-server", broken_server),
    ("chat-source-viewer", source_viewer),
    ("settings-mcp-servers", mcp_editor),
]
