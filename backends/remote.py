"""The "remote" engine: a model on an OpenAI-compatible server, chatted with through ``/v1/chat/completions``.

It runs in the engine child process like the local engines, so the chat window, the command line, stop,
regenerate and the statistics work the same way; nothing native runs here. Features a server does not take
(JSON schema, stop strings) are tried, and a refusal is said plainly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from core.engine.protocol import ChatMessage, GenerationParams, GenerationStats, ModelInfo, ModelSpec, RemoteTarget
from core.errors import EngineError, HangarError, NetworkError, NotFoundError, UsageError
from core.remote.http import RemoteHTTP
from core.remote.probe import probe

logger = logging.getLogger(__name__)


class RemoteEngine:
    def __init__(self) -> None:
        self._target: RemoteTarget | None = None
        self._http: RemoteHTTP | None = None
        self._context = 0

    def load(self, spec: ModelSpec, progress: Callable[[float | None], None]) -> ModelInfo:
        target = spec.remote
        if target is None:
            raise UsageError("A remote model needs a server (NAME:MODEL).")
        started = time.perf_counter()
        label = f"{target.server} ({target.url})"
        result = probe(target.url, api_key=target.api_key, timeout=target.timeout, label=label)
        if not result.answered:
            raise NetworkError(result.error or f"{label} did not answer.")
        # mlx-lm's server and llama-server answer to any name (they serve one model); the others list what they take.
        authoritative = result.kind not in ("mlx-lm", "llama-server")
        if authoritative and result.models and target.model not in result.models:
            shown = ", ".join(result.models[:10]) + (" …" if len(result.models) > 10 else "")
            raise NotFoundError(f"{target.server} has no model {target.model!r} (it offers: {shown}).")
        progress(1.0)
        self._target = target
        self._http = RemoteHTTP(target.url, api_key=target.api_key, timeout=target.timeout, label=label)
        context = result.details.get("context_length")
        self._context = int(context) if isinstance(context, int) else 0
        return ModelInfo(
            path=f"{target.server}:{target.model}",
            engine="remote",
            context_length=self._context or spec.options.context_length,
            vocab_size=0,
            has_chat_template=True,
            load_seconds=time.perf_counter() - started,
            device=f"remote: {target.server} ({result.kind})",
        )

    def generate(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        emit: Callable[[str], None],
        should_stop: Callable[[], bool],
    ) -> GenerationStats:
        http, target = self._require()
        body = self._body(target, messages, params)
        started = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        chunks = 0
        usage: dict[str, Any] = {}
        finish = "stop"
        try:
            for event in http.stream("/v1/chat/completions", body, should_stop):
                if isinstance(event, dict) and event.get("error"):
                    raise EngineError(f"{target.server}: {_message(event['error'])}")
                if isinstance(event, dict) and isinstance(event.get("usage"), dict):
                    usage = event["usage"]
                for choice in event.get("choices", []) if isinstance(event, dict) else []:
                    text = _choice_text(choice)
                    if text:
                        if first is None:
                            first = time.perf_counter()
                        pieces.append(text)
                        chunks += 1
                        emit(text)
                    if choice.get("finish_reason"):
                        finish = str(choice["finish_reason"])
        except HangarError as exc:
            raise self._explain(exc, params) from None
        ended = time.perf_counter()
        stopped = should_stop()
        completion = int(usage.get("completion_tokens") or chunks)
        decode = ended - (first or ended)
        return GenerationStats(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=completion,
            time_to_first_token_ms=((first or ended) - started) * 1000.0,
            tokens_per_second=(completion - 1) / decode if completion > 1 and decode > 0 else 0.0,
            stop_reason="cancelled" if stopped else ("length" if finish == "length" else "stop"),
            text="".join(pieces),
        )

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """llama-server counts exactly (``/tokenize``); elsewhere an estimate of about four characters a token."""
        http, _ = self._require()
        text = "\n".join(m.content for m in messages)
        try:
            answer = http.post_json("/tokenize", {"content": text}, timeout=min(http.timeout, 5.0))
            if isinstance(answer, dict) and isinstance(answer.get("tokens"), list):
                return len(answer["tokens"]) + 4 * len(messages)
        except HangarError:
            pass
        return len(text) // 4 + 4 * len(messages)

    def unload(self) -> None:
        self._target = self._http = None

    # -- helpers -----------------------------------------------------------------------------------------------
    def _require(self) -> tuple[RemoteHTTP, RemoteTarget]:
        if self._http is None or self._target is None:
            raise EngineError("No model is loaded. Load a model first.")
        return self._http, self._target

    @staticmethod
    def _body(target: RemoteTarget, messages: Sequence[ChatMessage], params: GenerationParams) -> dict[str, Any]:
        wire = [{"role": m.role, "content": m.content} for m in messages if m.role != "system" or m.content]
        if params.continue_last and wire and wire[-1]["role"] == "assistant":
            # OpenAI's API has no "continue this message"; ask for a continuation in words instead.
            wire.append({"role": "user", "content": "Continue exactly where you stopped."})
        body: dict[str, Any] = {
            "model": target.model,
            "messages": wire,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        # Sampling knobs that OpenAI's API lacks but llama-server, vLLM, mlx-lm and Ollama's /v1 understand.
        body.update(top_k=params.top_k, min_p=params.min_p, repeat_penalty=params.repeat_penalty)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)[:4]
        if params.response_format == "json":
            body["response_format"] = {"type": "json_object"}
        elif params.response_format == "json_schema" and params.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": params.json_schema, "strict": True},
            }
        return body

    def _explain(self, exc: HangarError, params: GenerationParams) -> HangarError:
        if params.response_format != "text" and "response_format" in str(exc):
            return EngineError(
                f"{self._target.server if self._target else 'The server'} does not support JSON output ({exc}).",
                hint="Turn JSON output off for this model.",
            )
        return exc


def _choice_text(choice: Any) -> str:
    if not isinstance(choice, dict):
        return ""
    delta = choice.get("delta") or choice.get("message") or {}
    content = delta.get("content") if isinstance(delta, dict) else None
    if isinstance(content, str):
        return content
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def _message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    return str(error)[:300]
