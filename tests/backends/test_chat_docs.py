"""``chat MODEL --docs NAME`` on the real llama engine: the collection's best passages go into the prompt, numbered,
and ``--json`` carries them as ``sources`` (file and place) for the reply to cite."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import main

CORPUS = Path(__file__).resolve().parents[1] / "support" / "docs_corpus"


def test_chat_answers_from_a_collection_with_sources(
    tiny_gguf: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(CORPUS, folder)
    (folder / "queries.json").unlink()  # the labels, not a document
    assert main.main(["docs", "add", str(folder), "--collection", "notes", "--json"]) == 0
    capsys.readouterr()
    question = "How often should the engine oil be changed?"
    argv = ["chat", str(tiny_gguf), "--prompt", question, "--max-tokens", "4", "--temperature", "0", "--json"]
    assert main.main(argv) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "sources" not in plain
    assert main.main([*argv, "--docs", "notes"]) == 0
    out = capsys.readouterr().out
    reply = json.loads(out)
    assert reply["retrieval"] == "full-text" and reply["sources"]
    first = reply["sources"][0]
    assert first["n"] == 1 and first["path"].endswith("engine.py") and first["place"].startswith("lines")
    assert "250 running hours" in first["text"]
    assert reply["prompt_tokens"] > plain["prompt_tokens"] + 20  # the passages were read by the model

    assert main.main([*argv, "--docs", "missing"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "not_found"


def test_an_embedding_model_makes_search_hybrid(
    tiny_gguf: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Passages embedded by llama.cpp in its engine process; search ranks words and vectors together. (The test
    model's weights are random, so only the plumbing is checked, not the meaning of its vectors.)"""
    folder = tmp_path / "docs"
    shutil.copytree(CORPUS, folder)
    (folder / "queries.json").unlink()
    argv = ["docs", "add", str(folder), "--collection", "notes", "--embed-model", str(tiny_gguf), "--json"]
    assert main.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["chunks"] >= 8
    assert main.main(["docs", "search", "engine oil change", "--collection", "notes", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["retrieval"] == "hybrid" and found["note"] is None
    assert found["results"][0]["path"].endswith("engine.py")
    assert main.main(["docs", "ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["embed_model"] == str(tiny_gguf.resolve())
