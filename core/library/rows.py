"""The library's SQLite table and the conversions between its rows and ``LibraryEntry`` values."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.models.detect import stat_key
from core.models.types import Candidate, LibraryEntry, ModelFormat, ModelMetadata, Origin
from core.text import printable, printable_or_none

LIBRARY_SCHEMA = [
    """
    CREATE TABLE library_models (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        format TEXT NOT NULL,
        origin TEXT NOT NULL,
        source TEXT,
        root TEXT NOT NULL UNIQUE,
        files TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        architecture TEXT,
        parameter_count INTEGER,
        quant TEXT,
        context_length INTEGER,
        has_chat_template INTEGER NOT NULL DEFAULT 0,
        license TEXT,
        model_name TEXT,
        base_model TEXT,
        repo_id TEXT,
        base_model_id TEXT REFERENCES library_models(id) ON DELETE SET NULL,
        fingerprint TEXT,
        stat_key TEXT,
        added_at REAL NOT NULL
    );
    CREATE INDEX library_by_size ON library_models(size_bytes);
    CREATE TABLE library_hidden (root TEXT PRIMARY KEY, hidden_at REAL NOT NULL);
    """,
    "ALTER TABLE library_models ADD COLUMN embedding INTEGER NOT NULL DEFAULT 0;",
]

COLUMNS = (
    "id, name, format, origin, source, root, files, size_bytes, architecture, parameter_count, quant, "
    "context_length, has_chat_template, license, model_name, base_model, embedding, repo_id, base_model_id, "
    "fingerprint, stat_key, added_at"
)


def unique_name(conn: Any, name: str) -> str:
    taken = {r[0].lower() for r in conn.execute("SELECT name FROM library_models").fetchall()}
    if name.lower() not in taken:
        return name
    n = 2
    while f"{name}-{n}".lower() in taken:
        n += 1
    return f"{name}-{n}"


def safe_stat_key(files: Sequence[Path]) -> str | None:
    try:
        return stat_key(files)
    except OSError:
        return None


def candidate_of(entry: LibraryEntry) -> Candidate:
    return Candidate(entry.name, entry.format, entry.root, entry.files, entry.size_bytes, entry.metadata)


def entry_from(
    candidate: Candidate, entry_id: str, origin: Origin, base_model_id: str | None, added_at: float
) -> LibraryEntry:
    return LibraryEntry(
        id=entry_id,
        name=candidate.name,
        format=candidate.format,
        origin=origin,
        root=candidate.root.absolute(),
        files=tuple(f.absolute() for f in candidate.files),
        size_bytes=candidate.size_bytes,
        metadata=candidate.metadata,
        source=candidate.source,
        repo_id=candidate.repo_id,
        base_model_id=base_model_id,
        added_at=added_at,
    )


def row_to_entry(row: Any) -> LibraryEntry:
    """A row as an entry; header strings are made printable here too (rows written before they were cleaned)."""
    return LibraryEntry(
        id=row["id"],
        name=printable(row["name"]),
        format=ModelFormat(row["format"]),
        origin=Origin(row["origin"]),
        root=Path(row["root"]),
        files=tuple(Path(f) for f in json.loads(row["files"])),
        size_bytes=int(row["size_bytes"]),
        metadata=ModelMetadata(
            architecture=printable_or_none(row["architecture"]),
            parameter_count=row["parameter_count"],
            quant=printable_or_none(row["quant"]),
            context_length=row["context_length"],
            has_chat_template=bool(row["has_chat_template"]),
            license=printable_or_none(row["license"]),
            model_name=printable_or_none(row["model_name"]),
            base_model=printable_or_none(row["base_model"]),
            embedding=bool(row["embedding"]),
        ),
        source=printable_or_none(row["source"]),
        repo_id=printable_or_none(row["repo_id"]),
        base_model_id=row["base_model_id"],
        fingerprint=row["fingerprint"],
        added_at=float(row["added_at"]),
    )
