"""Training data for fine-tuning: import, validate, preview, split and measure.

Accepted inputs: JSONL (or a JSON array) in the three common shapes — chat (``{"messages":
[{"role", "content"}, ...]}``), prompt/completion (``{"prompt", "completion"}``) and plain ``{"text"}`` —
CSV with chosen columns, and a folder holding ``train.jsonl`` (and maybe ``valid.jsonl``) as mlx-lm expects.
Every record is normalised to one of those three shapes, which both backends (mlx-lm and PEFT) read. Every bad
row is reported with its line.

Token statistics need the model's tokenizer, which core may not import: callers pass a counting function (the
fine-tune child process does, with the real tokenizer).
"""

from __future__ import annotations

import csv
import enum
import json
import logging
import random
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import DatasetError

logger = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant", "tool")
#: Issues listed in an error message; the full list stays on ``DatasetError.issues``.
MAX_ISSUES_IN_MESSAGE = 8


class DatasetFormat(enum.StrEnum):
    CHAT = "chat"
    COMPLETION = "completion"  # prompt/completion
    TEXT = "text"


@dataclass(frozen=True)
class Example:
    """One training record in its normalised shape, with its line (1-based; a CSV's header is line 1)."""

    line: int
    record: dict[str, Any]

    @property
    def format(self) -> DatasetFormat:
        if "messages" in self.record:
            return DatasetFormat.CHAT
        if "prompt" in self.record:
            return DatasetFormat.COMPLETION
        return DatasetFormat.TEXT

    def plain_text(self) -> str:
        """The record as one string (for previews and rough counts; the backends use the chat template)."""
        if "messages" in self.record:
            return "\n".join(f"{m['role']}: {m['content']}" for m in self.record["messages"])
        if "prompt" in self.record:
            return f"{self.record['prompt']}{self.record['completion']}"
        return str(self.record["text"])


@dataclass(frozen=True)
class DatasetIssue:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class CsvColumns:
    """Which CSV columns hold the data: ``text`` alone, or ``prompt`` and ``completion``."""

    text: str | None = None
    prompt: str | None = None
    completion: str | None = None
    system: str | None = None


@dataclass(frozen=True)
class Dataset:
    source: Path
    format: DatasetFormat
    examples: tuple[Example, ...]
    issues: tuple[DatasetIssue, ...] = ()
    #: Validation rows given by the user (``valid.jsonl`` next to ``train.jsonl``); else split automatically.
    valid_examples: tuple[Example, ...] = ()

    def __len__(self) -> int:
        return len(self.examples)


@dataclass(frozen=True)
class DatasetSplit:
    train: tuple[Example, ...]
    valid: tuple[Example, ...]


@dataclass(frozen=True)
class TokenStats:
    count: int
    min_tokens: int
    max_tokens: int
    mean_tokens: float
    p95_tokens: int
    total_tokens: int
    max_length: int
    #: Lines of rows longer than ``max_length`` (they will be truncated).
    too_long_lines: tuple[int, ...] = field(default=())

    @property
    def warning(self) -> str | None:
        if not self.too_long_lines:
            return None
        lines = ", ".join(str(n) for n in self.too_long_lines[:MAX_ISSUES_IN_MESSAGE])
        more = "…" if len(self.too_long_lines) > MAX_ISSUES_IN_MESSAGE else ""
        return (
            f"{len(self.too_long_lines)} of {self.count} rows are longer than the maximum length of "
            f"{self.max_length} tokens (longest {self.max_tokens}) and will be truncated: "
            f"lines {lines}{more}. "
            "Raise the maximum length or shorten those rows."
        )


# -- loading -------------------------------------------------------------------------------------------------
def load_dataset(path: str | Path, *, columns: CsvColumns | None = None, strict: bool = True) -> Dataset:
    """Read and validate a dataset file or folder. With ``strict``, any bad row raises ``DatasetError``
    listing every bad line; without, the dataset keeps the good rows and lists the bad ones in ``issues``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"The dataset {path} does not exist.")
    valid: tuple[Example, ...] = ()
    if path.is_dir():
        train_file = path / "train.jsonl"
        if not train_file.is_file():
            raise DatasetError(
                f"The folder {path} has no train.jsonl.",
                hint="Pick a .jsonl, .json or .csv file, or a folder with train.jsonl (and valid.jsonl).",
            )
        dataset = load_dataset(train_file, strict=strict)
        valid_file = path / "valid.jsonl"
        if valid_file.is_file():
            valid_set = load_dataset(valid_file, strict=strict)
            if valid_set.format != dataset.format:
                raise DatasetError(
                    f"valid.jsonl holds {valid_set.format} rows but train.jsonl holds {dataset.format} rows."
                )
            valid = valid_set.examples
        return Dataset(path, dataset.format, dataset.examples, dataset.issues, valid)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _read_csv(path, columns)
    elif suffix in (".jsonl", ".json", ".ndjson", ".txt"):
        rows = _read_json(path)
    else:
        raise DatasetError(f"{path.name} is not a dataset file.", hint="Use JSONL, JSON or CSV.")
    return _validate(path, rows, strict=strict)


def _read_json(path: Path) -> list[tuple[int, Any]]:
    """(line, parsed value or a problem) for each non-blank line; a JSON array counts one row per item."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path.name} is not UTF-8 text (byte {exc.start}).") from exc
    except OSError as exc:
        raise DatasetError(f"{path.name} could not be read: {exc}.") from exc
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path.name} is not valid JSON (line {exc.lineno}: {exc.msg}).") from exc
        return [(i + 1, item) for i, item in enumerate(items)]
    rows: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            rows.append((number, _Bad(f"not valid JSON ({exc.msg} at column {exc.colno})")))
    return rows


def csv_header(path: str | Path) -> list[str]:
    """The column names of a CSV file (for the column picker)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle), [])


def _read_csv(path: Path, columns: CsvColumns | None) -> list[tuple[int, Any]]:
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise DatasetError(f"{path.name} could not be read: {exc}.") from exc
    with handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        columns = columns or _guess_columns(header, path)
        wanted = [c for c in (columns.text, columns.prompt, columns.completion, columns.system) if c]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise DatasetError(
                f"{path.name} has no column {', '.join(repr(c) for c in missing)}.",
                hint=f"Its columns are: {', '.join(header) or 'none'}.",
            )
        if not columns.text and not (columns.prompt and columns.completion):
            raise DatasetError("Choose a text column, or a prompt column and a completion column.")
        rows: list[tuple[int, Any]] = []
        try:
            for row in reader:
                line = reader.line_num
                if columns.text:
                    rows.append((line, {"text": row.get(columns.text)}))
                elif columns.system and row.get(columns.system):
                    messages = [
                        {"role": "system", "content": row.get(columns.system)},
                        {"role": "user", "content": row.get(columns.prompt or "")},
                        {"role": "assistant", "content": row.get(columns.completion or "")},
                    ]
                    rows.append((line, {"messages": messages}))
                else:
                    rows.append(
                        (
                            line,
                            {
                                "prompt": row.get(columns.prompt or ""),
                                "completion": row.get(columns.completion or ""),
                            },
                        )
                    )
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path.name} is not a readable CSV file near line {reader.line_num}: {exc}.") from exc
    return rows


def _guess_columns(header: Sequence[str], path: Path) -> CsvColumns:
    lower = {h.lower(): h for h in header}
    for prompt, completion in (("prompt", "completion"), ("instruction", "output"), ("question", "answer")):
        if prompt in lower and completion in lower:
            return CsvColumns(prompt=lower[prompt], completion=lower[completion], system=lower.get("system"))
    if "text" in lower:
        return CsvColumns(text=lower["text"])
    raise DatasetError(
        f"Hangar cannot tell which columns of {path.name} to train on.",
        hint=f"Choose them: a text column, or prompt and completion columns (columns: {', '.join(header)}).",
    )


class _Bad(str):
    """A row that failed to parse; its text is the problem."""


# -- validation ----------------------------------------------------------------------------------------------
def _validate(path: Path, rows: list[tuple[int, Any]], *, strict: bool) -> Dataset:
    issues: list[DatasetIssue] = []
    examples: list[Example] = []
    expected: DatasetFormat | None = None
    for line, value in rows:
        if isinstance(value, _Bad):
            issues.append(DatasetIssue(line, str(value)))
            continue
        record, problem = normalise_record(value)
        if problem is not None or record is None:
            issues.append(DatasetIssue(line, problem or "unreadable row"))
            continue
        example = Example(line, record)
        if expected is None:
            expected = example.format
        elif example.format != expected:
            issues.append(
                DatasetIssue(line, f"a {example.format} row in a {expected} dataset (every row needs the same shape)")
            )
            continue
        examples.append(example)
    if not examples and not issues:
        raise DatasetError(f"{path.name} holds no rows.")
    if issues and (strict or not examples):
        raise DatasetError(_issues_message(path, issues, len(rows)), issues=issues)
    assert expected is not None
    return Dataset(path, expected, tuple(examples), tuple(issues))


def _issues_message(path: Path, issues: Sequence[DatasetIssue], total: int) -> str:
    listed = "; ".join(str(i) for i in issues[:MAX_ISSUES_IN_MESSAGE])
    more = f"; and {len(issues) - MAX_ISSUES_IN_MESSAGE} more" if len(issues) > MAX_ISSUES_IN_MESSAGE else ""
    return f"{path.name}: {len(issues)} of {total} rows are not usable — {listed}{more}."


def normalise_record(value: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(normalised record, None) for a good row, (None, what is wrong) for a bad one."""
    if not isinstance(value, dict):
        return None, f"expected a JSON object, found {type(value).__name__}"
    if "messages" in value:
        messages = value["messages"]
        if not isinstance(messages, list) or not messages:
            return None, '"messages" must be a non-empty list'
        clean = []
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                return None, f"message {index + 1} is not an object"
            role, content = message.get("role"), message.get("content")
            if role not in ROLES:
                return None, f"message {index + 1} has role {role!r}; use one of {', '.join(ROLES)}"
            if not isinstance(content, str):
                return None, f'message {index + 1} needs a text "content"'
            clean.append({"role": role, "content": content})
        if not any(m["role"] == "assistant" and m["content"].strip() for m in clean):
            return None, "no assistant message to learn from"
        return {"messages": clean}, None
    if "prompt" in value or "completion" in value:
        prompt, completion = value.get("prompt"), value.get("completion")
        if not isinstance(prompt, str):
            return None, 'needs a text "prompt"'
        if not isinstance(completion, str) or not completion.strip():
            return None, 'needs a non-empty text "completion"'
        return {"prompt": prompt, "completion": completion}, None
    if "text" in value:
        text = value["text"]
        if not isinstance(text, str) or not text.strip():
            return None, 'needs a non-empty text "text"'
        return {"text": text}, None
    keys = ", ".join(sorted(str(k) for k in value)) or "none"
    return None, f'has none of "messages", "prompt"/"completion" or "text" (keys: {keys})'


# -- preview, split, write -----------------------------------------------------------------------------------
def preview(dataset: Dataset, limit: int = 5, width: int = 160) -> list[tuple[int, str]]:
    """(line, one-line summary) for the first rows."""
    out = []
    for example in dataset.examples[:limit]:
        text = " ".join(example.plain_text().split())
        out.append((example.line, text if len(text) <= width else text[: width - 1] + "…"))
    return out


def split_dataset(dataset: Dataset, valid_fraction: float = 0.1, seed: int = 0) -> DatasetSplit:
    """Train/validation rows: the user's own ``valid.jsonl`` if given, else a seeded random split that keeps
    at least one row on each side (a dataset of one row validates on its training row)."""
    if dataset.valid_examples:
        return DatasetSplit(dataset.examples, dataset.valid_examples)
    if not 0.0 <= valid_fraction < 1.0:
        raise DatasetError(f"The validation share must be between 0 and 1, not {valid_fraction}.")
    examples = list(dataset.examples)
    if len(examples) < 2 or valid_fraction == 0.0:
        return DatasetSplit(tuple(examples), tuple(examples[:1]))
    random.Random(seed).shuffle(examples)
    n_valid = min(len(examples) - 1, max(1, round(len(examples) * valid_fraction)))
    valid = sorted(examples[:n_valid], key=lambda e: e.line)
    train = sorted(examples[n_valid:], key=lambda e: e.line)
    return DatasetSplit(tuple(train), tuple(valid))


def write_jsonl(examples: Iterable[Example], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.record, ensure_ascii=False) + "\n")
    return path


def write_split(split: DatasetSplit, folder: Path) -> Path:
    """Write ``train.jsonl`` and ``valid.jsonl`` (the layout mlx-lm reads) and return the folder."""
    write_jsonl(split.train, folder / "train.jsonl")
    write_jsonl(split.valid, folder / "valid.jsonl")
    return folder


def read_jsonl_examples(path: Path) -> tuple[Example, ...]:
    """Read back a file written by ``write_jsonl`` (already validated)."""
    return load_dataset(path).examples


# -- token statistics ----------------------------------------------------------------------------------------
def token_stats(examples: Sequence[Example], count_tokens: Callable[[Example], int], max_length: int) -> TokenStats:
    """Token lengths of the rows, counted by ``count_tokens`` (the model's tokenizer and chat template)."""
    if not examples:
        return TokenStats(0, 0, 0, 0.0, 0, 0, max_length)
    lengths = [int(count_tokens(e)) for e in examples]
    ordered = sorted(lengths)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    too_long = tuple(e.line for e, n in zip(examples, lengths, strict=True) if n > max_length)
    return TokenStats(
        count=len(lengths),
        min_tokens=ordered[0],
        max_tokens=ordered[-1],
        mean_tokens=statistics.fmean(lengths),
        p95_tokens=p95,
        total_tokens=sum(lengths),
        max_length=max_length,
        too_long_lines=too_long,
    )
