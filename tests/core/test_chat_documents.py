"""Documents in the window's chat session, on a real llama.cpp engine and a real SQLite index: a reply in a
conversation with a collection reads the right file's passages and keeps them as its sources (after a restart too);
a short dropped file goes into the prompt whole, a long one through retrieval in the conversation's own collection;
binary, huge and folder drops are refused in one line; a cited place is found in the file's text."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.worker import serve
from core.chat.documents import adhoc_collection, cited_place, examine_drop
from core.chat.session import ChatSession
from core.chat.store import ChatSettings, ChatStore
from core.chat.tools import ChatToolStore, ConversationOptions
from core.docs.extract import UnreadableDocument
from core.docs.service import DocumentService
from core.engine.host import EngineHost
from core.engine.protocol import LoadOptions, ModelSpec
from core.store import Store

CORPUS = Path(__file__).resolve().parents[1] / "support" / "docs_corpus"
FAST = ChatSettings(temperature=0.8, seed=7, max_tokens=8)


def corpus(tmp_path: Path) -> Path:
    """The labelled corpus without its labels (queries.json would match every question)."""
    return Path(shutil.copytree(CORPUS, tmp_path / "notes", ignore=shutil.ignore_patterns("queries.json")))


@pytest.fixture(scope="module")
def host(tiny_gguf: Path) -> Iterator[EngineHost]:
    engine_host = EngineHost(serve, name="test-chat-docs")
    engine_host.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=4096)))
    yield engine_host
    engine_host.shutdown()


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Store, ChatStore, ChatToolStore, DocumentService]]:
    store = Store(tmp_path / "chat.sqlite3")
    docs = DocumentService(store, None, lambda name: EngineHost(serve, name=name))
    yield store, ChatStore(store), ChatToolStore(store), docs
    docs.close()
    store.close()


def test_a_reply_cites_the_right_file_and_keeps_its_sources(parts, host: EngineHost, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, chats, tool_store, docs = parts
    docs.add("notes", [corpus(tmp_path)])
    conversation = chats.create(settings=FAST)
    tool_store.set_options(conversation.id, ConversationOptions(collection="notes"))
    session = ChatSession(chats, host, conversation.id, tool_store=tool_store, docs=lambda: docs)
    session.send("how long should sourdough dough rise")
    reply = session.wait(60)
    assert reply.sources and Path(str(reply.sources[0]["path"])).name == "bread.md"
    assert reply.sources[0]["n"] == 1 and reply.sources[0]["first_line"] == 1
    # the reply read them: the prompt carried the passages (many more tokens than the question alone)
    assert reply.prompt_tokens and reply.prompt_tokens > 60
    again = ChatStore(store).message(reply.id)
    assert again.sources == reply.sources

    place = cited_place(dict(reply.sources[0]))
    lines = place.text.splitlines()
    assert "rise for six hours" in "\n".join(lines[place.first : place.last + 1])


def test_dropped_files_short_whole_long_retrieved_bad_refused(parts, host: EngineHost, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _store, chats, tool_store, docs = parts
    short = examine_drop(CORPUS / "bread.md", 4096)
    assert short.attachment is not None and "Sourdough" in short.attachment.text
    long_file = tmp_path / "manual.txt"
    long_file.write_text("".join(f"Line {i}: the pump needs {i % 7} turns of the valve.\n" for i in range(3000)))
    assert examine_drop(long_file, 4096).long and not examine_drop(long_file, 1_000_000).long

    binary = tmp_path / "photo.txt"
    binary.write_bytes(b"\x89PNG\x00\x00" * 100)
    huge = tmp_path / "huge.log"
    with huge.open("wb") as handle:
        handle.truncate(60 * 1024 * 1024)
    for bad, words in ((binary, "binary"), (huge, "too large"), (tmp_path, "a folder")):
        with pytest.raises(UnreadableDocument, match=words) as caught:
            examine_drop(bad, 4096)
        assert "\n" not in str(caught.value)

    conversation = chats.create(settings=FAST)
    session = ChatSession(chats, host, conversation.id, tool_store=tool_store, docs=lambda: docs)
    session.send("what does this say?", [short.attachment])
    session.wait(60)
    assert "Knead the dough" in session.history()[0].content  # the whole file, with the message
    (user, reply) = chats.messages(conversation.id)
    assert user.attachments[0]["name"] == "bread.md" and not reply.sources

    # the long file goes into the conversation's own collection; the next reply retrieves from it
    docs.add(adhoc_collection(conversation.id), [shutil.copy(long_file, tmp_path / "pump.txt")])
    session.send("how many turns of the valve on line 12?")
    reply = session.wait(60)
    assert reply.sources and Path(str(reply.sources[0]["path"])).name == "pump.txt"
