"""Dataset import, validation (with line numbers), preview, split and token statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import DatasetError
from core.finetune.datasets import (
    CsvColumns,
    DatasetFormat,
    csv_header,
    load_dataset,
    preview,
    split_dataset,
    token_stats,
    write_split,
)


def write_lines(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def chat(user: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def test_three_jsonl_formats_are_recognised(tmp_path: Path) -> None:
    chat_file = write_lines(tmp_path / "chat.jsonl", [chat("hi", "hello"), chat("2+2", "4")])
    comp_file = write_lines(tmp_path / "comp.jsonl", [{"prompt": "a", "completion": "b", "extra": 1}])
    text_file = write_lines(tmp_path / "text.jsonl", [{"text": "one"}, "", {"text": "two"}])
    assert load_dataset(chat_file).format == DatasetFormat.CHAT
    comp = load_dataset(comp_file)
    assert comp.format == DatasetFormat.COMPLETION
    assert comp.examples[0].record == {"prompt": "a", "completion": "b"}  # unknown keys dropped
    text = load_dataset(text_file)
    assert [e.line for e in text.examples] == [1, 3]  # blank lines skipped, numbering kept


def test_json_array_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"text": "a"}, {"text": "b"}]))
    assert len(load_dataset(path)) == 2


def test_every_bad_row_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "bad.jsonl",
        [
            chat("ok", "fine"),
            "{not json",
            {"messages": [{"role": "wizard", "content": "x"}]},
            {"messages": [{"role": "user", "content": "only a question"}]},
            {"text": "a text row in a chat file"},
            [1, 2],
            {"foo": "bar"},
            chat("ok again", "fine"),
        ],
    )
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    lines = [issue.line for issue in caught.value.issues]
    assert lines == [2, 3, 4, 5, 6, 7]
    message = str(caught.value)
    assert "6 of 8 rows" in message and "line 2: not valid JSON" in message
    assert "role 'wizard'" in message and "no assistant message" in message
    # Lenient loading keeps the good rows and the list of bad ones.
    lenient = load_dataset(path, strict=False)
    assert [e.line for e in lenient.examples] == [1, 8]
    assert len(lenient.issues) == 6


def test_empty_missing_and_unknown_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DatasetError, match="no rows"):
        load_dataset(tmp_path / "empty.jsonl")
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    with pytest.raises(DatasetError, match="not a dataset file"):
        load_dataset(tmp_path / "data.parquet")
    (tmp_path / "latin.jsonl").write_bytes(b'{"text": "caf\xe9"}\n')
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_dataset(tmp_path / "latin.jsonl")
    (tmp_path / "folder").mkdir()
    with pytest.raises(DatasetError, match=r"no train\.jsonl"):
        load_dataset(tmp_path / "folder")


def test_csv_with_chosen_and_guessed_columns(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text('question,answer,notes\nWhat is 2+2?,4,x\n"Multi\nline",yes,y\nEmpty answer,,z\n')
    assert csv_header(path) == ["question", "answer", "notes"]
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)  # guessed question/answer; the last row has no answer
    assert [i.line for i in caught.value.issues] == [5]  # the quoted row spans lines 3-4
    data = load_dataset(path, columns=CsvColumns(prompt="question", completion="answer"), strict=False)
    assert data.format == DatasetFormat.COMPLETION
    assert data.examples[1].record == {"prompt": "Multi\nline", "completion": "yes"}
    as_text = load_dataset(path, columns=CsvColumns(text="notes"))
    assert [e.record["text"] for e in as_text.examples] == ["x", "y", "z"]
    with pytest.raises(DatasetError, match="no column 'missing'"):
        load_dataset(path, columns=CsvColumns(text="missing"))
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="cannot tell which columns"):
        load_dataset(odd)


def test_split_is_seeded_and_keeps_both_sides(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", [{"text": f"row {i}"} for i in range(20)])
    data = load_dataset(path)
    first = split_dataset(data, 0.2, seed=1)
    again = split_dataset(data, 0.2, seed=1)
    other = split_dataset(data, 0.2, seed=2)
    assert first == again and first != other
    assert len(first.valid) == 4 and len(first.train) == 16
    assert not {e.line for e in first.valid} & {e.line for e in first.train}
    one = load_dataset(write_lines(tmp_path / "one.jsonl", [{"text": "x"}]))
    tiny = split_dataset(one, 0.5)
    assert len(tiny.train) == 1 and len(tiny.valid) == 1
    folder = write_split(first, tmp_path / "split")
    reread = load_dataset(folder)
    assert len(reread) == 16 and len(reread.valid_examples) == 4
    assert split_dataset(reread).valid == reread.valid_examples


def test_preview_and_token_stats(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", [{"text": "word " * n} for n in (1, 2, 50, 3)])
    data = load_dataset(path)
    rows = preview(data, limit=2)
    assert rows == [(1, "word"), (2, "word word")]
    stats = token_stats(data.examples, lambda e: len(e.plain_text().split()), max_length=10)
    assert (stats.min_tokens, stats.max_tokens, stats.total_tokens) == (1, 50, 56)
    assert stats.too_long_lines == (3,)
    assert stats.warning is not None and "lines 3" in stats.warning
    assert token_stats(data.examples, lambda e: 1, max_length=10).warning is None
