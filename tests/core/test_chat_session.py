"""Chat sessions on a real llama.cpp engine: replies stream into SQLite and survive a restart and a killed
engine; regenerate, edit and resend, continue, stop; the context meter leaves out the oldest messages
when full."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.worker import serve
from core.chat.session import ChatSession, ContextUsage, ReplyDelta, ReplyFinished, ReplyStarted
from core.chat.store import ChatSettings, ChatStore, MessageState
from core.engine.host import EngineHost
from core.engine.protocol import LoadOptions, ModelSpec
from core.errors import EngineError, UsageError
from core.store import Store

FAST = ChatSettings(temperature=0.8, seed=7, max_tokens=24)


@pytest.fixture(scope="module")
def host(tiny_gguf: Path) -> Iterator[EngineHost]:
    engine_host = EngineHost(serve, name="test-chat")
    engine_host.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=1024)))
    yield engine_host
    engine_host.shutdown()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "chat.sqlite3"


@pytest.fixture
def chats(db: Path) -> Iterator[ChatStore]:
    store = Store(db)
    yield ChatStore(store)
    store.close()


def new_session(chats: ChatStore, host: EngineHost, settings: ChatSettings = FAST, **kw: str) -> ChatSession:
    conversation = chats.create(model="tiny", engine="llama", settings=settings, **kw)
    return ChatSession(chats, host, conversation.id)


def test_reply_streams_into_the_store_and_survives_a_restart(chats: ChatStore, host: EngineHost, db: Path) -> None:
    session = new_session(chats, host, system_prompt="You are terse.")
    session.FLUSH_SECONDS = 0.0  # write every chunk, so the test can look at the row mid-stream
    seen: list[object] = []
    stored_mid_stream: list[tuple[str, str]] = []
    streamed = ""

    def listen(event: object) -> None:
        nonlocal streamed
        seen.append(event)
        if isinstance(event, ReplyDelta):
            streamed += event.text
            row = chats.message(event.message_id)
            stored_mid_stream.append((row.content, row.state))

    session.events.connect(listen)
    started = session.send("hello world")
    assert started.state == MessageState.STREAMING
    reply = session.wait(60)
    session.close()

    assert isinstance(seen[0], ReplyStarted) and isinstance(seen[-1], ReplyFinished)
    assert stored_mid_stream and all(state == MessageState.STREAMING for _, state in stored_mid_stream)
    assert stored_mid_stream[-1][0] == streamed  # the row held everything streamed so far
    assert reply.state == MessageState.DONE and reply.content == streamed
    assert reply.completion_tokens and reply.tokens_per_second and reply.time_to_first_token_ms
    assert chats.get(started.conversation_id).title == "hello world"

    reopened = ChatStore(Store(db))
    messages = reopened.messages(started.conversation_id)
    assert [(m.role, m.content, m.state) for m in messages] == [
        ("user", "hello world", MessageState.DONE),
        ("assistant", streamed, MessageState.DONE),
    ]
    assert messages[1].tokens_per_second == reply.tokens_per_second


def test_regenerate_replaces_the_last_reply(chats: ChatStore, host: EngineHost) -> None:
    session = new_session(chats, host)
    first = (session.send("hello"), session.wait(60))[1]
    chats.update(session.conversation_id, settings=ChatSettings(temperature=0.8, seed=8, max_tokens=24))
    session.regenerate()
    second = session.wait(60)
    messages = chats.messages(session.conversation_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].id == second.id != first.id
    assert second.state == MessageState.DONE and second.content != first.content


def test_edit_and_resend_drops_what_followed(chats: ChatStore, host: EngineHost) -> None:
    session = new_session(chats, host)
    session.send("first question")
    session.wait(60)
    session.send("second question")
    session.wait(60)
    first_user = chats.messages(session.conversation_id)[0]
    session.edit_and_resend(first_user.id, "better question")
    reply = session.wait(60)
    messages = chats.messages(session.conversation_id)
    assert [(m.role, m.content) for m in messages][:1] == [("user", "better question")]
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].id == reply.id
    with pytest.raises(UsageError):
        session.edit_and_resend(reply.id, "not mine")


def test_continue_extends_the_same_reply(chats: ChatStore, host: EngineHost) -> None:
    session = new_session(chats, host, settings=ChatSettings(temperature=0.8, seed=3, max_tokens=4))
    session.send("tell me more")
    short = session.wait(60)
    assert short.completion_tokens == 4  # cut by max tokens
    session.continue_reply()
    longer = session.wait(60)
    assert longer.id == short.id
    assert longer.content.startswith(short.content) and len(longer.content) > len(short.content)
    assert len(chats.messages(session.conversation_id)) == 2


def test_stop_keeps_the_partial_reply(chats: ChatStore, host: EngineHost) -> None:
    session = new_session(chats, host, settings=ChatSettings(temperature=1.0, seed=1, max_tokens=600))
    deltas: list[str] = []

    def on_event(event: object) -> None:
        if isinstance(event, ReplyDelta):
            deltas.append(event.text)
            if len(deltas) == 3:
                session.stop()

    session.events.connect(on_event)
    session.send("go on and on")
    reply = session.wait(60)
    assert reply.state == MessageState.STOPPED
    assert reply.content.startswith("".join(deltas[:3])) and reply.completion_tokens < 600
    with pytest.raises(UsageError, match="nothing"):
        new_session(chats, host).regenerate()


def test_killed_engine_keeps_the_conversation(chats: ChatStore, tiny_gguf: Path, db: Path) -> None:
    doomed = EngineHost(serve, name="test-chat-doomed")
    try:
        doomed.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=1024)))
        session = new_session(chats, doomed, settings=ChatSettings(temperature=1.0, seed=2, max_tokens=900))
        deltas: list[str] = []

        def on_event(event: object) -> None:
            if isinstance(event, ReplyDelta):
                deltas.append(event.text)
                if len(deltas) == 3:
                    doomed.kill()

        session.events.connect(on_event)
        session.send("tell me a long story")
        reply = session.wait(60)
        assert reply.state == MessageState.FAILED
        assert "killed" in reply.error
        assert reply.content.startswith("".join(deltas[:3])) and reply.content
        with pytest.raises(EngineError, match="No model"):
            session.send("are you there?")
        reopened = ChatStore(Store(db)).messages(session.conversation_id)
        assert [m.role for m in reopened] == ["user", "assistant"]
        assert reopened[0].content == "tell me a long story" and reopened[1].content == reply.content
    finally:
        doomed.shutdown()


def test_context_meter_leaves_out_the_oldest_messages(chats: ChatStore, tiny_gguf: Path) -> None:
    small = EngineHost(serve, name="test-chat-small")
    try:
        small.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=256)))
        session = new_session(chats, small, settings=ChatSettings(max_tokens=32, seed=1), system_prompt="Be kind.")
        usage = session.refresh_usage()
        assert usage is not None and usage.level == "ok" and usage.limit == 256
        for i in range(6):  # ~40 tokens each: together more than the context
            chats.add_message(session.conversation_id, "user" if i % 2 == 0 else "assistant", "hello world " * 12)
        usage = session.refresh_usage()
        assert usage is not None and usage.level == "full"
        assert "leave out the oldest" in usage.describe()
        session.send("and now?")
        reply = session.wait(60)
        assert reply.state == MessageState.DONE
        assert session.usage is not None and session.usage.left_out > 0
        assert reply.prompt_tokens is not None and reply.prompt_tokens + 32 <= 256
        assert "no longer fit" in session.usage.describe()
        assert len(chats.messages(session.conversation_id)) == 8  # nothing deleted, only left out of the prompt
    finally:
        small.shutdown()


def test_context_usage_levels() -> None:
    assert ContextUsage(100, 1000, 100).level == "ok"
    assert ContextUsage(700, 1000, 100).level == "warning"
    assert ContextUsage(950, 1000, 100).level == "full"
    assert ContextUsage(10, 1000, 0, left_out=2).level == "full"


def test_sending_without_a_model_changes_nothing(chats: ChatStore) -> None:
    idle = EngineHost(serve, name="test-chat-idle")
    session = new_session(chats, idle)
    with pytest.raises(EngineError, match="No model"):
        session.send("hello")
    assert chats.messages(session.conversation_id) == []
    with pytest.raises(UsageError, match="Type a message"):
        session.send("   ")


def test_a_model_without_projector_refuses_a_conversation_with_images_and_changes_nothing(
    chats: ChatStore, host: EngineHost
) -> None:
    from core.devkit.visiongen import png_bytes
    from core.engine.images import NO_PROJECTOR, image_from_bytes
    from core.errors import UnsupportedModelError

    picture = image_from_bytes(png_bytes(8, 8), "dot.png")
    session = new_session(chats, host)
    with pytest.raises(UnsupportedModelError, match="does not take images"):
        session.send("What is this?", images=[picture])
    assert chats.messages(session.conversation_id) == [] and not session.busy

    # a conversation that showed an image earlier (another model read it): this one refuses to go on, and the
    # last reply is kept, not deleted by a regenerate that cannot run
    chats.add_message(session.conversation_id, "user", "What is this?", images=(picture,))
    chats.add_message(session.conversation_id, "assistant", "A dot.")
    for action in (session.regenerate, lambda: session.send("Bigger?"), session.continue_reply):
        with pytest.raises(UnsupportedModelError) as caught:
            action()
        assert str(caught.value).startswith(NO_PROJECTOR)
    assert [m.content for m in chats.messages(session.conversation_id)] == ["What is this?", "A dot."]
