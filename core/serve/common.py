"""What the three APIs share: sampling parameters from a request and the model's defaults, starting a
generation so that early failures still become proper HTTP errors, and the request log entry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from core.engine.host import ChatMessage, EngineHost, GenerationParams, GenerationStats
from core.engine.images import NO_PROJECTOR, ChatImage, count_images, image_from_url
from core.errors import HangarError, UsageError
from core.serve.errors import ApiError, from_hangar
from core.serve.http import ApiContext
from core.serve.pool import PooledModel
from core.serve.runner import Delta, RequestRecord, Timer, stream_generation


def build_params(
    pooled: PooledModel,
    state: ApiContext,
    *,
    max_tokens: int | None,
    stop: str | list[str] | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    min_p: float | None = None,
    seed: int | None = None,
    presence_penalty: float | None = None,
    frequency_penalty: float | None = None,
    repeat_penalty: float | None = None,
    response_format: str = "text",
    json_schema: dict[str, Any] | None = None,
    logprobs: bool = False,
    top_logprobs: int = 0,
    ignore_eos: bool = False,
) -> GenerationParams:
    """The request's values where given, else the model's defaults (set in the window), else Hangar's."""
    base = state.pool.defaults.get(pooled.model_id).sampling  # read each time: edits apply at once
    wanted = max_tokens if max_tokens is not None else base.max_tokens
    stops = (stop,) if isinstance(stop, str) else tuple(stop or base.stop)
    if len(stops) > 16:
        raise ApiError(400, "At most 16 stop sequences are allowed.", param="stop")
    return GenerationParams(
        max_tokens=min(wanted, state.config.max_tokens_cap),
        temperature=base.temperature if temperature is None else temperature,
        top_p=base.top_p if top_p is None else top_p,
        top_k=base.top_k if top_k is None else top_k,
        min_p=base.min_p if min_p is None else min_p,
        repeat_penalty=base.repeat_penalty if repeat_penalty is None else repeat_penalty,
        seed=base.seed if seed is None else seed,
        stop=stops,
        response_format=response_format,
        json_schema=json.dumps(json_schema) if json_schema is not None else "",
        presence_penalty=presence_penalty or 0.0,
        frequency_penalty=frequency_penalty or 0.0,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
        ignore_eos=ignore_eos,
    )


@dataclass
class Job:
    """One request being answered: its timing and what goes to the request log."""

    state: ApiContext
    endpoint: str
    model: str
    stream: bool
    timer: Timer = field(default_factory=Timer)
    stats: GenerationStats | None = None
    recorded: bool = False

    def finish(self, status: int = 200, error: str = "", prompt_tokens: int | None = None) -> None:
        if self.recorded:
            return
        self.recorded = True
        stats = self.stats
        self.state.record(
            RequestRecord(
                at=time.time(),
                endpoint=self.endpoint,
                model=self.model,
                status=status,
                prompt_tokens=prompt_tokens if prompt_tokens is not None else (stats.prompt_tokens if stats else 0),
                completion_tokens=stats.completion_tokens if stats else 0,
                tokens_per_second=stats.tokens_per_second if stats else 0.0,
                time_to_first_token_ms=self.timer.ttft_ms if self.timer.first else 0.0,
                duration_ms=self.timer.elapsed_ms,
                stream=self.stream,
                error=error,
                engine_time_to_first_token_ms=stats.time_to_first_token_ms if stats else 0.0,
            )
        )

    def left(self) -> None:
        """The stream ended; if the answer was not finished, the client went away."""
        self.finish(499, "The client disconnected before the answer was complete.")

    def fail(self, error: Exception) -> ApiError:
        api = error if isinstance(error, ApiError) else from_hangar(error) if isinstance(error, HangarError) else None
        api = api or ApiError(500, f"The server failed: {type(error).__name__}.", kind="server_error")
        self.finish(api.status, api.message)
        return api


async def start_generation(
    job: Job, state: ApiContext, start: Callable[[EngineHost], int]
) -> AsyncGenerator[Delta | GenerationStats]:
    """Run the generation up to its first piece before answering, so that a prompt too long for the context, a
    load failure or an engine crash is an HTTP error rather than a broken stream. Returns the whole stream."""
    source = stream_generation(state.pool, job.model, start)
    try:
        first = await anext(source)
    except StopAsyncIteration:
        raise ApiError(500, "The engine ended the request without an answer.", kind="server_error") from None
    except Exception as exc:
        raise job.fail(exc) from exc
    job.timer.mark_first()

    async def whole() -> AsyncGenerator[Delta | GenerationStats]:
        try:
            yield first
            async for piece in source:
                yield piece
        finally:
            await source.aclose()

    return whole()


async def collect(
    stream: AsyncGenerator[Delta | GenerationStats], job: Job, request: Request | None = None
) -> tuple[str, list[Any], GenerationStats]:
    """A whole answer: text, log-probabilities and stats. If the client of ``request`` goes away first, the
    generation is cancelled (closing the stream cancels it in the engine) and nothing is answered."""
    task = asyncio.ensure_future(_gather(stream, job))
    while request is not None:
        done, _ = await asyncio.wait({task}, timeout=0.25)
        if done:
            break
        if await request.is_disconnected():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await stream.aclose()
            job.left()
            raise ApiError(499, "The client disconnected.", kind="cancelled")
    return await task


async def _gather(stream: AsyncIterator[Delta | GenerationStats], job: Job) -> tuple[str, list[Any], GenerationStats]:
    text: list[str] = []
    logprobs: list[Any] = []
    try:
        async for piece in stream:
            if isinstance(piece, Delta):
                text.append(piece.text)
                logprobs.extend(piece.logprobs)
            else:
                job.stats = piece
    except Exception as exc:
        raise job.fail(exc) from exc
    assert job.stats is not None
    job.finish()
    return "".join(text), logprobs, job.stats


#: Image parts: OpenAI chat's ``image_url`` and the Responses API's ``input_image`` (both carry a URL).
IMAGE_PARTS = ("image_url", "input_image")


def text_of(content: Any, *, images: bool = False) -> str:
    """Text of a message's content: a string, or a list of parts of which text is understood, and images are
    skipped where ``images`` (a user message: ``images_of`` reads them)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.type in ("text", "input_text", "output_text"):
            parts.append(part.text or "")
        elif part.type in IMAGE_PARTS and images:
            continue
        elif part.type in IMAGE_PARTS:
            raise ApiError(400, "Images go in user messages.", param="messages")
        else:
            raise ApiError(
                400, f"Content of type “{part.type}” is not supported; send text and images.", param="content"
            )
    return "".join(parts)


def images_of(content: Any) -> tuple[ChatImage, ...]:
    """The images of a user message's parts, each checked as the engine checks it (a 400 naming what is wrong)."""
    if content is None or isinstance(content, str):
        return ()
    found = []
    for part in content:
        if part.type not in IMAGE_PARTS:
            continue
        value = getattr(part, "image_url", None)
        url = value.get("url") if isinstance(value, dict) else value
        if not isinstance(url, str) or not url:
            what = "a file_id" if getattr(part, "file_id", None) else "no image_url"
            raise ApiError(400, f"An {part.type} part has {what}; send the image as a data: URL.", param="messages")
        found.append(image_from_data_url(url))
    return tuple(found)


def image_from_data_url(url: str) -> ChatImage:
    """A ``data:`` URL's image. Web addresses are not fetched and the server's own files are not read."""
    if not url.startswith("data:"):
        raise ApiError(
            400,
            "Images are taken as base64 data: URLs (data:image/png;base64,...); this server fetches no web "
            "addresses and reads no files.",
            param="messages",
        )
    try:
        return image_from_url(url)
    except UsageError as exc:
        raise ApiError(400, str(exc), param="messages") from None


def image_from_base64(data: str, media_type: str | None) -> ChatImage:
    """An Anthropic ``image`` block's base64 ``source``, checked."""
    return image_from_data_url(f"data:{media_type or 'image/png'};base64,{data}")


def refuse_blind(state: ApiContext, model_name: str, messages: list[ChatMessage]) -> None:
    """Images for a model without its projector: a 400 before the model is loaded for nothing."""
    if not count_images(messages):
        return
    _, model = state.pool.resolve(model_name)
    if model.engine != "llama" or model.projector is None:
        raise ApiError(400, NO_PROJECTOR, param="messages")


def merge_system(messages: list[ChatMessage]) -> list[ChatMessage]:
    """All system text first, in one message (many chat templates accept only one, at the start)."""
    system = [m.content for m in messages if m.role == "system" and m.content]
    rest = [m for m in messages if m.role != "system"]
    return ([ChatMessage("system", "\n\n".join(system))] if system else []) + rest


def finish_reason(stats: GenerationStats, *, tool_calls: bool = False) -> str:
    if tool_calls:
        return "tool_calls"
    return "length" if stats.stop_reason == "length" else "stop"


def usage(stats: GenerationStats) -> dict[str, int]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
    }
