"""The engine host with the real llama.cpp engine in a real child process: load, stream, cancel, crash."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from backends.worker import serve
from core.chat.session import ChatSession, ReplyFinished
from core.chat.store import ChatSettings, ChatStore, MessageState
from core.engine.host import EngineHost, EngineState
from core.engine.protocol import (
    ChatMessage,
    EngineCrashed,
    GenerationFinished,
    GenerationParams,
    LoadOptions,
    ModelSpec,
    TokenChunk,
)
from core.errors import CancelledError, EngineCrashedError, ModelFileError
from core.store import Store


@pytest.fixture
def host():  # type: ignore[no-untyped-def]
    engine = EngineHost(serve)
    yield engine
    engine.shutdown()


def _spec(path: Path) -> ModelSpec:
    return ModelSpec("llama", str(path), LoadOptions(context_length=2048, threads=1))


LONG = GenerationParams(max_tokens=1900, ignore_eos=True, temperature=1.0, seed=1)


def test_load_generate_and_report_real_allocations(host: EngineHost, tiny_gguf: Path) -> None:
    info = host.load_blocking(_spec(tiny_gguf))
    assert info.context_length == 2048
    assert info.has_chat_template
    assert any(key.startswith("kv:") and size > 0 for key, size in info.allocated.items())
    chunks: list[str] = []
    stats = host.generate_blocking(
        [ChatMessage("user", "hello")], GenerationParams(max_tokens=20, seed=3), on_chunk=chunks.append
    )
    assert 1 <= stats.completion_tokens <= 20
    assert "".join(chunks) == stats.text
    assert stats.prompt_tokens > 3
    assert host.state == EngineState.READY


def test_same_seed_gives_the_same_reply(host: EngineHost, tiny_gguf: Path) -> None:
    host.load_blocking(_spec(tiny_gguf))
    params = GenerationParams(max_tokens=30, seed=42, temperature=0.9, ignore_eos=True)
    first = host.generate_blocking([ChatMessage("user", "hi")], params)
    second = host.generate_blocking([ChatMessage("user", "hi")], params)
    assert first.text == second.text and first.completion_tokens == 30


def test_a_broken_file_fails_with_a_clear_error_and_the_engine_survives(
    host: EngineHost, tiny_gguf: Path, tmp_path: Path
) -> None:
    bogus = tmp_path / "renamed.gguf"
    bogus.write_bytes(b"PK\x03\x04 this is a zip file" * 10)
    with pytest.raises(ModelFileError, match="not a GGUF"):
        host.load_blocking(_spec(bogus))
    assert host.state == EngineState.IDLE
    assert host.load_blocking(_spec(tiny_gguf)).vocab_size == 512


def test_cancel_stops_between_tokens(host: EngineHost, tiny_gguf: Path) -> None:
    host.load_blocking(_spec(tiny_gguf))
    first_chunk = threading.Event()
    host.events.connect(lambda e: isinstance(e, TokenChunk) and first_chunk.set())
    request_id = host.generate([ChatMessage("user", "go")], LONG)
    assert first_chunk.wait(30)
    host.cancel()
    event = host.wait(request_id, timeout=30)
    assert event.stats.stop_reason == "cancelled"  # type: ignore[union-attr]
    assert event.stats.completion_tokens < LONG.max_tokens  # type: ignore[union-attr]
    assert host.state == EngineState.READY  # the model is still loaded


def test_killing_the_engine_mid_stream_is_reported_and_the_app_goes_on(host: EngineHost, tiny_gguf: Path) -> None:
    host.load_blocking(_spec(tiny_gguf))
    first_chunk = threading.Event()
    crashes: list[EngineCrashed] = []
    received: list[str] = []

    def listen(event: object) -> None:
        if isinstance(event, TokenChunk):
            received.append(event.text)
            first_chunk.set()
        elif isinstance(event, EngineCrashed):
            crashes.append(event)

    host.events.connect(listen)
    request_id = host.generate([ChatMessage("user", "go")], LONG)
    assert first_chunk.wait(30)
    host.kill()
    with pytest.raises(EngineCrashedError, match="killed"):
        host.wait(request_id, timeout=30)
    assert host.state == EngineState.CRASHED
    assert host.model is None
    assert len(crashes) == 1 and crashes[0].request_id == request_id
    assert "out of memory" in crashes[0].message
    assert received  # what streamed before the crash was delivered
    # The host can start a new engine and carry on.
    assert host.load_blocking(_spec(tiny_gguf)).vocab_size == 512
    assert host.generate_blocking([ChatMessage("user", "again")], GenerationParams(max_tokens=5)).completion_tokens


def test_cancelling_a_load_discards_it(host: EngineHost, tiny_gguf: Path) -> None:
    host.start()
    request_id = host.load(_spec(tiny_gguf))
    host.cancel()
    with pytest.raises(CancelledError):
        host.wait(request_id, timeout=30)
    assert host.model is None
    assert host.state == EngineState.IDLE


def test_unload_frees_the_model(host: EngineHost, tiny_gguf: Path) -> None:
    host.load_blocking(_spec(tiny_gguf))
    request_id = host.unload()
    assert request_id is not None
    host.wait(request_id, timeout=30)
    assert host.model is None and host.state == EngineState.IDLE


# -- one queue per engine: the running request is the one the child works on --------------------------------------
def _finished_order(host: EngineHost) -> list[int]:
    order: list[int] = []
    host.events.connect(lambda e: order.append(e.request_id) if isinstance(e, GenerationFinished) else None)
    return order


def test_a_second_generate_is_queued_and_answered_after_the_first(host: EngineHost, tiny_gguf: Path) -> None:
    host.load_blocking(_spec(tiny_gguf))
    order = _finished_order(host)
    first = host.generate([ChatMessage("user", "one")], GenerationParams(max_tokens=400, ignore_eos=True, seed=1))
    second = host.generate([ChatMessage("user", "two")], GenerationParams(max_tokens=8, ignore_eos=True, seed=2))
    assert host.outstanding == 2
    # The second waits its turn (never a time-out): it is answered in full once the first is done.
    answer = host.wait(second, timeout=120)
    assert isinstance(answer, GenerationFinished) and answer.stats.completion_tokens == 8
    assert order == [first, second]
    assert host.wait(first, timeout=1).stats.completion_tokens == 400  # type: ignore[union-attr]
    assert host.outstanding == 0 and host.state == EngineState.READY


def test_requests_nobody_waits_for_leave_nothing_behind(host: EngineHost, tiny_gguf: Path) -> None:
    host.load_blocking(_spec(tiny_gguf))
    ids = [host.generate([ChatMessage("user", str(i))], GenerationParams(max_tokens=2, seed=i)) for i in range(12)]
    host.wait(ids[-1], timeout=60)
    assert host.outstanding == 0
    # a late wait still gets the answer of a recent request
    assert isinstance(host.wait(ids[0], timeout=1), GenerationFinished)


def test_cancel_reaches_the_request_it_names(host: EngineHost, tiny_gguf: Path) -> None:
    host.load_blocking(_spec(tiny_gguf))
    first_chunk = threading.Event()
    host.events.connect(lambda e: isinstance(e, TokenChunk) and first_chunk.set())
    running = host.generate([ChatMessage("user", "go")], LONG)
    queued = host.generate([ChatMessage("user", "later")], GenerationParams(max_tokens=4, ignore_eos=True))
    assert first_chunk.wait(30)
    host.cancel(queued)  # dropping the queued one leaves the running one alone
    with pytest.raises(CancelledError):
        host.wait(queued, timeout=10)
    assert host.state == EngineState.BUSY
    host.cancel(running)
    event = host.wait(running, timeout=30)
    assert event.stats.stop_reason == "cancelled"  # type: ignore[union-attr]
    assert host.outstanding == 0


def test_two_conversations_share_one_engine(host: EngineHost, tiny_gguf: Path, tmp_path: Path) -> None:
    host.load_blocking(_spec(tiny_gguf))
    store = Store(tmp_path / "chats.sqlite3")
    chats = ChatStore(store)
    settings = ChatSettings(temperature=0.8, seed=5, max_tokens=300)
    sessions = [ChatSession(chats, host, chats.create(settings=settings).id) for _ in range(2)]
    finished: list[int] = []
    for session in sessions:
        session.events.connect(lambda e: finished.append(e.conversation_id) if isinstance(e, ReplyFinished) else None)
    try:
        sessions[0].send("first conversation")
        sessions[1].send("second conversation, sent while the first streams")
        replies = [session.wait(120) for session in sessions]
    finally:
        for session in sessions:
            session.close()
        store.close()
    assert [r.state for r in replies] == [MessageState.DONE, MessageState.DONE]
    assert all(r.content and r.completion_tokens for r in replies)
    assert finished == [sessions[0].conversation_id, sessions[1].conversation_id]
    assert host.outstanding == 0
