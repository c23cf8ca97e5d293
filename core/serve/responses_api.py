"""OpenAI's Responses API: ``POST /v1/responses``, text in and out, streamed or not, with function tools
(``function_call`` output items; a named function or ``required`` enforced by grammar)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from core.engine.host import ChatMessage, GenerationStats
from core.serve.common import (
    Job,
    build_params,
    collect,
    images_of,
    merge_system,
    refuse_blind,
    start_generation,
    text_of,
)
from core.serve.errors import ApiError
from core.serve.http import ApiContext, EventStream, sse
from core.serve.schemas import ResponsesBody
from core.tools import calling as toolkit

router = APIRouter()


def messages_of(body: ResponsesBody) -> list[ChatMessage]:
    messages = [ChatMessage("system", body.instructions)] if body.instructions else []
    if isinstance(body.input, str):
        messages.append(ChatMessage("user", body.input))
    else:
        for item in body.input:
            if item.type == "function_call":
                messages.append(ChatMessage("assistant", toolkit.call_text(item.name or "", item.arguments or "{}")))
            elif item.type == "function_call_output":
                messages.append(ChatMessage("user", toolkit.result_text(item.output or "")))
            else:
                role = "system" if item.role in ("system", "developer") else item.role
                user = role == "user"
                images = images_of(item.content) if user else ()
                messages.append(ChatMessage(role, text_of(item.content, images=user), images=images))
    return merge_system(messages)


def tool_plan(body: ResponsesBody) -> toolkit.ToolPlan:
    tools = [
        toolkit.Tool(str(t.get("name", "")), str(t.get("description") or ""), t.get("parameters") or {"type": "object"})
        for t in body.tools or []
        if t.get("type") == "function"
    ]
    choice = body.tool_choice
    if choice is None:
        return toolkit.plan(tools, toolkit.ToolChoice.AUTO if tools else toolkit.ToolChoice.NONE)
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise ApiError(400, "tool_choice must be none, auto, required or a function.", param="tool_choice")
        return toolkit.plan(tools, toolkit.ToolChoice(choice))
    return toolkit.plan(tools, toolkit.ToolChoice.NAMED, choice.get("name"))


def _call_item(call: toolkit.ToolCall, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": "fc_" + call.id.removeprefix("call_"),
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


def _output(plan: toolkit.ToolPlan, item_id: str, text: str) -> list[dict[str, Any]]:
    content, calls = toolkit.read_calls(plan, text)
    items = [_message(item_id, content or "")] if content or not calls else []
    return items + [_call_item(c) for c in calls]


def _usage(stats: GenerationStats) -> dict[str, Any]:
    return {
        "input_tokens": stats.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": stats.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
    }


def _response(
    ident: str, created: int, body: ResponsesBody, status: str, output: list[Any], use: Any
) -> dict[str, Any]:
    sampling = body.sampling_used
    return {
        "id": ident,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "model": body.model,
        "output": output,
        "parallel_tool_calls": False,
        "temperature": sampling.temperature if sampling else 1.0,
        "top_p": sampling.top_p if sampling else 1.0,
        "presence_penalty": sampling.presence_penalty if sampling else 0.0,
        "frequency_penalty": sampling.frequency_penalty if sampling else 0.0,
        "top_logprobs": 0,
        "completed_at": int(time.time()) if status in ("completed", "incomplete") else None,
        "previous_response_id": None,
        "truncation": "disabled",
        "reasoning": None,
        "max_tool_calls": None,
        "store": False,
        "background": False,
        "service_tier": "default",
        "metadata": {},
        "safety_identifier": None,
        "prompt_cache_key": None,
        "user": None,
        "tool_choice": body.tool_choice or ("auto" if body.tools else "none"),
        "tools": body.tools or [],
        "text": {"format": {"type": "text"}},
        "usage": use,
    }


def _message(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


@router.post("/v1/responses")
async def responses(body: ResponsesBody, request: Request) -> Any:
    state: ApiContext = request.app.state.hangar
    job = Job(state, "responses", body.model, body.stream)
    try:
        chat = messages_of(body)  # a bad image is a 400 before anything loads
        refuse_blind(state, body.model, chat)
        pooled = await state.pool.get(body.model)
    except Exception as exc:
        raise job.fail(exc) from exc
    params = build_params(
        pooled, state, max_tokens=body.max_output_tokens, temperature=body.temperature, top_p=body.top_p,
        top_k=body.top_k, min_p=body.min_p, seed=body.seed, presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty, repeat_penalty=body.repeat_penalty,
    )  # fmt: skip
    body.sampling_used = params
    plan = tool_plan(body)
    chat, params = toolkit.apply(plan, chat, params)
    stream = await start_generation(job, state, lambda host: host.generate(chat, params))
    ident, item_id, created = "resp_" + uuid.uuid4().hex[:24], "msg_" + uuid.uuid4().hex[:24], int(time.time())
    if body.stream:
        events = _tool_events if plan.active else _events
        return EventStream(events(stream, job, body, ident, item_id, created, plan), job.left)
    text, _, stats = await collect(stream, job, request)
    status = "incomplete" if stats.stop_reason == "length" else "completed"
    return JSONResponse(_response(ident, created, body, status, _output(plan, item_id, text), _usage(stats)))


class _Sequence:
    def __init__(self) -> None:
        self.number = 0

    def __call__(self, kind: str, data: dict[str, Any]) -> str:
        self.number += 1
        return sse({"type": kind, "sequence_number": self.number - 1, **data}, event=kind)


async def _tool_events(
    stream: AsyncIterator[Any],
    job: Job,
    body: ResponsesBody,
    ident: str,
    item_id: str,
    created: int,
    plan: toolkit.ToolPlan,
) -> AsyncIterator[str]:
    """With tools the output items are known only at the end: they are sent then, each with its events."""
    event = _Sequence()
    yield event("response.created", {"response": _response(ident, created, body, "in_progress", [], None)})
    yield event("response.in_progress", {"response": _response(ident, created, body, "in_progress", [], None)})
    text: list[str] = []
    try:
        async for piece in stream:
            if isinstance(piece, GenerationStats):
                job.stats = piece
            else:
                text.append(piece.text)
    except Exception as exc:
        error = job.fail(exc)
        failed = _response(ident, created, body, "failed", [], None)
        failed["error"] = {"code": "server_error", "message": error.message}
        yield event("response.failed", {"response": failed})
        return
    stats = job.stats
    assert stats is not None
    output = _output(plan, item_id, "".join(text))
    for index, item in enumerate(output):
        if item["type"] == "message":
            full = item["content"][0]["text"]
            where = {"item_id": item_id, "output_index": index, "content_index": 0}
            yield event("response.output_item.added", {"output_index": index, "item": {**item, "content": []}})
            yield event("response.content_part.added", {**where, "part": {**item["content"][0], "text": ""}})
            yield event("response.output_text.delta", {**where, "delta": full, "logprobs": []})
            yield event("response.output_text.done", {**where, "text": full, "logprobs": []})
            yield event("response.content_part.done", {**where, "part": item["content"][0]})
        else:
            where = {"item_id": item["id"], "output_index": index}
            started = {**item, "arguments": "", "status": "in_progress"}
            yield event("response.output_item.added", {"output_index": index, "item": started})
            yield event("response.function_call_arguments.delta", {**where, "delta": item["arguments"]})
            yield event("response.function_call_arguments.done", {**where, "arguments": item["arguments"]})
        yield event("response.output_item.done", {"output_index": index, "item": item})
    status = "incomplete" if stats.stop_reason == "length" else "completed"
    done = _response(ident, created, body, status, output, _usage(stats))
    yield event("response.completed" if status == "completed" else "response.incomplete", {"response": done})
    job.finish()


async def _events(
    stream: AsyncIterator[Any],
    job: Job,
    body: ResponsesBody,
    ident: str,
    item_id: str,
    created: int,
    plan: toolkit.ToolPlan,
) -> AsyncIterator[str]:
    event = _Sequence()

    yield event("response.created", {"response": _response(ident, created, body, "in_progress", [], None)})
    yield event("response.in_progress", {"response": _response(ident, created, body, "in_progress", [], None)})
    item = {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []}
    yield event("response.output_item.added", {"output_index": 0, "item": item})
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    yield event("response.content_part.added", {**where, "part": part})
    text: list[str] = []
    try:
        async for piece in stream:
            if isinstance(piece, GenerationStats):
                job.stats = piece
            elif piece.text:
                text.append(piece.text)
                yield event("response.output_text.delta", {**where, "delta": piece.text, "logprobs": []})
    except Exception as exc:
        error = job.fail(exc)
        failed = _response(ident, created, body, "failed", [], None)
        failed["error"] = {"code": "server_error", "message": error.message}
        yield event("response.failed", {"response": failed})
        return
    stats = job.stats
    assert stats is not None
    full = "".join(text)
    yield event("response.output_text.done", {**where, "text": full, "logprobs": []})
    yield event("response.content_part.done", {**where, "part": {**part, "text": full}})
    yield event("response.output_item.done", {"output_index": 0, "item": _message(item_id, full)})
    status = "incomplete" if stats.stop_reason == "length" else "completed"
    done = _response(ident, created, body, status, [_message(item_id, full)], _usage(stats))
    yield event("response.completed" if status == "completed" else "response.incomplete", {"response": done})
    job.finish()
