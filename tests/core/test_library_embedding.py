"""Embedding models in My Models: a GGUF whose architecture is an encoder (BERT and kin) or whose header sets a
pooling type is an embedding model — listed with the "embedding" capability, kept out of the chat picker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import main
from core.library.service import Library
from core.models.detect import recognise
from core.models.embedding import is_embedding_header
from core.models.types import ImportMode
from tests.support.fixtures_library import write_bert_header, write_embedding_gguf, write_gguf


def test_pooling_or_an_encoder_architecture_makes_an_embedding_model(tmp_path: Path) -> None:
    (pooled,) = recognise([write_embedding_gguf(tmp_path / "e" / "tiny-embed.gguf")]).candidates
    assert pooled.metadata.embedding and pooled.metadata.architecture == "llama"
    (bert,) = recognise([write_bert_header(tmp_path / "b" / "tiny-bert.gguf")]).candidates
    assert bert.metadata.embedding and bert.metadata.architecture == "bert"
    (chat,) = recognise([write_gguf(tmp_path / "c" / "chat.gguf")]).candidates
    assert not chat.metadata.embedding


@pytest.mark.parametrize(
    ("architecture", "metadata", "expected"),
    [
        ("nomic-bert", {}, True),
        ("qwen3", {"qwen3.pooling_type": 3}, True),
        ("bert", {"bert.pooling_type": 4}, False),  # a reranker: it scores pairs, it makes no document vectors
        ("qwen3", {"llama.pooling_type": 1}, False),  # another architecture's key says nothing
        ("llama", {}, False),
        (None, {}, False),
    ],
)
def test_the_header_rule(architecture: str | None, metadata: dict[str, object], expected: bool) -> None:
    assert is_embedding_header(architecture, metadata) is expected


def test_the_library_keeps_it_and_ls_shows_it(
    library: Library, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_embedding_gguf(tmp_path / "in" / "tiny-embed.gguf")
    write_gguf(tmp_path / "in" / "chatty.gguf", seed=1)
    report = library.import_paths([tmp_path / "in"], ImportMode.LINK)
    assert not report.problems
    by_name = {e.name: e for e in library.list()}  # read back from SQLite, not the import's values
    assert by_name["tiny-embed"].capabilities == ("embedding",) and by_name["tiny-embed"].metadata.embedding
    assert by_name["chatty"].capabilities == ()
    assert main.main(["ls", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["tiny-embed"]["capabilities"] == ["embedding"] and listed["chatty"]["capabilities"] == []
    assert main.main(["ls"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("tiny-embed") and line.endswith("[embedding]") for line in lines)
    assert not any("[embedding]" in line for line in lines if line.startswith("chatty"))


def test_the_chat_picker_does_not_offer_it(app, library: Library, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    embed = write_embedding_gguf(tmp_path / "in" / "tiny-embed.gguf")
    chat = write_gguf(tmp_path / "in" / "chatty.gguf", seed=1)
    library.import_paths([tmp_path / "in"], ImportMode.LINK)
    offered = {c.path.resolve() for c in app.chat.choices()}
    assert chat.resolve() in offered and embed.resolve() not in offered
