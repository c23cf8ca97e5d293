"""Collections and their index in SQLite: files (with size, time and hash, so re-indexing reads changed files only),
chunks with their place, an FTS5 full-text index (BM25), and optional embedding vectors; search ranks both together
(reciprocal rank fusion) or, without an embedding model, by full text alone and says so."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from core.docs.extract import UnreadableDocument, files_under, read_pieces
from core.errors import CancelledError, NotFoundError, UsageError
from core.store import Store

logger = logging.getLogger(__name__)

MIGRATIONS = [
    """
    CREATE TABLE doc_collections (
        name TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        embed_model TEXT,
        embed_dim INTEGER
    );
    CREATE TABLE doc_roots (
        collection TEXT NOT NULL REFERENCES doc_collections(name) ON DELETE CASCADE,
        path TEXT NOT NULL,
        PRIMARY KEY (collection, path)
    );
    CREATE TABLE doc_files (
        id INTEGER PRIMARY KEY,
        collection TEXT NOT NULL REFERENCES doc_collections(name) ON DELETE CASCADE,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        sha256 TEXT,
        chunks INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        UNIQUE (collection, path)
    );
    CREATE TABLE doc_chunks (
        id INTEGER PRIMARY KEY,
        file_id INTEGER NOT NULL REFERENCES doc_files(id) ON DELETE CASCADE,
        ord INTEGER NOT NULL,
        text TEXT NOT NULL,
        page INTEGER,
        first_line INTEGER,
        last_line INTEGER,
        vector BLOB
    );
    CREATE INDEX doc_chunks_file ON doc_chunks(file_id);
    CREATE VIRTUAL TABLE doc_chunks_fts USING fts5(text, content='doc_chunks', content_rowid='id',
                                                   tokenize='porter unicode61');
    CREATE TRIGGER doc_chunks_ai AFTER INSERT ON doc_chunks BEGIN
        INSERT INTO doc_chunks_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER doc_chunks_ad AFTER DELETE ON doc_chunks BEGIN
        INSERT INTO doc_chunks_fts(doc_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    """
]
_NAME = re.compile(r"^[\w][\w .-]{0,63}$")
#: Reciprocal-rank-fusion constant (the usual 60): a document high in either ranking rises.
RRF_K = 60


class Embedder(Protocol):
    """Turns texts into unit vectors (an embedding model run by llama.cpp)."""

    model: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


@dataclass(frozen=True)
class Hit:
    path: str
    place: str
    text: str
    score: float
    page: int | None = None
    first_line: int | None = None
    last_line: int | None = None
    #: Rank in the full-text and the vector lists (None: not in that list).
    text_rank: int | None = None
    vector_rank: int | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "place": self.place,
            "page": self.page,
            "first_line": self.first_line,
            "last_line": self.last_line,
            "score": round(self.score, 5),
            "text": self.text,
        }


@dataclass(frozen=True)
class SearchResult:
    hits: tuple[Hit, ...]
    #: "hybrid" (full text + vectors) or "full-text" (no embedding model for this collection).
    retrieval: str
    note: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    roots: tuple[str, ...]
    files: int
    chunks: int
    skipped: int
    embed_model: str | None
    size_bytes: int

    @property
    def retrieval(self) -> str:
        """How the collection is searched: "hybrid" (full text + vectors) or "full-text" (no embedding model)."""
        return "hybrid" if self.embed_model else "full-text"

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "roots": list(self.roots),
            "files": self.files,
            "chunks": self.chunks,
            "skipped": self.skipped,
            "embed_model": self.embed_model,
            "retrieval": self.retrieval,
            "size_bytes": self.size_bytes,
        }


@dataclass
class IndexReport:
    collection: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "collection": self.collection,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "chunks": self.chunks,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "seconds": round(self.seconds, 3),
        }


Progress = Callable[[int, int, str], None]


class DocumentIndex:
    def __init__(self, store: Store) -> None:
        self._store = store
        store.migrate("docs", MIGRATIONS)

    # -- collections --------------------------------------------------------------------------------------------
    def collections(self) -> list[CollectionInfo]:
        rows = self._store.query("SELECT name FROM doc_collections ORDER BY name COLLATE NOCASE")
        return [self.info(row["name"]) for row in rows]

    def info(self, name: str) -> CollectionInfo:
        row = self._store.query_one("SELECT * FROM doc_collections WHERE name = ?", (name,))
        if row is None:
            known = ", ".join(r["name"] for r in self._store.query("SELECT name FROM doc_collections")) or "none yet"
            raise NotFoundError(f"No collection called {name!r} (collections: {known}).")
        roots = tuple(r["path"] for r in self._store.query("SELECT path FROM doc_roots WHERE collection = ?", (name,)))
        stats = self._store.query_one(
            "SELECT COUNT(*) AS files, COALESCE(SUM(chunks), 0) AS chunks, COALESCE(SUM(size), 0) AS size, "
            "SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END) AS skipped FROM doc_files WHERE collection = ?",
            (name,),
        )
        assert stats is not None
        return CollectionInfo(
            name,
            roots,
            int(stats["files"]) - int(stats["skipped"] or 0),
            int(stats["chunks"]),
            int(stats["skipped"] or 0),
            row["embed_model"],
            int(stats["size"]),
        )

    def remove(self, name: str) -> None:
        self.info(name)
        with self._store.transaction() as conn:
            conn.execute(
                "DELETE FROM doc_chunks WHERE file_id IN (SELECT id FROM doc_files WHERE collection = ?)", (name,)
            )
            conn.execute("DELETE FROM doc_files WHERE collection = ?", (name,))
            conn.execute("DELETE FROM doc_roots WHERE collection = ?", (name,))
            conn.execute("DELETE FROM doc_collections WHERE name = ?", (name,))

    # -- indexing -----------------------------------------------------------------------------------------------
    def add(
        self,
        name: str,
        paths: Sequence[Path],
        *,
        embedder: Embedder | None = None,
        progress: Progress | None = None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> IndexReport:
        """Add ``paths`` (files or folders) to collection ``name`` (created if new) and bring its index up to date:
        new and changed files are read, vanished ones dropped, unchanged ones left as they are."""
        if not _NAME.match(name or ""):
            raise UsageError(f"{name!r} is not a usable collection name (letters, digits, space, '.', '_', '-').")
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise NotFoundError(f"Nothing at {missing[0]}.")
        now = time.time()
        with self._store.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO doc_collections (name, created_at) VALUES (?, ?)", (name, now))
            for path in paths:
                conn.execute(
                    "INSERT OR IGNORE INTO doc_roots (collection, path) VALUES (?, ?)", (name, str(path.resolve()))
                )
            if embedder is not None:
                conn.execute("UPDATE doc_collections SET embed_model = ? WHERE name = ?", (embedder.model, name))
        return self.reindex(name, embedder=embedder, progress=progress, cancelled=cancelled)

    def reindex(
        self,
        name: str,
        *,
        embedder: Embedder | None = None,
        progress: Progress | None = None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> IndexReport:
        info = self.info(name)
        started = time.perf_counter()
        report = IndexReport(name)
        files = list(files_under([Path(r) for r in info.roots]))
        known = {
            row["path"]: row
            for row in self._store.query(
                "SELECT id, path, size, mtime, sha256 FROM doc_files WHERE collection = ?", (name,)
            )
        }
        seen: set[str] = set()
        for done, path in enumerate(files):
            if cancelled():
                raise CancelledError("Indexing was cancelled; what was indexed so far is kept.")
            if progress:
                progress(done, len(files), path.name)
            key = str(path.resolve())
            seen.add(key)
            try:
                stat = path.stat()
            except OSError as exc:
                report.skipped.append((key, f"cannot be read ({exc.strerror or exc})"))
                continue
            old = known.get(key)
            if old is not None and old["size"] == stat.st_size and old["mtime"] == stat.st_mtime:
                report.unchanged += 1
                continue
            digest = _sha256(path)
            if old is not None and digest is not None and old["sha256"] == digest:
                self._store.execute("UPDATE doc_files SET mtime = ? WHERE id = ?", (stat.st_mtime, old["id"]))
                report.unchanged += 1
                continue
            try:
                pieces = read_pieces(path)
                error = None
            except UnreadableDocument as exc:
                pieces, error = [], str(exc)
                report.skipped.append((key, str(exc)))
            vectors: list[bytes | None] = [None] * len(pieces)
            if embedder is not None and pieces:
                vectors = [_pack(v) for v in embedder.embed([p.text for p in pieces])]
            with self._store.transaction() as conn:
                if old is not None:
                    conn.execute("DELETE FROM doc_chunks WHERE file_id = ?", (old["id"],))
                    conn.execute(
                        "UPDATE doc_files SET size = ?, mtime = ?, sha256 = ?, chunks = ?, error = ? WHERE id = ?",
                        (stat.st_size, stat.st_mtime, digest, len(pieces), error, old["id"]),
                    )
                    file_id = old["id"]
                else:
                    cursor = conn.execute(
                        "INSERT INTO doc_files (collection, path, size, mtime, sha256, chunks, error) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (name, key, stat.st_size, stat.st_mtime, digest, len(pieces), error),
                    )
                    file_id = cursor.lastrowid
                conn.executemany(
                    "INSERT INTO doc_chunks (file_id, ord, text, page, first_line, last_line, vector) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(file_id, i, p.text, p.page, p.first_line, p.last_line, vectors[i]) for i, p in enumerate(pieces)],
                )
            report.chunks += len(pieces)
            if old is None:
                report.added += 1
            else:
                report.updated += 1
        gone = [row["id"] for path, row in known.items() if path not in seen]
        if gone:
            with self._store.transaction() as conn:
                conn.executemany("DELETE FROM doc_chunks WHERE file_id = ?", [(i,) for i in gone])
                conn.executemany("DELETE FROM doc_files WHERE id = ?", [(i,) for i in gone])
            report.removed = len(gone)
        if progress:
            progress(len(files), len(files), "done")
        report.seconds = time.perf_counter() - started
        return report

    # -- search -------------------------------------------------------------------------------------------------
    def search(
        self, name: str, query: str, *, limit: int = 5, embedder: Embedder | None = None, pool: int = 50
    ) -> SearchResult:
        started = time.perf_counter()
        info = self.info(name)
        if not query.strip():
            raise UsageError("Search for something: the query is empty.")
        if not 1 <= limit <= 100:
            raise UsageError("--limit must be between 1 and 100.")
        text_ranked = self._full_text(name, query, pool)
        vector_ranked: list[int] = []
        note = None
        if embedder is not None and info.embed_model:
            vector_ranked = self._nearest(name, embedder.embed([query])[0], pool)
            retrieval = "hybrid"
        else:
            retrieval = "full-text"
            note = (
                "Full-text search only: this collection has no embedding model "
                "(add one with --embed-model to rank by meaning too)."
                if not info.embed_model
                else "Full-text search only: the embedding model is not loaded."
            )
        scores: dict[int, float] = {}
        ranks: dict[int, tuple[int | None, int | None]] = {}
        for rank, chunk_id in enumerate(text_ranked, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
            ranks[chunk_id] = (rank, None)
        for rank, chunk_id in enumerate(vector_ranked, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
            ranks[chunk_id] = (ranks.get(chunk_id, (None, None))[0], rank)
        best = sorted(scores, key=lambda c: -scores[c])[:limit]
        hits = []
        for chunk_id in best:
            row = self._store.query_one(
                "SELECT c.text, c.page, c.first_line, c.last_line, f.path FROM doc_chunks c "
                "JOIN doc_files f ON f.id = c.file_id WHERE c.id = ?",
                (chunk_id,),
            )
            if row is None:
                continue
            from core.docs.extract import Piece

            place = Piece("", row["page"], row["first_line"], row["last_line"]).place
            text_rank, vector_rank = ranks[chunk_id]
            hits.append(
                Hit(
                    row["path"],
                    place,
                    row["text"],
                    scores[chunk_id],
                    row["page"],
                    row["first_line"],
                    row["last_line"],
                    text_rank,
                    vector_rank,
                )
            )
        return SearchResult(tuple(hits), retrieval, note, time.perf_counter() - started)

    def _full_text(self, name: str, query: str, pool: int) -> list[int]:
        terms = re.findall(r"\w+", query.lower())
        if not terms:
            return []
        match = " OR ".join(f'"{t}"' for t in terms[:32])
        rows = self._store.query(
            "SELECT c.id FROM doc_chunks_fts JOIN doc_chunks c ON c.id = doc_chunks_fts.rowid "
            "JOIN doc_files f ON f.id = c.file_id WHERE doc_chunks_fts MATCH ? AND f.collection = ? "
            "ORDER BY bm25(doc_chunks_fts) LIMIT ?",
            (match, name, pool),
        )
        return [row["id"] for row in rows]

    def _nearest(self, name: str, query_vector: Sequence[float], pool: int) -> list[int]:
        import numpy as np

        rows = self._store.query(
            "SELECT c.id, c.vector FROM doc_chunks c JOIN doc_files f ON f.id = c.file_id "
            "WHERE f.collection = ? AND c.vector IS NOT NULL",
            (name,),
        )
        if not rows:
            return []
        matrix = np.frombuffer(b"".join(r["vector"] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        query = np.asarray(query_vector, dtype=np.float32)
        if matrix.shape[1] != query.shape[0]:
            logger.warning("embedding size changed (%d vs %d); vectors ignored", matrix.shape[1], query.shape[0])
            return []
        similarity = matrix @ (query / (np.linalg.norm(query) or 1.0))
        order = np.argsort(-similarity)[:pool]
        return [rows[i]["id"] for i in order]


def _pack(vector: Sequence[float]) -> bytes:
    import numpy as np

    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array)) or 1.0
    return (array / norm).astype(np.float32).tobytes()


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()
