"""Tools in chat on the real llama engine and a real MCP server: a forced call's arguments always parse against the
tool's schema (grammar), the call runs only when approved ("always" is remembered, "deny" tells the model), a tool
that fails is reported to the model and the loop goes on, the round limit ends the turn in words, and ``chat
--mcp-config ... --json`` carries every call with its arguments and result."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import main
from core.engine.host import EngineHost
from core.engine.protocol import ChatMessage, GenerationParams, LoadOptions, ModelSpec
from core.tools.calling import ToolChoice
from core.tools.config import parse_config
from core.tools.loop import Approval, ToolSession, run_turn
from core.tools.mcp import McpTools

SERVER = Path(__file__).resolve().parents[1] / "support" / "mcp_server.py"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tools() -> Iterator[McpTools]:
    hub = McpTools(parse_config({"mcpServers": {"kit": {"command": sys.executable, "args": [str(SERVER)]}}}))
    yield hub
    hub.close()


@pytest.fixture
def host(app, tiny_gguf: Path) -> EngineHost:  # type: ignore[no-untyped-def]
    engine = app.new_engine_host("tools")
    engine.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=8192)))
    return engine


PARAMS = GenerationParams(max_tokens=24, temperature=0.8, seed=7)
QUESTION = [ChatMessage("user", "What is 2 + 40?")]


def test_a_forced_call_parses_runs_and_its_result_reaches_the_model(host: EngineHost, tools: McpTools) -> None:
    asked: list[tuple[str, str]] = []

    def approve(server: str, tool: str, arguments: object) -> Approval:
        asked.append((server, tool))
        return Approval.ONCE

    session = ToolSession(tools, tools.tools_of("kit"), approve)
    turn = run_turn(host, QUESTION, PARAMS, session, choice=ToolChoice.NAMED, name="add")
    (call,) = turn.calls
    assert asked == [("kit", "add")] and call.approved and not call.is_error
    assert isinstance(call.arguments["a"], int) and isinstance(call.arguments["b"], int)
    assert call.result == str(call.arguments["a"] + call.arguments["b"])
    assert turn.rounds == 2 and not turn.stopped_at_limit
    # the second round read the call and its result: the prompt grew by them
    assert turn.stats.prompt_tokens > 0


def test_deny_and_always_are_honoured(host: EngineHost, tools: McpTools) -> None:
    denied = ToolSession(tools, tools.tools_of("kit"), lambda *_: Approval.DENY)
    turn = run_turn(host, QUESTION, PARAMS, denied, choice=ToolChoice.NAMED, name="add")
    assert turn.calls[0].approved is False and turn.calls[0].result == "The user denied this call."

    asked: list[str] = []

    def always(server: str, tool: str, arguments: object) -> Approval:
        asked.append(tool)
        return Approval.ALWAYS

    session = ToolSession(tools, tools.tools_of("kit"), always)
    for _ in range(2):
        run_turn(host, QUESTION, PARAMS, session, choice=ToolChoice.NAMED, name="add")
    assert asked == ["add"]  # asked once, then remembered for the conversation


def test_a_failing_tool_is_reported_and_the_round_limit_ends_in_words(host: EngineHost, tools: McpTools) -> None:
    session = ToolSession(tools, tools.tools_of("kit"), lambda *_: Approval.ONCE)
    turn = run_turn(host, QUESTION, PARAMS, session, choice=ToolChoice.NAMED, name="explode", max_rounds=1)
    assert turn.calls[0].is_error and "explode" in turn.calls[0].result
    assert turn.stopped_at_limit and turn.rounds == 1 and turn.stats.completion_tokens > 0


def test_chat_command_with_mcp_tools(tiny_gguf: Path, data_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"kit": {"command": sys.executable, "args": [str(SERVER)]}}}))
    argv = ["chat", str(tiny_gguf), "--prompt", "2+40?", "--mcp-config", str(config), "--max-tokens", "16", "--json"]
    assert main.main([*argv, "--tool-choice", "add", "--seed", "3"]) == 0
    reply = json.loads(capsys.readouterr().out)
    (call,) = reply["tool_calls"]
    assert call["server"] == "kit" and call["tool"] == "add" and call["approved"]
    assert call["result"] == str(call["arguments"]["a"] + call["arguments"]["b"])

    assert main.main([*argv, "--tool-choice", "nope"]) == 2
    assert "No tool called 'nope'" in capsys.readouterr().err
    assert main.main(["chat", str(tiny_gguf), "--prompt", "x", "--tool-choice", "add"]) == 2
    assert "--mcp-config" in capsys.readouterr().err


def test_chat_tools_uses_the_apps_mcp_servers_and_plain_chat_starts_none(  # type: ignore[no-untyped-def]
    tiny_gguf: Path, data_dir: Path, tmp_path: Path, capsys
) -> None:
    from core.paths import AppPaths
    from core.tools.config import app_config_path

    argv = ["chat", str(tiny_gguf), "--prompt", "2+40?", "--max-tokens", "16", "--seed", "3", "--json"]
    assert main.main([*argv, "--tools"]) == 1  # no mcp.json yet: one line, before the model loads
    assert "No MCP servers are set up yet" in json.loads(capsys.readouterr().out)["error"]["message"]

    own = app_config_path(AppPaths.under(data_dir).data_dir)
    own.parent.mkdir(parents=True, exist_ok=True)
    started = tmp_path / "started"  # a server that leaves a mark when it is started
    marker = (
        f"import pathlib, runpy; pathlib.Path({str(started)!r}).touch();"
        f" runpy.run_path({str(SERVER)!r}, run_name='__main__')"
    )
    own.write_text(json.dumps({"mcpServers": {"kit": {"command": sys.executable, "args": ["-c", marker]}}}))

    assert main.main(argv) == 0
    assert "tool_calls" not in json.loads(capsys.readouterr().out) and not started.exists()

    assert main.main([*argv, "--tools", "--tool-choice", "add"]) == 0
    (call,) = json.loads(capsys.readouterr().out)["tool_calls"]
    assert call["server"] == "kit" and call["tool"] == "add" and started.exists()


def test_tools_and_documents_without_a_prompt_are_refused_in_one_line(  # type: ignore[no-untyped-def]
    tiny_gguf: Path, data_dir: Path, tmp_path: Path, capsys
) -> None:
    """The interactive chat has neither (the window does): asked for, they are refused before the model loads,
    never silently ignored."""
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {}}))
    for extra in (["--mcp-config", str(config)], ["--docs", "notes"]):
        assert main.main(["chat", str(tiny_gguf), *extra, "--json"]) != 0
        assert "--prompt" in json.loads(capsys.readouterr().out)["error"]["message"]
