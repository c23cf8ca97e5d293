"""The SQLite store for durable records (jobs, downloads, library, chats), in WAL mode with migrations.

Each feature owns its tables and registers its own ordered list of migration steps under a namespace, so
features evolve their schema independently: ``store.migrate("jobs", [SQL_V1, SQL_V2])``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from core.errors import StoreError

logger = logging.getLogger(__name__)


class Store:
    """One connection shared by every thread, serialised by a lock (SQLite writes are serial anyway)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions (namespace TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"Hangar's database at {path} could not be opened ({exc}).",
                hint="If the file is damaged, move it aside and restart Hangar; a new one will be created.",
            ) from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[object] | dict[str, object] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, params)

    def query(self, sql: str, params: Sequence[object] | dict[str, object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[object] | dict[str, object] = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._conn.execute(sql, params).fetchone()

    def schema_version(self, namespace: str) -> int:
        row = self.query_one("SELECT version FROM schema_versions WHERE namespace = ?", (namespace,))
        return int(row["version"]) if row else 0

    def migrate(self, namespace: str, steps: Sequence[str]) -> int:
        """Apply the steps of ``namespace`` not applied yet, each in its own transaction. Returns the version.

        A database written by a newer Hangar (more steps than this build knows) is refused rather than damaged.
        """
        with self._lock:
            current = self.schema_version(namespace)
            if current > len(steps):
                raise StoreError(
                    f"The database {self.path} was written by a newer version of Hangar "
                    f"({namespace} schema {current}, this version knows {len(steps)}).",
                    hint="Update Hangar, or start it with another --data-dir.",
                )
            for version, sql in enumerate(steps[current:], start=current + 1):
                logger.info("migrating %s schema to version %d", namespace, version)
                with self.transaction() as conn:
                    for statement in _split_statements(sql):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_versions (namespace, version) VALUES (?, ?) "
                        "ON CONFLICT(namespace) DO UPDATE SET version = excluded.version",
                        (namespace, version),
                    )
            return len(steps)


def _split_statements(sql: str) -> list[str]:
    """Split a migration script into statements (``complete_statement`` keeps a quoted ``;`` intact)."""
    statements: list[str] = []
    buffer = ""
    for piece in sql.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n\t;"):
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip(" \n\t;"):
        statements.append(buffer.strip())
    return statements
