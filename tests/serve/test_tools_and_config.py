"""Pure parts of serve, no engine: reading tool calls, the grammars' schemas, and the server settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.engine.host import ChatMessage, GenerationParams
from core.errors import SettingsError, UsageError
from core.serve.config import ServeConfig, is_loopback, load_config, save_config
from core.tools import calling as tools

WEATHER = tools.Tool("weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}})
TIME = tools.Tool("time", "", {"type": "object", "properties": {}})


def test_auto_reads_calls_the_model_wrote() -> None:
    plan = tools.plan([WEATHER, TIME], tools.ToolChoice.AUTO)
    text = 'Let me look.\n<tool_call>\n{"name": "weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    content, calls = tools.read_calls(plan, text)
    assert content == "Let me look."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("weather", {"city": "Oslo"})]
    assert tools.read_calls(plan, "Just text.") == ("Just text.", ())
    # a call cut short by max_tokens is not a call
    assert tools.read_calls(plan, '<tool_call>{"name": "wea')[1] == ()


def test_forced_calls_get_a_grammar_and_auto_does_not() -> None:
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Weather?")]
    named = tools.plan([WEATHER, TIME], tools.ToolChoice.NAMED, "weather")
    out, params = tools.apply(named, messages, GenerationParams())
    assert params.response_format == "json_schema" and json.loads(params.json_schema) == WEATHER.parameters
    assert out[0].content.startswith("Be brief.") and '"weather"' in out[0].content and len(out) == 2
    required = tools.plan([WEATHER, TIME], tools.ToolChoice.REQUIRED)
    _, params = tools.apply(required, messages, GenerationParams())
    names = [branch["properties"]["name"]["const"] for branch in json.loads(params.json_schema)["anyOf"]]
    assert names == ["weather", "time"]
    _, params = tools.apply(tools.plan([WEATHER], tools.ToolChoice.AUTO), messages, GenerationParams())
    assert params.response_format == "text"
    unchanged, params = tools.apply(tools.plan([WEATHER], tools.ToolChoice.NONE), messages, GenerationParams())
    assert unchanged == messages


def test_a_named_function_must_exist() -> None:
    with pytest.raises(UsageError, match="not among the tools"):
        tools.plan([WEATHER], tools.ToolChoice.NAMED, "nope")
    with pytest.raises(UsageError):
        tools.plan([], tools.ToolChoice.REQUIRED)


def test_config_round_trip_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "serve.json"
    assert load_config(path) == ServeConfig()
    config = ServeConfig().replace(port=9000, idle_unload_seconds=120, cors_origins=("https://a.example",))
    save_config(path, config)
    assert load_config(path) == config
    path.write_text("{broken")
    assert load_config(path) == ServeConfig()
    with pytest.raises(SettingsError):
        ServeConfig().replace(port=70000)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
