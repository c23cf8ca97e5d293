"""The OpenAI endpoints, driven by the official ``openai`` client against a real tiny GGUF."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_models_lists_the_library(client, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    ids = [m.id for m in client.models.list().data]
    assert ids == served_models


def test_chat_completion_answers_with_usage(client, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    reply = client.chat.completions.create(
        model=served_models[0], messages=[{"role": "user", "content": "Hello"}], max_tokens=8, temperature=0, seed=1
    )
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens == 8 or reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_stream_matches_the_whole_answer(client, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    args = dict(model=served_models[0], messages=[{"role": "user", "content": "Hi"}], max_tokens=12, temperature=0)
    whole = client.chat.completions.create(**args).choices[0].message.content
    chunks = list(client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_json_schema_answer_parses(client, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 8}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model=served_models[0],
        messages=[{"role": "user", "content": "A person"}],
        max_tokens=200,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    data = json.loads(reply.choices[0].message.content)
    assert set(data) == {"name", "age"} and isinstance(data["age"], int)


def test_named_tool_call_is_forced_by_grammar(client, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 10}, "days": {"type": "integer"}},
                "required": ["city", "days"],
            },
        },
    }
    reply = client.chat.completions.create(
        model=served_models[0],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=200,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments["city"], str) and isinstance(arguments["days"], int)


def test_required_tool_choice_picks_one_of_the_tools(client, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}}
        for n in ("alpha", "beta")
    ]
    reply = client.chat.completions.create(
        model=served_models[0], messages=[{"role": "user", "content": "go"}], tools=tools, tool_choice="required",
        max_tokens=60, temperature=0,
    )  # fmt: skip
    calls = reply.choices[0].message.tool_calls
    assert calls and calls[0].function.name in ("alpha", "beta")
    assert json.loads(calls[0].function.arguments) == {}


def test_streamed_named_tool_call(client, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object",
            "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}  # fmt: skip
    chunks = list(
        client.chat.completions.create(
            model=served_models[0], messages=[{"role": "user", "content": "x"}], tools=[tool],
            tool_choice={"type": "function", "function": {"name": "f"}}, max_tokens=40, temperature=0, stream=True,
        )
    )  # fmt: skip
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert isinstance(json.loads(arguments)["n"], int)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_auto_tools_are_described_to_the_model(client, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    tool = {"type": "function", "function": {"name": "lookup", "description": "Look a word up",
            "parameters": {"type": "object", "properties": {"word": {"type": "string"}}}}}  # fmt: skip
    ask = dict(model=served_models[0], messages=[{"role": "user", "content": "cat"}], max_tokens=4, temperature=0)
    plain = client.chat.completions.create(**ask)
    with_tools = client.chat.completions.create(**ask, tools=[tool])
    none = client.chat.completions.create(**ask, tools=[tool], tool_choice="none")
    assert with_tools.usage.prompt_tokens > plain.usage.prompt_tokens  # the tool is in the prompt
    assert none.usage.prompt_tokens == plain.usage.prompt_tokens
    # a random model answers in text or calls the tool; either way the answer is well formed
    message = with_tools.choices[0].message
    assert message.content is not None or message.tool_calls
    # an earlier call and its result go back into the conversation
    history = [
        {"role": "user", "content": "cat"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"word": "cat"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a small animal"},
    ]  # fmt: skip
    follow = client.chat.completions.create(**{**ask, "messages": history}, tools=[tool])
    assert follow.usage.prompt_tokens > with_tools.usage.prompt_tokens


def test_logprobs(client, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    reply = client.chat.completions.create(
        model=served_models[0], messages=[{"role": "user", "content": "Hi"}], max_tokens=5, temperature=0,
        logprobs=True, top_logprobs=3,
    )  # fmt: skip
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens
    for item in content:
        assert item.logprob <= 0 and len(item.top_logprobs) == 3
        # greedy: the chosen token is the most likely one
        assert item.logprob == pytest.approx(item.top_logprobs[0].logprob)


def test_completions_raw_prompt(client, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    reply = client.completions.create(model=served_models[0], prompt="Once upon a time", max_tokens=6, temperature=0)
    assert reply.object == "text_completion"
    assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens >= 4
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model=served_models[0], prompt="Once upon a time", max_tokens=6, temperature=0, stream=True
        )
        if c.choices
    )
    assert streamed == reply.choices[0].text


def test_embeddings(client, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    result = client.embeddings.create(model=served_models[0], input=["the cat", "a dog", "the cat"])
    vectors = [np.array(d.embedding) for d in result.data]
    assert len(vectors) == 3 and len(vectors[0]) == 64
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-4)
    assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    assert result.usage.prompt_tokens > 0
    floats = client.embeddings.create(model=served_models[0], input="the cat", encoding_format="float")
    assert np.allclose(floats.data[0].embedding, vectors[0], atol=1e-6)


def test_responses_api(client, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    response = client.responses.create(model=served_models[0], input="Hello", max_output_tokens=8, temperature=0)
    assert response.output_text
    assert response.usage.output_tokens > 0 and response.usage.input_tokens > 0
    events = list(
        client.responses.create(model=served_models[0], input="Hello", max_output_tokens=8, temperature=0, stream=True)
    )
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == response.output_text
    assert events[-1].type in ("response.completed", "response.incomplete")
    assert events[-1].response.usage.output_tokens == response.usage.output_tokens


def test_an_mlx_model_is_served_by_its_engine(app, server, tiny_hf_model) -> None:  # type: ignore[no-untyped-def]
    import openai

    from core.models.types import ImportMode

    pytest.importorskip("mlx_lm")
    entry = app.library.import_paths([tiny_hf_model], ImportMode.LINK).imported[0]
    assert entry.engine == "mlx"
    with openai.OpenAI(base_url=server.endpoint.base_url, api_key="x", max_retries=0) as client:
        reply = client.chat.completions.create(
            model=entry.name, messages=[{"role": "user", "content": "Hi"}], max_tokens=5, temperature=0
        )
        assert reply.usage.completion_tokens > 0
        with pytest.raises(openai.BadRequestError, match="cannot"):
            client.embeddings.create(model=entry.name, input="x")


def test_responses_function_tools(client, served_models: list[str]) -> None:  # type: ignore[no-untyped-def]
    tool = {
        "type": "function",
        "name": "lookup",
        "description": "Look a word up",
        "parameters": {"type": "object", "properties": {"word": {"type": "string", "maxLength": 10}},
                       "required": ["word"]},
    }  # fmt: skip
    ask = dict(model=served_models[0], input="define cat", tools=[tool], max_output_tokens=80, temperature=0)
    response = client.responses.create(**ask, tool_choice={"type": "function", "name": "lookup"})
    call = next(item for item in response.output if item.type == "function_call")
    assert call.name == "lookup" and isinstance(json.loads(call.arguments)["word"], str)
    events = list(client.responses.create(**ask, tool_choice="required", stream=True))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert done and isinstance(json.loads(done[0].arguments)["word"], str)
    assert events[-1].type == "response.completed"
    follow = client.responses.create(
        model=served_models[0], max_output_tokens=4, temperature=0, tools=[tool],
        input=[
            {"role": "user", "content": "define cat"},
            {"type": "function_call", "call_id": call.call_id, "name": "lookup", "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "a small animal"},
        ],
    )  # fmt: skip
    assert follow.usage.input_tokens > response.usage.input_tokens
