"""The contract every engine keeps, run against the real engines in a real child process (``EngineHost``).

Subclasses provide the ``host`` (one engine process with the tiny model loaded, shared by the module) and
``model_spec``. Every generation is real; a tiny random model babbles, so tests use greedy decoding, fixed
seeds and ``ignore_eos`` where a test needs a known number of tokens.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from core.engine.host import EngineHost
from core.engine.protocol import ChatMessage, GenerationParams, ModelSpec
from core.errors import EngineError

HELLO = (ChatMessage("system", "You are terse."), ChatMessage("user", "hello world"))
GREEDY = GenerationParams(max_tokens=40, temperature=0.0, ignore_eos=True, seed=1)


def generate(host: EngineHost, params: GenerationParams, messages: Any = HELLO) -> tuple[Any, list[str]]:
    chunks: list[str] = []
    stats = host.generate_blocking(messages, params, on_chunk=chunks.append, timeout=120)
    return stats, chunks


class EngineContract:
    engine_name = ""

    def test_model_info(self, host: EngineHost, model_spec: ModelSpec) -> None:
        info = host.model
        assert info is not None
        assert info.engine == self.engine_name
        assert info.path == model_spec.path
        assert info.context_length == model_spec.options.context_length
        assert info.has_chat_template
        assert info.vocab_size == 512
        assert sum(info.allocated.values()) > 0  # real buffer sizes, not an estimate

    def test_generation_streams_and_reports_stats(self, host: EngineHost) -> None:
        stats, chunks = generate(host, GenerationParams(max_tokens=24, temperature=0.8, ignore_eos=True, seed=3))
        assert stats.completion_tokens == 24
        assert stats.stop_reason == "length"
        assert "".join(chunks) == stats.text
        assert len(chunks) > 1  # streamed, not delivered at the end
        assert stats.prompt_tokens == host.count_tokens(HELLO)
        assert stats.tokens_per_second > 0
        assert stats.time_to_first_token_ms > 0

    def test_max_tokens_is_respected(self, host: EngineHost) -> None:
        stats, _ = generate(host, GenerationParams(max_tokens=5, temperature=1.0, seed=2, ignore_eos=True))
        assert stats.completion_tokens == 5
        assert stats.stop_reason == "length"
        stats, _ = generate(host, GenerationParams(max_tokens=1, temperature=1.0, seed=2, ignore_eos=True))
        assert stats.completion_tokens == 1

    def test_greedy_is_deterministic_and_seed_controls_sampling(self, host: EngineHost) -> None:
        first, _ = generate(host, GREEDY)
        again, _ = generate(host, GREEDY)
        assert first.text == again.text and first.text
        sampled = GenerationParams(max_tokens=30, temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, ignore_eos=True)
        a, _ = generate(host, replace(sampled, seed=11))
        b, _ = generate(host, replace(sampled, seed=11))
        c, _ = generate(host, replace(sampled, seed=12))
        assert a.text == b.text
        assert a.text != c.text

    def test_stop_string_ends_the_reply_and_is_never_shown(self, host: EngineHost) -> None:
        reference, _ = generate(host, GREEDY)
        text = reference.text
        # A stop string from the middle of the greedy reply: the same reply must end right before it.
        start = next(i for i in range(len(text) // 3, len(text) - 3) if text.find(text[i : i + 3]) == i)
        stop = text[start : start + 3]
        stats, chunks = generate(host, replace(GREEDY, stop=("zzzq", stop)))
        assert stats.stop_reason == "stop"
        assert stats.text == text[:start]
        assert "".join(chunks) == text[:start]
        assert stop not in "".join(chunks)
        assert stats.completion_tokens < reference.completion_tokens

    def test_cancel_mid_stream_then_generate_again(self, host: EngineHost) -> None:
        chunks: list[str] = []

        def on_chunk(text: str) -> None:
            chunks.append(text)
            if len(chunks) == 3:
                host.cancel()

        params = GenerationParams(max_tokens=400, temperature=1.0, seed=5, ignore_eos=True)
        stats = host.generate_blocking(HELLO, params, on_chunk=on_chunk, timeout=120)
        assert stats.stop_reason == "cancelled"
        assert 3 <= stats.completion_tokens < 400
        assert host.model is not None  # cooperative stop: the model stays loaded
        stats, _ = generate(host, GenerationParams(max_tokens=4, ignore_eos=True, seed=1))
        assert stats.completion_tokens == 4

    def test_continue_extends_the_last_assistant_message(self, host: EngineHost) -> None:
        history = (*HELLO, ChatMessage("assistant", "hello world model"))
        closed = host.count_tokens(history)  # the assistant turn closed with an end-of-turn marker
        stats, _ = generate(host, replace(GREEDY, continue_last=True, max_tokens=3))
        assert stats.completion_tokens == 3
        cont, _ = generate(host, replace(GREEDY, continue_last=True, max_tokens=3), history)
        assert cont.prompt_tokens > stats.prompt_tokens
        assert cont.prompt_tokens < closed  # the open turn has no end marker and no new assistant header

    def test_conversation_longer_than_the_context_is_refused(self, host: EngineHost) -> None:
        long = (ChatMessage("user", "hello world " * 2000),)
        with pytest.raises(EngineError, match="does not fit"):
            generate(host, GenerationParams(max_tokens=4), long)
        # the refusal is a message, not a crash
        assert host.model is not None
        stats, _ = generate(host, GenerationParams(max_tokens=2, ignore_eos=True), HELLO)
        assert stats.completion_tokens == 2

    def test_cancelling_when_idle_is_harmless(self, host: EngineHost) -> None:
        host.cancel()
        stats, _ = generate(host, GenerationParams(max_tokens=2, ignore_eos=True))
        assert stats.completion_tokens == 2
