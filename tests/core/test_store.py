from __future__ import annotations

import os
import sqlite3
import threading
import time
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
    with pytest.raises(StoreError, match="made by a newer Hangar"):
        store.migrate("demo", ["CREATE TABLE a (x);"])
    assert store.schema_version("demo") == 2  # refused, not changed


def _kept(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("db.sqlite3.bad-*"))


def test_a_file_that_is_not_a_database_is_kept_aside_and_said(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    store = Store(path)
    assert store.migrate("demo", ["CREATE TABLE t (x);"]) == 1  # a fresh database works
    [kept] = [p for p in _kept(tmp_path) if not p.name.endswith(("-wal", "-shm"))]
    assert kept.read_bytes() == b"this is not a database" * 100
    assert len(store.notices) == 1 and kept.name in store.notices[0] and "damaged" in store.notices[0]


def test_an_empty_database_file_is_not_silently_recreated(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"")
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))  # not one another process is creating right now
    store = Store(path)
    assert [p.stat().st_size for p in _kept(tmp_path)] == [0]
    assert "0 bytes" in store.notices[0]


def test_a_garbled_page_is_kept_aside_with_one_clear_notice(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    store.migrate("demo", ["CREATE TABLE t (x TEXT);"])
    with store.transaction() as conn:
        for i in range(300):
            conn.execute("INSERT INTO t (x) VALUES (?)", (f"row {i} " * 20,))
    store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 3 * page
    data[2 * page + 8 : 3 * page] = b"\xff" * (page - 8)  # a b-tree page overwritten with garbage
    path.write_bytes(bytes(data))
    again = Store(path)
    assert again.notices and "damaged" in again.notices[0]
    assert len(again.notices[0].splitlines()) == 1
    assert any(p.read_bytes() == bytes(data) for p in _kept(tmp_path))
    assert again.schema_version("demo") == 0


def test_an_healthy_database_has_no_notices(tmp_path: Path) -> None:
    Store(tmp_path / "db.sqlite3").close()
    assert Store(tmp_path / "db.sqlite3").notices == [] and _kept(tmp_path) == []


def test_racing_migrations_apply_each_step_once(tmp_path: Path) -> None:
    """Several processes (here: connections) opening one new database at once, as three `pull`s do."""
    path = tmp_path / "db.sqlite3"
    steps = ["CREATE TABLE jobs (x);", "ALTER TABLE jobs ADD COLUMN y;", "CREATE TABLE more (z);"]
    errors: list[BaseException] = []
    for _trial in range(5):
        for leftover in tmp_path.glob("db.sqlite3*"):
            leftover.unlink()
        stores = [Store(path) for _ in range(6)]
        barrier = threading.Barrier(len(stores))

        def migrate(store: Store, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                store.migrate("jobs", steps)
            except BaseException as exc:  # collected: the test reports them all
                errors.append(exc)

        threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert stores[0].schema_version("jobs") == 3
        for s in stores:
            s.close()


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


def test_processes_creating_one_new_database_at_once_share_it(tmp_path: Path) -> None:
    """Three `pull`s on a fresh data folder: each opens (creates) and migrates the same new database."""
    for trial in range(5):
        path = tmp_path / f"db{trial}.sqlite3"
        barrier = threading.Barrier(6)
        stores: list[Store] = []
        errors: list[BaseException] = []

        def open_and_migrate(
            path: Path = path,
            barrier: threading.Barrier = barrier,
            stores: list[Store] = stores,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait()
            try:
                store = Store(path)
                store.migrate("jobs", ["CREATE TABLE jobs (x);", "ALTER TABLE jobs ADD COLUMN y;"])
                stores.append(store)
            except BaseException as exc:  # collected: the test reports them all
                errors.append(exc)

        threads = [threading.Thread(target=open_and_migrate) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(stores) == 6
        assert all(s.notices == [] for s in stores) and not list(tmp_path.glob("*.bad-*"))
        stores[0].execute("INSERT INTO jobs (x, y) VALUES (1, 2)")
        assert stores[-1].query_one("SELECT COUNT(*) FROM jobs")[0] == 1  # one database, shared
        for s in stores:
            s.close()
