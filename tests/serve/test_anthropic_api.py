"""Anthropic's Messages API, driven by the official ``anthropic`` client against a real tiny GGUF."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def claude(base_url: str):  # type: ignore[no-untyped-def]
    import anthropic

    with anthropic.Anthropic(base_url=base_url.removesuffix("/v1"), api_key="unused", max_retries=0) as c:
        yield c


def test_message_with_system_and_blocks(claude, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    reply = claude.messages.create(
        model=served_models[0],
        max_tokens=10,
        system="You are terse.",
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]}],
        extra_body={"temperature": 0},
    )
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.stop_reason in ("end_turn", "max_tokens")
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    assert all(block.type == "text" for block in reply.content)


def test_streaming_events_match_the_message(claude, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    args = dict(
        model=served_models[0],
        max_tokens=12,
        messages=[{"role": "user", "content": "Hi"}],
        extra_body={"temperature": 0},
    )
    whole = claude.messages.create(**args)
    with claude.messages.stream(**args) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds and "message_delta" in kinds
    assert final.content[0].text == whole.content[0].text
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_forced_tool_use(claude, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    tool = {
        "name": "lookup",
        "description": "Look a word up",
        "input_schema": {
            "type": "object",
            "properties": {"word": {"type": "string", "maxLength": 12}},
            "required": ["word"],
        },
    }
    reply = claude.messages.create(
        model=served_models[0], max_tokens=100, extra_body={"temperature": 0}, tools=[tool],
        tool_choice={"type": "tool", "name": "lookup"}, messages=[{"role": "user", "content": "define cat"}],
    )  # fmt: skip
    assert reply.stop_reason == "tool_use"
    use = next(b for b in reply.content if b.type == "tool_use")
    assert use.name == "lookup" and isinstance(use.input["word"], str)
    # the tool's result goes back as a tool_result block and the model answers
    follow = claude.messages.create(
        model=served_models[0], max_tokens=8, extra_body={"temperature": 0}, tools=[tool],
        messages=[
            {"role": "user", "content": "define cat"},
            {"role": "assistant", "content": [b.model_dump() for b in reply.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "a small animal"}]},
        ],
    )  # fmt: skip
    assert follow.usage.input_tokens > reply.usage.input_tokens


def test_streamed_forced_tool_use(claude, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    tool = {"name": "count", "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}},
            "required": ["n"]}}  # fmt: skip
    with claude.messages.stream(
        model=served_models[0], max_tokens=40, extra_body={"temperature": 0}, tools=[tool],
        tool_choice={"type": "tool", "name": "count"}, messages=[{"role": "user", "content": "count"}],
    ) as stream:  # fmt: skip
        final = stream.get_final_message()
    use = final.content[0]
    assert use.type == "tool_use" and isinstance(use.input["n"], int)
    assert final.stop_reason == "tool_use"


def test_anthropic_errors_have_anthropic_shape(claude, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    import anthropic

    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    body = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert served_models[0] in body["error"]["message"]
