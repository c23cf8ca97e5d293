"""MCP servers through the official SDK: a real stdio server lists its tools and answers calls; a tool that fails or
times out is reported as such; servers that do not start or speak garbage are named in one line while the others
still work; configurations with mistakes are refused in one line naming the server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from core.errors import UsageError
from core.tools.config import load_config, parse_config
from core.tools.mcp import McpTools, ToolError

SERVER = Path(__file__).resolve().parents[1] / "support" / "mcp_server.py"
pytestmark = pytest.mark.slow


def config_file(tmp_path: Path, servers: dict[str, object]) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


@pytest.fixture
def tools(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = config_file(
        tmp_path,
        {
            "kit": {"command": sys.executable, "args": [str(SERVER)], "timeout": 5},
            "missing": {"command": str(tmp_path / "no-such-program")},
            "chatty": {
                "command": sys.executable,
                "args": ["-c", "print('hello'); import time; time.sleep(30)"],
                "startup_timeout": 3,
            },
        },
    )
    hub = McpTools(load_config(path))
    yield hub
    hub.close()


def test_a_real_server_lists_and_runs_its_tools(tools: McpTools) -> None:
    specs = {t.name: t for t in tools.tools_of("kit")}
    assert set(specs) == {"add", "weather", "explode", "slow"}
    assert specs["add"].input_schema["required"] == ["a", "b"]
    assert specs["add"].openai()["function"]["parameters"]["properties"]["a"]["type"] == "integer"
    result = tools.call("kit", "add", {"a": 2, "b": 40})
    assert (result.text, result.is_error) == ("42", False)
    assert tools.call("kit", "weather", {"city": "Lisbon"}).text == "Sunny and 21 degrees in Lisbon."


def test_failing_and_slow_tools_are_reported_and_the_server_goes_on(tools: McpTools) -> None:
    failed = tools.call("kit", "explode", {"code": 7})
    assert failed.is_error and "explode" in failed.text
    with pytest.raises(ToolError, match="did not answer within 5 s"):
        tools.call("kit", "slow", {"seconds": 8})
    assert tools.call("kit", "add", {"a": 1, "b": 1}).text == "2"


def test_broken_servers_are_named_and_the_others_still_listed(tools: McpTools) -> None:
    listed = {s.server: s for s in tools.list_all()}
    assert listed["kit"].error is None and len(listed["kit"].tools) == 4
    assert listed["missing"].error and '"missing"' in listed["missing"].error
    assert listed["chatty"].error and "did not start within 3 s" in listed["chatty"].error
    with pytest.raises(ToolError, match="No MCP server called 'nope'"):
        tools.call("nope", "x", {})


def test_configuration_mistakes_are_refused_in_one_line(tmp_path: Path) -> None:
    cases = [
        ({"servers": {}}, 'no "mcpServers"'),
        ({"mcpServers": {"a": {}}}, 'either "command"'),
        ({"mcpServers": {"a": {"command": "x", "url": "http://h"}}}, 'either "command"'),
        ({"mcpServers": {"a": {"url": "file:///etc/passwd"}}}, "http(s)"),
        ({"mcpServers": {"a": {"command": "x", "args": "not a list"}}}, '"args"'),
        ({"mcpServers": {"a": {"command": "x", "env": {"K": 1}}}}, '"env"'),
        ({"mcpServers": {"bad name!": {"command": "x"}}}, "use a name"),
    ]
    for data, message in cases:
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_config(data)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_config(broken)
    secret = parse_config({"mcpServers": {"a": {"url": "http://h", "headers": {"Authorization": "Bearer s3cret"}}}})
    assert "s3cret" not in repr(secret[0])


def test_mcp_ls_command(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import main

    good = config_file(tmp_path, {"kit": {"command": sys.executable, "args": [str(SERVER)]}})
    assert main.main(["mcp", "ls", "--config", str(good), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["ok"] and {t["name"] for t in listed[0]["tools"]} == {"add", "weather", "explode", "slow"}
    bad = config_file(tmp_path, {"kit": {"command": sys.executable, "args": [str(SERVER)]}, "gone": {"command": "/x"}})
    assert main.main(["mcp", "ls", "--config", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "kit (stdio): 4 tools" in out and 'gone: The MCP server "gone"' in out


def test_mcp_ls_defaults_to_the_apps_own_configuration(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import main
    from core.paths import AppPaths
    from core.tools.config import app_config_path

    assert main.main(["mcp", "ls", "--json"]) == 1
    error = json.loads(capsys.readouterr().out)["error"]["message"]
    assert error.startswith("No MCP servers are set up yet: add them in Settings → MCP servers")

    own = app_config_path(AppPaths.under(data_dir).data_dir)
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_text(json.dumps({"mcpServers": {"kit": {"command": sys.executable, "args": [str(SERVER)]}}}))
    assert main.main(["mcp", "ls", "--json"]) == 0
    (server,) = json.loads(capsys.readouterr().out)
    assert server["server"] == "kit" and server["ok"] and len(server["tools"]) == 4
    # --config still names another file
    other = config_file(tmp_path, {})
    assert main.main(["mcp", "ls", "--config", str(other)]) == 0
    assert capsys.readouterr().out == f"No MCP servers in {other}.\n"
