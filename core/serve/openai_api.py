"""OpenAI's API: ``GET /v1/models``, ``POST /v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings``."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from core.engine.host import ChatMessage, EmbeddingsReady, GenerationStats, TokenLogprob
from core.serve.common import (
    Job,
    build_params,
    collect,
    finish_reason,
    images_of,
    merge_system,
    refuse_blind,
    start_generation,
    text_of,
    usage,
)
from core.serve.errors import ApiError
from core.serve.http import ApiContext, EventStream, sse
from core.serve.runner import Delta, raise_for
from core.serve.schemas import ChatCompletionBody, ChatMessageIn, CompletionBody, EmbeddingBody
from core.tools import calling as toolkit

router = APIRouter()


def _state(request: Request) -> ApiContext:
    state: ApiContext = request.app.state.hangar
    return state


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    state = _state(request)
    loaded = {s.name for s in state.pool.loaded()}
    data = [
        {"id": name, "object": "model", "created": int(added), "owned_by": "hangar", "engine": engine,
         "loaded": name in loaded}
        for name, engine, added in state.pool.available()
    ]  # fmt: skip
    return {"object": "list", "data": data}


@router.get("/v1/models/{name:path}")
async def get_model(name: str, request: Request) -> dict[str, Any]:
    state = _state(request)
    _, model = state.pool.resolve(name)
    return {"id": model.name, "object": "model", "created": 0, "owned_by": "hangar", "engine": model.engine}


# -- chat ---------------------------------------------------------------------------------------------------------
def chat_messages(items: list[ChatMessageIn]) -> list[ChatMessage]:
    messages = []
    for item in items:
        if item.role in ("system", "developer"):
            messages.append(ChatMessage("system", text_of(item.content)))
        elif item.role in ("tool", "function"):
            messages.append(ChatMessage("user", toolkit.result_text(text_of(item.content))))
        elif item.role == "assistant":
            parts = [text_of(item.content)] if item.content else []
            parts += [toolkit.call_text(c.function.name, c.function.arguments) for c in item.tool_calls or []]
            messages.append(ChatMessage("assistant", "\n".join(parts)))
        else:
            messages.append(ChatMessage("user", text_of(item.content, images=True), images=images_of(item.content)))
    return merge_system(messages)


def tool_plan(body: ChatCompletionBody) -> toolkit.ToolPlan:
    tools = [
        toolkit.Tool(t.function.name, t.function.description, t.function.parameters or {"type": "object"})
        for t in body.tools or []
    ]
    choice, name = body.tool_choice, None
    if choice is None:
        kind = toolkit.ToolChoice.AUTO if tools else toolkit.ToolChoice.NONE
    elif isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise ApiError(400, "tool_choice must be none, auto, required or a function.", param="tool_choice")
        kind = toolkit.ToolChoice(choice)
    else:
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise ApiError(400, 'Name the function: {"type": "function", "function": {"name": ...}}.')
        kind = toolkit.ToolChoice.NAMED
    return toolkit.plan(tools, kind, name)


def response_format(body: ChatCompletionBody) -> tuple[str, dict[str, Any] | None]:
    fmt = body.response_format or {}
    kind = fmt.get("type", "text")
    if kind == "text":
        return "text", None
    if kind == "json_object":
        return "json", None
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise ApiError(400, "response_format json_schema needs json_schema.schema, an object.")
        return "json_schema", schema
    raise ApiError(400, f"Unknown response_format type “{kind}”.", param="response_format")


def logprob_content(items: list[TokenLogprob]) -> list[dict[str, Any]]:
    return [
        {
            "token": lp.token,
            "logprob": lp.logprob,
            "bytes": list(lp.token.encode()),
            "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in lp.top],
        }
        for lp in items
    ]


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionBody, request: Request) -> Any:
    state = _state(request)
    job = Job(state, "chat/completions", body.model, body.stream)
    plan = tool_plan(body)
    kind, schema = response_format(body)
    try:
        chat = chat_messages(body.messages)  # a bad image is a 400 before anything loads
        refuse_blind(state, body.model, chat)
        pooled = await state.pool.get(body.model)
    except Exception as exc:
        raise job.fail(exc) from exc
    params = build_params(
        pooled, state,
        max_tokens=body.max_completion_tokens or body.max_tokens, stop=body.stop, temperature=body.temperature,
        top_p=body.top_p, top_k=body.top_k, min_p=body.min_p, seed=body.seed, presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty, repeat_penalty=body.repeat_penalty, response_format=kind,
        json_schema=schema, logprobs=body.logprobs, top_logprobs=body.top_logprobs or 0, ignore_eos=body.ignore_eos,
    )  # fmt: skip
    messages, params = toolkit.apply(plan, chat, params)
    stream = await start_generation(job, state, lambda host: host.generate(messages, params))
    ident, created = "chatcmpl-" + uuid.uuid4().hex[:24], int(time.time())
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return EventStream(_chat_events(stream, job, plan, ident, created, body, include_usage), job.left)
    text, logprobs, stats = await collect(stream, job, request)
    content, calls = toolkit.read_calls(plan, text)
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if calls:
        message["tool_calls"] = [_call_json(c) for c in calls]
    choice = {
        "index": 0,
        "message": message,
        "logprobs": {"content": logprob_content(logprobs)} if body.logprobs else None,
        "finish_reason": finish_reason(stats, tool_calls=bool(calls)),
    }
    return JSONResponse(_envelope(ident, created, body.model, "chat.completion", [choice], usage(stats)))


def _call_json(call: toolkit.ToolCall, index: int | None = None) -> dict[str, Any]:
    function = {"name": call.name, "arguments": call.arguments}
    data: dict[str, Any] = {"id": call.id, "type": "function", "function": function}
    if index is not None:
        data["index"] = index
    return data


def _envelope(ident: str, created: int, model: str, obj: str, choices: list[Any], use: Any = None) -> dict[str, Any]:
    data = {"id": ident, "object": obj, "created": created, "model": model, "choices": choices}
    if use is not None:
        data["usage"] = use
    data["system_fingerprint"] = "hangar"
    return data


async def _chat_events(
    stream: AsyncIterator[Delta | GenerationStats],
    job: Job,
    plan: toolkit.ToolPlan,
    ident: str,
    created: int,
    body: ChatCompletionBody,
    include_usage: bool,
) -> AsyncIterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None, use: Any = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return sse(_envelope(ident, created, body.model, "chat.completion.chunk", [choice], use))

    named = plan.choice == toolkit.ToolChoice.NAMED and plan.active
    buffered = plan.active and not named  # "auto" and "required": the calls are known only at the end
    call_id = toolkit.new_call_id()
    if named:
        call = toolkit.ToolCall(call_id, plan.name or "", "")
        yield chunk({"role": "assistant", "content": None, "tool_calls": [_call_json(call, 0)]})
    else:
        yield chunk({"role": "assistant", "content": ""})
    text: list[str] = []
    try:
        async for piece in stream:
            if isinstance(piece, GenerationStats):
                job.stats = piece
                continue
            text.append(piece.text)
            if buffered or (not piece.text and not piece.logprobs):
                continue
            logprobs = {"content": logprob_content(list(piece.logprobs))} if body.logprobs else None
            if named:
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece.text}}]}, logprobs=logprobs)
            else:
                yield chunk({"content": piece.text}, logprobs=logprobs)
    except Exception as exc:
        error = job.fail(exc)
        yield sse({"error": {"message": error.message, "type": error.kind, "code": error.status}})
        return
    stats = job.stats
    assert stats is not None
    calls: tuple[toolkit.ToolCall, ...] = ()
    if buffered:
        content, calls = toolkit.read_calls(plan, "".join(text))
        if content:
            yield chunk({"content": content})
        if calls:
            yield chunk({"tool_calls": [_call_json(c, i) for i, c in enumerate(calls)]})
    yield chunk({}, finish_reason(stats, tool_calls=named or bool(calls)), use=usage(stats))
    if include_usage:
        yield sse(_envelope(ident, created, body.model, "chat.completion.chunk", [], usage(stats)))
    yield sse("[DONE]")
    job.finish()


# -- completions --------------------------------------------------------------------------------------------------
@router.post("/v1/completions")
async def completions(body: CompletionBody, request: Request) -> Any:
    state = _state(request)
    job = Job(state, "completions", body.model, body.stream)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise ApiError(400, "Send one prompt per request.", param="prompt")
    prompt = prompts[0]
    try:
        pooled = await state.pool.get(body.model)
    except Exception as exc:
        raise job.fail(exc) from exc
    params = build_params(
        pooled, state,
        max_tokens=body.max_tokens, stop=body.stop, temperature=body.temperature, top_p=body.top_p,
        top_k=body.top_k, min_p=body.min_p, seed=body.seed, presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty, repeat_penalty=body.repeat_penalty,
        logprobs=body.logprobs is not None, top_logprobs=body.logprobs or 0, ignore_eos=body.ignore_eos,
    )  # fmt: skip
    stream = await start_generation(job, state, lambda host: host.complete(prompt, params))
    ident, created = "cmpl-" + uuid.uuid4().hex[:24], int(time.time())
    echo = prompt if body.echo else ""
    if body.stream:
        return EventStream(_completion_events(stream, job, ident, created, body, echo), job.left)
    text, logprobs, stats = await collect(stream, job, request)
    choice = {
        "text": echo + text,
        "index": 0,
        "logprobs": _completion_logprobs(logprobs) if body.logprobs is not None else None,
        "finish_reason": finish_reason(stats),
    }
    return JSONResponse(_envelope(ident, created, body.model, "text_completion", [choice], usage(stats)))


def _completion_logprobs(items: list[TokenLogprob]) -> dict[str, Any]:
    offsets, at = [], 0
    for lp in items:
        offsets.append(at)
        at += len(lp.token)
    return {
        "tokens": [lp.token for lp in items],
        "token_logprobs": [lp.logprob for lp in items],
        "top_logprobs": [dict(lp.top) for lp in items],
        "text_offset": offsets,
    }


async def _completion_events(
    stream: AsyncIterator[Delta | GenerationStats], job: Job, ident: str, created: int, body: CompletionBody, echo: str
) -> AsyncIterator[str]:
    def chunk(text: str, finish: str | None = None, logprobs: Any = None, use: Any = None) -> str:
        choice = {"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish}
        return sse(_envelope(ident, created, body.model, "text_completion", [choice], use))

    if echo:
        yield chunk(echo)
    try:
        async for piece in stream:
            if isinstance(piece, GenerationStats):
                job.stats = piece
            elif piece.text or piece.logprobs:
                lp = _completion_logprobs(list(piece.logprobs)) if body.logprobs is not None else None
                yield chunk(piece.text, logprobs=lp)
    except Exception as exc:
        error = job.fail(exc)
        yield sse({"error": {"message": error.message, "type": error.kind, "code": error.status}})
        return
    assert job.stats is not None
    yield chunk("", finish_reason(job.stats), use=usage(job.stats))
    yield sse("[DONE]")
    job.finish()


# -- embeddings ---------------------------------------------------------------------------------------------------
@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingBody, request: Request) -> Any:
    state = _state(request)
    job = Job(state, "embeddings", body.model, False)
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or len(texts) > 2048:
        raise ApiError(400, "Send between 1 and 2048 inputs.", param="input")
    result: EmbeddingsReady | None = None
    try:
        async for event in state.pool.run(body.model, lambda host: host.embed(texts)):
            if isinstance(event, EmbeddingsReady):
                result = event
            else:
                raise_for(event)
    except Exception as exc:
        raise job.fail(exc) from exc
    assert result is not None
    job.timer.mark_first()
    job.finish(prompt_tokens=result.prompt_tokens)
    data = []
    for index, vector in enumerate(result.vectors):
        values = np.asarray(vector, dtype=np.float32)
        if body.dimensions is not None:
            if body.dimensions > len(values):
                raise ApiError(400, f"This model's embeddings have {len(values)} dimensions.", param="dimensions")
            values = values[: body.dimensions]
            values = values / (np.linalg.norm(values) or 1.0)
        embedding: Any = (
            base64.b64encode(values.astype("<f4").tobytes()).decode()
            if body.encoding_format == "base64"
            else values.tolist()
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    use = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return {"object": "list", "data": data, "model": body.model, "usage": use}
