from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from core.errors import StoreError
from core.store import Store


def test_wal_mode_and_migrations_apply_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    assert store.query_one("PRAGMA journal_mode")[0] == "wal"
    steps = ["CREATE TABLE t (x INTEGER);", "ALTER TABLE t ADD COLUMN y TEXT; CREATE INDEX t_y ON t(y);"]
    assert store.migrate("demo", steps) == 2
    store.execute("INSERT INTO t (x, y) VALUES (1, 'a;b')")
    store.close()
    reopened = Store(tmp_path / "db.sqlite3")
    assert reopened.migrate("demo", steps) == 2  # nothing re-applied
    assert reopened.schema_version("demo") == 2
    assert [tuple(r) for r in reopened.query("SELECT x, y FROM t")] == [(1, "a;b")]


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    with pytest.raises(sqlite3.OperationalError):
        store.migrate("demo", ["CREATE TABLE ok (x); CREATE TABLE broken (;"])
    assert store.schema_version("demo") == 0
    assert store.query("SELECT name FROM sqlite_master WHERE name = 'ok'") == []


def test_newer_database_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    store.migrate("demo", ["CREATE TABLE a (x);", "CREATE TABLE b (x);"])
    with pytest.raises(StoreError, match="newer version"):
        store.migrate("demo", ["CREATE TABLE a (x);"])


def test_damaged_database_gives_an_actionable_error(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="could not be opened"):
        Store(path)


def test_concurrent_writers_from_threads(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    store.migrate("demo", ["CREATE TABLE t (x INTEGER);"])

    def write(base: int) -> None:
        for i in range(200):
            with store.transaction() as conn:
                conn.execute("INSERT INTO t (x) VALUES (?)", (base + i,))

    threads = [threading.Thread(target=write, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.query_one("SELECT COUNT(*) FROM t")[0] == 800
