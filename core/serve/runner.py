"""Engine events as an async stream of text deltas, and the request log.

``stream_generation`` turns the events of one engine request into ``Delta``s (text, with the log-probabilities
of the tokens that made it) and a final ``GenerationStats``; a failed request raises the matching ``HangarError``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from core.engine.host import (
    EngineCrashed,
    EngineEvent,
    EngineHost,
    GenerationFinished,
    GenerationStats,
    RequestFailed,
    TokenChunk,
    TokenLogprob,
)
from core.errors import EngineCrashedError, error_from_code
from core.serve.pool import ModelPool


@dataclass(frozen=True)
class Delta:
    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class RequestRecord:
    """One line of the request log. Never holds the prompt, the answer or the API key."""

    at: float  # wall clock, seconds
    endpoint: str
    model: str
    status: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_per_second: float = 0.0
    time_to_first_token_ms: float = 0.0
    duration_ms: float = 0.0
    stream: bool = False
    error: str = ""
    #: The engine's own time to first token (from the moment it took the request): the rest of
    #: ``time_to_first_token_ms`` is queueing, HTTP and process hops.
    engine_time_to_first_token_ms: float = 0.0


def raise_for(event: EngineEvent) -> None:
    if isinstance(event, RequestFailed):
        raise error_from_code(event.code, event.message)
    if isinstance(event, EngineCrashed):
        raise EngineCrashedError(f"The engine stopped while answering: {event.message}")


async def stream_generation(
    pool: ModelPool, model: str, start: Callable[[EngineHost], int]
) -> AsyncGenerator[Delta | GenerationStats]:
    pending: list[TokenLogprob] = []
    async for event in pool.run(model, start):
        if isinstance(event, TokenLogprob):
            pending.append(event)
        elif isinstance(event, TokenChunk):
            yield Delta(event.text, tuple(pending))
            pending.clear()
        elif isinstance(event, GenerationFinished):
            if pending:
                yield Delta("", tuple(pending))
            yield event.stats
        else:
            raise_for(event)


class Timer:
    """Request timing as the client sees it: time to first token from the moment the request arrived."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first: float | None = None

    def mark_first(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    @property
    def ttft_ms(self) -> float:
        return ((self.first or time.perf_counter()) - self.started) * 1000.0

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0
