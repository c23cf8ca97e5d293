"""The safe-mode records in SQLite: keyed by the file's identity (not its path), this machine and the engine build;
what worked and what never did, for badges elsewhere."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.engine.safemode import SafeModeBook, engine_version, file_identity, machine_fingerprint
from core.store import Store


@pytest.fixture
def book(tmp_path: Path) -> Iterator[SafeModeBook]:
    store = Store(tmp_path / "hangar.sqlite3")
    yield SafeModeBook(store)
    store.close()


def model(path: Path, payload: bytes = b"GGUF" + bytes(range(256)) * 600) -> Path:
    path.write_bytes(payload)
    return path


def test_a_record_follows_the_file_not_its_path(book: SafeModeBook, tmp_path: Path) -> None:
    first = model(tmp_path / "a.gguf")
    book.remember(first, "llama", level=1, changes=("extra buffers off",), reason="it crashed", runs=True)
    moved = tmp_path / "moved" / "b.gguf"
    moved.parent.mkdir()
    shutil.copy(first, moved)
    record = book.known_crash(moved)
    assert record is not None and record.runs and record.level == 1 and record.changes == ("extra buffers off",)
    assert record.describe() == "Runs here in safe mode: extra buffers off"
    # another file (one byte differs at the end) has no record
    other = model(tmp_path / "c.gguf", first.read_bytes()[:-1] + b"\x00")
    assert book.known_crash(other) is None
    assert book.known_crash(tmp_path / "missing.gguf") is None


def test_a_model_that_cannot_run_replaces_what_was_known(book: SafeModeBook, tmp_path: Path) -> None:
    path = model(tmp_path / "m.gguf")
    book.remember(path, "llama", level=1, changes=("a",), reason="crash one", runs=True)
    book.remember(path, "llama", level=3, changes=("a", "b", "c"), reason="crash one", runs=False)
    record = book.known_crash(path)
    assert (
        record is not None and not record.runs and record.describe() == "Crashes the engine on this machine (crash one)"
    )
    book.forget(path)
    assert book.known_crash(path) is None


def test_the_key_names_this_machine_and_engine_build() -> None:
    assert machine_fingerprint() == machine_fingerprint() and machine_fingerprint().count("/") >= 3
    from importlib import metadata

    try:
        installed = metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:  # the core tier runs without engines too
        installed = "unknown"
    assert engine_version("llama") == installed
    assert engine_version("no-such-engine") == "unknown"


def test_file_identity_is_cheap_and_stable(tmp_path: Path) -> None:
    big = tmp_path / "big.gguf"
    with big.open("wb") as handle:
        handle.truncate(64 * 2**20)  # sparse: only the first and last 64 KiB are read
    assert file_identity(big) == file_identity(big)
    assert file_identity(big).startswith(f"{64 * 2**20}:")  # type: ignore[union-attr]
    assert file_identity(tmp_path / "none.gguf") is None


def test_the_chat_picker_badges_a_model_that_crashed_here(app, tiny_gguf: Path) -> None:  # type: ignore[no-untyped-def]
    from core.chat.service import ChatService

    app.safe_modes.remember(tiny_gguf, "llama", level=4, changes=("a",), reason="the engine crashed", runs=False)
    choices = ChatService(app).choices(extra=[str(tiny_gguf)])
    choice = next(c for c in choices if c.path == tiny_gguf)
    assert not choice.fits and choice.badge == "Crashes the engine on this machine (the engine crashed)"


def test_a_machine_whose_probe_crashed_starts_every_load_with_extra_buffers_off(tmp_path: Path) -> None:
    """The engine probe saw llama.cpp's repacked-weight path crash here: loads start at the first safe step (no
    crash per model), a model's own record still wins, and options that already have them off start as asked."""
    from core.engine.protocol import LoadOptions, ModelSpec

    store = Store(tmp_path / "hangar.sqlite3")
    reason = "llama.cpp's decode crashes on this CPU with its extra buffer types (AMX) on"
    book = SafeModeBook(store, machine_reason=lambda: reason)
    spec = ModelSpec("llama", str(model(tmp_path / "a.gguf")))
    level, changes, why = book.starting_step(spec)
    assert level == 1 and why == reason and "repacked" in changes[0]
    assert book.starting_step(ModelSpec("llama", spec.path, LoadOptions(use_extra_bufts=False)))[0] == 0
    assert book.starting_step(ModelSpec("mlx", spec.path))[0] == 0
    book.remember(spec.path, "llama", level=2, changes=("a", "b"), reason="it crashed again", runs=True)
    assert book.starting_step(spec)[2] == "it crashed again"  # what this file needed wins
    failing = SafeModeBook(store, machine_reason=lambda: 1 / 0)  # type: ignore[arg-type, return-value]
    assert failing.starting_step(ModelSpec("llama", str(model(tmp_path / "b.gguf", b"GGUF" * 9000))))[0] == 0
    store.close()
