"""Document collections on real SQLite (FTS5): every kind of file read with its place, bad files skipped with a
reason while the rest is indexed, re-indexing reading changed files only, ranked search, recall on a labelled set
that ships with the tests, and the command line."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path

import pytest

from core.docs.extract import MAX_FILE_BYTES, UnreadableDocument, read_pieces
from core.docs.index import DocumentIndex
from core.errors import NotFoundError, UsageError
from core.store import Store
from tests.support.pdf import write_pdf

CORPUS = Path(__file__).resolve().parents[1] / "support" / "docs_corpus"


@pytest.fixture
def index(tmp_path: Path) -> DocumentIndex:
    return DocumentIndex(Store(tmp_path / "hangar.sqlite"))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "docs"
    shutil.copytree(CORPUS, target)
    (target / "queries.json").unlink()
    write_pdf(target / "harbour.pdf", ["The harbour master opens the lock at dawn.", "Spring tides run high."])
    return target


def test_each_kind_of_file_is_read_with_its_place(folder: Path) -> None:
    pdf = read_pieces(folder / "harbour.pdf")
    assert [(p.place, p.text) for p in pdf] == [
        ("page 1", "The harbour master opens the lock at dawn."),
        ("page 2", "Spring tides run high."),
    ]
    html = " ".join(p.text for p in read_pieces(folder / "telescope.html"))
    assert "refractor uses lenses" in html and "analytics" not in html and "color:red" not in html
    code = read_pieces(folder / "engine.py")
    assert code[0].place.startswith("lines 1-") and "250 running hours" in code[0].text


def test_long_text_is_cut_into_overlapping_chunks_that_know_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("\n".join(f"line {i} " + "word " * 20 for i in range(1, 201)))
    pieces = read_pieces(path)
    assert len(pieces) > 10
    assert pieces[0].first_line == 1 and pieces[-1].last_line == 200
    for before, after in itertools.pairwise(pieces):
        assert after.first_line <= before.last_line  # consecutive chunks overlap
        assert after.first_line > before.first_line


def test_bad_files_are_skipped_with_a_reason_and_the_rest_is_indexed(index: DocumentIndex, folder: Path) -> None:
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\x00" * 100)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage")
    huge = folder / "server.log"
    with huge.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: large without taking the disk
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "secret.md").write_text("not indexed")
    report = index.add("notes", [folder])
    reasons = {Path(p).name: r for p, r in report.skipped}
    assert set(reasons) == {"photo.jpg", "broken.pdf", "server.log"}
    assert "binary" in reasons["photo.jpg"] and "cannot be parsed" in reasons["broken.pdf"]
    assert "too large" in reasons["server.log"]
    assert report.added == 9 + 3 and report.chunks >= 10
    info = index.info("notes")
    assert info.files == 9 and info.skipped == 3
    with pytest.raises(UnreadableDocument, match="binary"):
        read_pieces(folder / "photo.jpg")


def test_reindexing_reads_changed_files_only(index: DocumentIndex, folder: Path) -> None:
    first = index.add("notes", [folder])
    assert first.added == 9
    again = index.reindex("notes")
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 9, 0)
    (folder / "coffee.txt").write_text("Cold brew steeps for twelve hours in the fridge.\n")
    os.utime(folder / "coffee.txt", (1, 1))
    (folder / "chess.md").unlink()
    touched = folder / "garden.txt"
    os.utime(touched, (2, 2))  # a new time, the same content: not read again
    changed = index.reindex("notes")
    assert (changed.updated, changed.removed, changed.unchanged) == (1, 1, 7)
    assert index.search("notes", "cold brew fridge").hits[0].path.endswith("coffee.txt")
    assert not index.search("notes", "sicilian defence").hits


def test_search_ranks_the_right_file_first_and_recall_at_5(index: DocumentIndex, folder: Path) -> None:
    index.add("notes", [folder])
    result = index.search("notes", "harbour lock dawn", limit=3)
    top = result.hits[0]
    assert top.path.endswith("harbour.pdf") and top.place == "page 1" and top.page == 1
    assert result.retrieval == "full-text" and result.note and "no embedding model" in result.note
    queries = json.loads((CORPUS / "queries.json").read_text())
    found = sum(
        any(Path(h.path).name == expected for h in index.search("notes", question, limit=5).hits)
        for question, expected in queries
    )
    assert found / len(queries) >= 0.9


def test_collections_are_listed_removed_and_bad_names_refused(index: DocumentIndex, folder: Path) -> None:
    index.add("notes", [folder / "bread.md"])
    index.add("more", [folder / "bikes.md"])
    assert [c.name for c in index.collections()] == ["more", "notes"]
    index.remove("more")
    assert [c.name for c in index.collections()] == ["notes"]
    with pytest.raises(NotFoundError, match="notes"):
        index.search("more", "tyre")
    with pytest.raises(UsageError):
        index.add("bad/name", [folder])
    with pytest.raises(NotFoundError):
        index.add("x", [folder / "missing.md"])
    with pytest.raises(UsageError, match="empty"):
        index.search("notes", "   ")


def test_docs_command_line(folder: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import main

    assert main.main(["docs", "add", str(folder), "--collection", "notes", "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["added"] == 9 and added["skipped"] == []
    assert main.main(["docs", "search", "flat tyre patch", "--collection", "notes", "--limit", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["retrieval"] == "full-text" and len(out["results"]) <= 2
    assert out["results"][0]["path"].endswith("bikes.md") and out["results"][0]["place"].startswith("line")
    assert main.main(["docs", "ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["files"] == 9
    assert main.main(["docs", "search", "x", "--collection", "nope", "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["error"]["code"] == "not_found"
    assert main.main(["docs", "rm", "notes"]) == 0
