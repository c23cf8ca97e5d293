"""Conversations in SQLite: persistence across a restart, rename, delete, search, settings and presets."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.chat.store import (
    DEFAULT_TITLE,
    PRESETS,
    ChatSettings,
    ChatStore,
    MessageState,
    apply_preset,
    preset_name,
    title_from,
)
from core.engine.params import GenerationParams
from core.errors import NotFoundError, UsageError
from core.store import Store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "hangar.sqlite3"


def test_conversation_and_messages_survive_a_restart(db: Path) -> None:
    store = Store(db)
    chats = ChatStore(store)
    settings = ChatSettings(temperature=0.3, stop=("###",), max_tokens=77)
    conv = chats.create(
        title="Rust help", model="/m/tiny.gguf", engine="llama", system_prompt="Be brief.", settings=settings
    )
    chats.add_message(conv.id, "user", "How do I borrow?")
    reply = chats.add_message(conv.id, "assistant", "", MessageState.STREAMING)
    chats.append_text(reply.id, "Use ")
    chats.append_text(reply.id, "`&`.")
    store.close()

    chats = ChatStore(Store(db))
    again = chats.get(conv.id)
    assert again == conv.__class__(**{**conv.__dict__, "updated_at": again.updated_at})
    assert again.settings == settings
    messages = chats.messages(conv.id)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "How do I borrow?"),
        ("assistant", "Use `&`."),
    ]
    # the app died while the reply streamed: it is kept, and marked as interrupted
    assert messages[1].state == MessageState.INTERRUPTED
    assert "closed" in messages[1].error


def test_rename_delete_and_list_order(db: Path) -> None:
    chats = ChatStore(Store(db))
    a = chats.create(title="first")
    b = chats.create()
    assert b.title == DEFAULT_TITLE
    chats.add_message(a.id, "user", "bump")  # a is now the most recently used
    assert [c.id for c in chats.conversations()] == [a.id, b.id]
    assert chats.rename(b.id, "  Trip   plans ").title == "Trip plans"
    with pytest.raises(UsageError):
        chats.rename(b.id, "   ")
    chats.delete(a.id)
    assert [c.id for c in chats.conversations()] == [b.id]
    assert chats.messages(a.id) == []  # messages went with it
    with pytest.raises(NotFoundError):
        chats.get(a.id)
    with pytest.raises(NotFoundError):
        chats.delete(a.id)


def test_search_matches_titles_and_message_text_literally(db: Path) -> None:
    chats = ChatStore(Store(db))
    a = chats.create(title="Cooking")
    b = chats.create(title="Maths")
    c = chats.create(title="100% sure")
    chats.add_message(a.id, "user", "How long do I boil an EGG?")
    chats.add_message(b.id, "assistant", "x_1 plus x_2")
    assert [x.id for x in chats.conversations("egg")] == [a.id]
    assert [x.id for x in chats.conversations("maths")] == [b.id]
    assert [x.id for x in chats.conversations("x_1")] == [b.id]
    assert [x.id for x in chats.conversations("%")] == [c.id]  # % is a character, not a wildcard
    assert chats.conversations("nothing like this") == []
    assert len(chats.conversations("  ")) == 3


def test_delete_from_truncates_history(db: Path) -> None:
    chats = ChatStore(Store(db))
    conv = chats.create()
    for i in range(4):
        chats.add_message(conv.id, "user" if i % 2 == 0 else "assistant", f"m{i}")
    chats.delete_from(conv.id, 2)
    assert [m.content for m in chats.messages(conv.id)] == ["m0", "m1"]
    assert chats.add_message(conv.id, "user", "m2 again").position == 2


def test_settings_validation_and_params() -> None:
    with pytest.raises(UsageError, match="Temperature"):
        ChatSettings(temperature=9).validated()
    with pytest.raises(UsageError, match="not valid JSON"):
        ChatSettings(response_format="json_schema", json_schema="{oops").validated()
    params = ChatSettings(response_format="json_schema", json_schema='{"type": "object"}').validated()
    assert params.schema() == {"type": "object"} and params.response_format == "json_schema"
    # a dict is accepted and kept as JSON text, so the value stays hashable and saves as it is
    assert GenerationParams(response_format="json_schema", json_schema={"type": "object"}).schema() == {
        "type": "object"
    }
    with pytest.raises(UsageError, match="needs a schema"):
        GenerationParams(response_format="json_schema").validated()


def test_one_parameter_type_with_one_set_of_defaults() -> None:
    assert ChatSettings is GenerationParams
    assert GenerationParams().max_tokens == 1024 and GenerationParams().temperature == 0.7
    # the per-request switches are not part of a conversation's saved settings
    saved = GenerationParams(temperature=0.2, stop=("x",), continue_last=True, ignore_eos=True).to_json()
    assert "continue_last" not in saved and "ignore_eos" not in saved
    restored = GenerationParams.from_json(saved)
    assert restored == GenerationParams(temperature=0.2, stop=("x",))
    assert GenerationParams.from_json('{"continue_last": true}').continue_last is False
    assert GenerationParams.from_json("[1, 2]") == GenerationParams()
    assert ChatSettings.from_json("{broken") == ChatSettings()
    assert ChatSettings.from_json('{"temperature": 0.1, "unknown": 1}').temperature == 0.1


def test_presets() -> None:
    assert preset_name(ChatSettings()) == "Balanced"
    precise = apply_preset(ChatSettings(max_tokens=99, stop=("x",)), "Precise")
    assert preset_name(precise) == "Precise"
    assert precise.max_tokens == 99 and precise.stop == ("x",)  # presets change sampling only
    assert preset_name(ChatSettings(temperature=0.55)) is None
    assert set(PRESETS) >= {"Balanced", "Precise", "Creative", "Deterministic"}
    with pytest.raises(UsageError, match="Unknown preset"):
        apply_preset(ChatSettings(), "Wild")


def test_title_from_first_message() -> None:
    assert title_from("  hello\n  world ") == "hello world"
    long = title_from("word " * 40)
    assert len(long) <= 48 and long.endswith("…")


def test_replies_name_their_model_and_older_rows_stay_unnamed(db: Path) -> None:
    """Field report #12 item 14: each reply names its model; rows written before the column existed read None."""
    from core.chat.store import SCHEMA

    store = Store(db)
    store.migrate("chat", SCHEMA[:1])  # a database of the version before replies named their model
    now = 1.0
    store.execute("INSERT INTO chat_conversations (title, created_at, updated_at) VALUES ('old', ?, ?)", (now, now))
    store.execute(
        "INSERT INTO chat_messages (conversation_id, position, role, content, created_at) VALUES (1, 0, 'assistant',"
        " 'hi', ?)",
        (now,),
    )
    store.close()
    chats = ChatStore(Store(db))
    (old,) = chats.messages(1)
    assert old.content == "hi" and old.model is None
    new = chats.add_message(1, "assistant", "there", model="tiny-llama")
    assert chats.message(new.id).model == "tiny-llama"


def test_images_are_kept_with_their_message_within_the_engine_bounds(db: Path) -> None:
    from core.devkit.visiongen import png_bytes
    from core.engine.images import MAX_IMAGES, ChatImage, image_from_bytes

    store = Store(db)
    chats = ChatStore(store)
    conv = chats.create()
    red, blue = image_from_bytes(png_bytes(8, 4), "red.png"), image_from_bytes(png_bytes(3, 3, (0, 0, 255)), "b.png")
    message = chats.add_message(conv.id, "user", "Which is bigger?", images=(red, blue))
    assert message.images == (red, blue)
    chats.add_message(conv.id, "assistant", "The red one.")
    store.close()

    chats = ChatStore(Store(db))
    first, second = chats.messages(conv.id)
    assert first.images == (red, blue) and second.images == ()
    assert chats.message(first.id).images[1].data == png_bytes(3, 3, (0, 0, 255))

    # what the engine refuses is never stored: a forged header, too many images
    forged = ChatImage(b"not a png", "image/png", 1, 1, "forged.png")
    with pytest.raises(UsageError, match=r"forged\.png is not an image"):
        chats.add_message(conv.id, "user", "x", images=(forged,))
    with pytest.raises(UsageError, match=f"up to {MAX_IMAGES} are taken"):
        chats.add_message(conv.id, "user", "x", images=(red,) * (MAX_IMAGES + 1))
    assert len(chats.messages(conv.id)) == 2
    # deleting the messages (regenerate, edit, delete the chat) takes their images along
    chats.delete_from(conv.id, 0)
    assert chats._store.query_one("SELECT COUNT(*) AS n FROM chat_images")["n"] == 0
