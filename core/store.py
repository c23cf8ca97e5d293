"""The SQLite store for durable records (jobs, downloads, library, chats), in WAL mode with migrations.

Each feature owns its tables and registers its own ordered list of migration steps under a namespace, so
features evolve their schema independently: ``store.migrate("jobs", [SQL_V1, SQL_V2])``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
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
        #: Sentences for the person, said once (a damaged database kept aside); the front ends show them.
        self.notices: list[str] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"The folder for Hangar's database, {path.parent}, cannot be created ({exc}).") from exc
        damage = _damage_of(path)
        if damage is None:
            try:
                self._conn = self._connect_patiently()
                return
            except sqlite3.DatabaseError as exc:
                if not _is_corruption(exc):
                    raise StoreError(
                        f"Hangar's database at {path} could not be opened ({exc}).",
                        hint="Close other Hangar windows and try again.",
                    ) from exc
                damage = str(exc)
        # Never recreate over a damaged file: keep it aside (with its WAL) so nothing is lost, then start afresh.
        kept = keep_aside(path)
        self.notices.append(
            f"Hangar's database was damaged ({damage}); it was kept as {kept.name} and a new one started. "
            "Your model files are untouched: `hangar ls --rescan` finds them again."
        )
        logger.warning("database %s damaged (%s); kept as %s", path, damage, kept)
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"Hangar's database at {path} could not be created ({exc}).") from exc

    def _connect_patiently(self, wait: float = 15.0) -> sqlite3.Connection:
        """Connect, retrying while another process holds the lock (switching a new database to WAL can report
        "database is locked" at once, without waiting, when several processes open it together)."""
        deadline = time.monotonic() + wait
        delay = 0.02
        while True:
            try:
                return self._connect()
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                    raise
                logger.info("database %s is busy (%s); trying again", self.path, exc)
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                logger.warning("quick_check of %s: %s", self.path, check)
                raise sqlite3.DatabaseError("database disk image is malformed")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions (namespace TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
        except BaseException:
            conn.close()
            raise
        return conn

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

        The version is read inside each write transaction (``BEGIN IMMEDIATE``), so processes migrating the same
        database at once apply every step exactly once. A database made by a newer Hangar (more steps than this
        build knows) is refused, never changed.
        """
        with self._lock:
            while True:
                with self.transaction() as conn:
                    row = conn.execute(
                        "SELECT version FROM schema_versions WHERE namespace = ?", (namespace,)
                    ).fetchone()
                    current = int(row["version"]) if row else 0
                    if current > len(steps):
                        raise StoreError(
                            f"The database {self.path} was made by a newer Hangar "
                            f"({namespace} schema {current}; this version knows {len(steps)}).",
                            hint="Update Hangar, or start it with another --data-dir.",
                        )
                    if current == len(steps):
                        return current
                    version = current + 1
                    logger.info("migrating %s schema to version %d", namespace, version)
                    for statement in _split_statements(steps[current]):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_versions (namespace, version) VALUES (?, ?) "
                        "ON CONFLICT(namespace) DO UPDATE SET version = excluded.version",
                        (namespace, version),
                    )


def keep_aside(path: Path) -> Path:
    """Rename a damaged file (and a database's ``-wal``/``-shm``) to ``NAME.bad-<time>``; returns the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.bad-{stamp}-{n}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target


def _damage_of(path: Path) -> str | None:
    """Why an existing database file is unusable before SQLite opens it (SQLite would quietly treat a 0-byte
    file as a new, empty database); None if it may be fine."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"it cannot be read: {exc.strerror or exc}"
    if path.is_dir():
        return "it is a folder"
    wal = path.with_name(path.name + "-wal")
    if size == 0 and not (wal.exists() and wal.stat().st_size > 0):
        # Another Hangar process may have created it a moment ago and be about to write its first page (three
        # `pull`s started together): only an empty file left alone for a while is a damaged one.
        if time.time() - path.stat().st_mtime < _FRESH_SECONDS:
            return None
        return "the file is empty (0 bytes)"
    return None


#: How long a new, empty database file may wait for its first write before it counts as damaged.
_FRESH_SECONDS = 30.0


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return False
    text = str(exc).lower()
    return any(word in text for word in ("malformed", "not a database", "corrupt", "disk image", "encrypted"))


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
