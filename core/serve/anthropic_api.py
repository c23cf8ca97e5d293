"""Anthropic's Messages API: ``POST /v1/messages`` (system, content blocks, tool use, streaming events)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from core.engine.host import ChatMessage, GenerationStats
from core.engine.images import ChatImage
from core.serve.common import (
    Job,
    build_params,
    collect,
    image_from_base64,
    merge_system,
    refuse_blind,
    start_generation,
)
from core.serve.errors import ApiError
from core.serve.http import ApiContext, EventStream, sse
from core.serve.schemas import AnthropicBlock, MessagesBody
from core.tools import calling as toolkit

router = APIRouter()


def _text(content: str | list[AnthropicBlock] | None, *, images: bool = False) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if block.type == "text":
            parts.append(block.text or "")
        elif block.type == "image" and images:
            continue  # read by _images
        elif block.type == "image":
            raise ApiError(400, "Images go in user messages.")
        elif block.type == "tool_use":
            parts.append(toolkit.call_text(block.name or "", block.input or {}))
        elif block.type == "tool_result":
            parts.append(toolkit.result_text(_text(block.content)))
        else:
            raise ApiError(400, f"Content blocks of type “{block.type}” are not supported; send text and images.")
    return "\n".join(parts)


def _images(content: str | list[AnthropicBlock]) -> tuple[ChatImage, ...]:
    """A user message's ``image`` blocks (``source``: ``{"type": "base64", "media_type", "data"}``), checked."""
    found = []
    for block in content if isinstance(content, list) else ():
        if block.type != "image":
            continue
        source = getattr(block, "source", None)
        if not isinstance(source, dict) or source.get("type") != "base64" or not isinstance(source.get("data"), str):
            kind = source.get("type") if isinstance(source, dict) else None
            raise ApiError(
                400,
                f"An image block's source must be base64 data, not {kind or 'missing'}; this server fetches no web "
                "addresses and reads no files.",
            )
        found.append(image_from_base64(source["data"], source.get("media_type")))
    return tuple(found)


def messages_of(body: MessagesBody) -> list[ChatMessage]:
    messages = [ChatMessage("system", _text(body.system))] if body.system else []
    for m in body.messages:
        user = m.role == "user"
        messages.append(ChatMessage(m.role, _text(m.content, images=user), images=_images(m.content) if user else ()))
    return merge_system(messages)


def tool_plan(body: MessagesBody) -> toolkit.ToolPlan:
    tools = [toolkit.Tool(t.name, t.description, t.input_schema) for t in body.tools or []]
    choice = body.tool_choice or {"type": "auto"}
    kind = {"auto": "auto", "any": "required", "tool": "named", "none": "none"}.get(str(choice.get("type")))
    if kind is None:
        raise ApiError(400, "tool_choice.type must be auto, any, tool or none.")
    return toolkit.plan(tools, toolkit.ToolChoice(kind), choice.get("name"))


def _stop_reason(stats: GenerationStats, tool_use: bool, stop_sequence: str | None) -> str:
    if tool_use:
        return "tool_use"
    if stats.stop_reason == "length":
        return "max_tokens"
    return "stop_sequence" if stop_sequence else "end_turn"


def _which_stop(text: str, stops: list[str] | None, stats: GenerationStats) -> str | None:
    """The engine cuts the stop sequence off; the request's stop sequence that ended it, if one did."""
    if stats.stop_reason != "stop" or not stops:
        return None
    return stops[0] if len(stops) == 1 else None


@router.post("/v1/messages")
async def messages(body: MessagesBody, request: Request) -> Any:
    state: ApiContext = request.app.state.hangar
    job = Job(state, "messages", body.model, body.stream)
    plan = tool_plan(body)
    try:
        chat = messages_of(body)  # a bad image is a 400 before anything loads
        refuse_blind(state, body.model, chat)
        pooled = await state.pool.get(body.model)
    except Exception as exc:
        raise job.fail(exc) from exc
    params = build_params(
        pooled, state, max_tokens=body.max_tokens, stop=body.stop_sequences, temperature=body.temperature,
        top_p=body.top_p, top_k=body.top_k,
    )  # fmt: skip
    chat, params = toolkit.apply(plan, chat, params)
    stream = await start_generation(job, state, lambda host: host.generate(chat, params))
    ident = "msg_" + uuid.uuid4().hex[:24]
    if body.stream:
        return EventStream(_events(stream, job, plan, ident, body), job.left)
    text, _, stats = await collect(stream, job, request)
    content, calls = toolkit.read_calls(plan, text)
    blocks: list[dict[str, Any]] = [{"type": "text", "text": content, "citations": None}] if content else []
    blocks += [{"type": "tool_use", "id": _tool_id(c), "name": c.name, "input": c.arguments_object()} for c in calls]
    stop = _which_stop(text, body.stop_sequences, stats)
    return JSONResponse(
        {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "model": body.model,
            "content": blocks,
            "stop_reason": _stop_reason(stats, bool(calls), stop),
            "stop_sequence": stop,
            "stop_details": None,
            "container": None,
            "usage": _usage(stats),
        }
    )


def _usage(stats: GenerationStats) -> dict[str, Any]:
    return {
        "input_tokens": stats.prompt_tokens,
        "output_tokens": stats.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "server_tool_use": None,
        "service_tier": "standard",
        "inference_geo": None,
        "output_tokens_details": None,
    }


def _tool_id(call: toolkit.ToolCall) -> str:
    return "toolu_" + call.id.removeprefix("call_")


async def _events(
    stream: AsyncIterator[Any], job: Job, plan: toolkit.ToolPlan, ident: str, body: MessagesBody
) -> AsyncIterator[str]:
    def event(kind: str, data: dict[str, Any]) -> str:
        return sse({"type": kind, **data}, event=kind)

    start: dict[str, Any] = {
        "id": ident, "type": "message", "role": "assistant", "model": body.model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0},
    }  # fmt: skip
    yield event("message_start", {"message": start})
    named = plan.active and plan.choice == toolkit.ToolChoice.NAMED
    buffered = plan.active and not named
    index = 0
    if named:
        call_id = "toolu_" + uuid.uuid4().hex[:24]
        block: dict[str, Any] = {"type": "tool_use", "id": call_id, "name": plan.name, "input": {}}
        yield event("content_block_start", {"index": 0, "content_block": block})
    elif not buffered:
        yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    yield event("ping", {})
    text: list[str] = []
    try:
        async for piece in stream:
            if isinstance(piece, GenerationStats):
                job.stats = piece
                continue
            text.append(piece.text)
            if buffered or not piece.text:
                continue
            delta = (
                {"type": "input_json_delta", "partial_json": piece.text}
                if named
                else {"type": "text_delta", "text": piece.text}
            )
            yield event("content_block_delta", {"index": 0, "delta": delta})
    except Exception as exc:
        error = job.fail(exc)
        yield event("error", {"error": {"type": "api_error", "message": error.message}})
        return
    stats = job.stats
    assert stats is not None
    calls: tuple[toolkit.ToolCall, ...] = ()
    if buffered:
        content, calls = toolkit.read_calls(plan, "".join(text))
        if content:
            yield event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
            yield event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": content}})
            yield event("content_block_stop", {"index": index})
            index += 1
        for call in calls:
            block = {"type": "tool_use", "id": _tool_id(call), "name": call.name, "input": {}}
            yield event("content_block_start", {"index": index, "content_block": block})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(call.arguments_object())}
            yield event("content_block_delta", {"index": index, "delta": delta})
            yield event("content_block_stop", {"index": index})
            index += 1
    else:
        yield event("content_block_stop", {"index": 0})
    stop = _which_stop("".join(text), body.stop_sequences, stats)
    delta = {"stop_reason": _stop_reason(stats, named or bool(calls), stop), "stop_sequence": stop}
    use = {"input_tokens": stats.prompt_tokens, "output_tokens": stats.completion_tokens}
    yield event("message_delta", {"delta": delta, "usage": use})
    yield event("message_stop", {})
    job.finish()
