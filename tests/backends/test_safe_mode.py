"""Safe mode on the real llama.cpp engine: a native crash (caused on demand by the engine child's test-only fault
switch, ``HANGAR_TEST_ENGINE_CRASH``) is retried with the risky features off, the answer comes, what worked is
remembered for this file on this machine, and the next load goes straight to safe mode."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import main
from backends.worker import serve
from core.chat.session import ChatSession, ReplyRestarted
from core.chat.store import ChatSettings, ChatStore, MessageState
from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.engine.host import EngineHost
from core.engine.protocol import (
    ChatMessage,
    EngineEvent,
    EngineRecovering,
    EngineStarted,
    GenerationParams,
    LoadOptions,
    ModelSpec,
)
from core.engine.safemode import SafeModeBook, safe_steps
from core.errors import EngineCrashedError
from core.store import Store

#: Two threads and flash attention off make the ladder the same on every machine: extra buffers, mmap, threads.
OPTIONS = LoadOptions(context_length=512, threads=2, flash_attention=False)
REPACKING = "repacked weight buffers"


@pytest.fixture
def book(tmp_path: Path) -> Iterator[SafeModeBook]:
    store = Store(tmp_path / "safe.sqlite3")
    yield SafeModeBook(store)
    store.close()


@pytest.fixture
def hosts(book: SafeModeBook) -> Iterator[list[EngineHost]]:
    made: list[EngineHost] = []
    yield made
    for host in made:
        host.shutdown()


def new_host(hosts: list[EngineHost], book: SafeModeBook) -> tuple[EngineHost, list[EngineEvent]]:
    host = EngineHost(serve, name="test-safe-mode", safe_modes=book)
    seen: list[EngineEvent] = []
    host.events.connect(seen.append)
    hosts.append(host)
    return host, seen


def spec(path: Path) -> ModelSpec:
    return ModelSpec("llama", str(path), OPTIONS)


def test_the_ladder_turns_one_more_feature_off_each_step() -> None:
    steps = safe_steps(LoadOptions(threads=4, flash_attention=True))
    assert [options.use_extra_bufts for options, _ in steps] == [False] * 4
    assert [len(changes) for _, changes in steps] == [1, 2, 3, 4]
    last = steps[-1][0]
    assert (last.flash_attention, last.use_mmap, last.threads) == (False, False, 2)
    # nothing to turn off twice: flash attention already off, one thread already
    assert len(safe_steps(LoadOptions(threads=1, flash_attention=False))) == 2


def test_a_crash_while_loading_is_retried_in_safe_mode_and_remembered(
    tiny_gguf: Path, book: SafeModeBook, hosts: list[EngineHost], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANGAR_TEST_ENGINE_CRASH", "load")  # aborts while the extra buffer types are on
    host, seen = new_host(hosts, book)
    info = host.load_blocking(spec(tiny_gguf), timeout=120)
    recovering = [e for e in seen if isinstance(e, EngineRecovering)]
    assert len(recovering) == 1
    crash = recovering[0].crash
    assert "crashed (SIGABRT)" in crash and f"while loading {tiny_gguf.name}" in crash
    assert "damaged" not in crash  # never blames a file that may be fine
    assert len(info.safe_mode) == 1 and REPACKING in info.safe_mode[0]
    assert info.safe_mode_reason == crash
    stats = host.generate_blocking([ChatMessage("user", "hi")], GenerationParams(max_tokens=4, ignore_eos=True))
    assert stats.completion_tokens == 4
    record = book.known_crash(tiny_gguf)
    assert record is not None and record.runs and record.level == 1 and REPACKING in record.describe()

    # A fresh engine goes straight to safe mode: no crash, no retry (the switch is still armed).
    again, seen_again = new_host(hosts, book)
    info_again = again.load_blocking(spec(tiny_gguf), timeout=120)
    assert info_again.safe_mode == info.safe_mode
    assert not [e for e in seen_again if isinstance(e, EngineRecovering)]
    assert len([e for e in seen_again if isinstance(e, EngineStarted)]) == 1


def test_a_crash_while_generating_restarts_the_reply_in_safe_mode(
    tiny_gguf: Path, book: SafeModeBook, hosts: list[EngineHost], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HANGAR_TEST_ENGINE_CRASH", "generate")  # aborts after the first streamed piece
    host, _ = new_host(hosts, book)
    assert not host.load_blocking(spec(tiny_gguf), timeout=120).safe_mode
    store = Store(tmp_path / "chats.sqlite3")
    chats = ChatStore(store)
    settings = ChatSettings(max_tokens=16, seed=2)
    session = ChatSession(chats, host, chats.create(settings=settings).id)
    restarted: list[ReplyRestarted] = []
    session.events.connect(lambda e: restarted.append(e) if isinstance(e, ReplyRestarted) else None)
    try:
        session.send("hello")
        reply = session.wait(120)
        # the text streamed before the crash is void: the stored reply is the safe-mode reply alone, the same
        # as the same request now gives
        again = host.generate_blocking([ChatMessage("user", "hello")], settings)
    finally:
        session.close()
        store.close()
    assert reply.state == MessageState.DONE, reply.error
    assert reply.completion_tokens == again.completion_tokens > 0
    assert len(restarted) == 1 and "while generating with" in restarted[0].notice and REPACKING in restarted[0].notice
    assert reply.content == again.text
    assert host.model is not None and REPACKING in host.model.safe_mode[0]
    record = book.known_crash(tiny_gguf)
    assert record is not None and record.runs and record.level == 1


def test_a_model_that_crashes_at_every_step_is_recorded_as_unable_to_run(
    tiny_gguf: Path, book: SafeModeBook, hosts: list[EngineHost], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANGAR_TEST_ENGINE_CRASH", "load:always")
    host, seen = new_host(hosts, book)
    with pytest.raises(EngineCrashedError, match="cannot run on this machine") as failure:
        host.load_blocking(spec(tiny_gguf), timeout=180)
    assert "damaged" not in str(failure.value)
    assert len([e for e in seen if isinstance(e, EngineRecovering)]) == len(safe_steps(OPTIONS)) == 3
    record = book.known_crash(tiny_gguf)
    assert record is not None and not record.runs and "Crashes the engine" in record.describe()
    assert host.outstanding == 0
    # once the crash is gone (a fixed engine build, say) the model loads again, at the safest step
    monkeypatch.delenv("HANGAR_TEST_ENGINE_CRASH")
    info = host.load_blocking(spec(tiny_gguf), timeout=120)
    assert len(info.safe_mode) == 3


def test_cli_chat_recovers_and_says_what_safe_mode_changed(
    tiny_gguf: Path, data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # crashes until mmap is off (safe mode's second step): a crash to recover from even on a machine whose engine
    # probe already turned the extra buffer types off for every load (AMX Xeons)
    monkeypatch.setenv("HANGAR_TEST_ENGINE_CRASH", "load:mmap")
    code = main.main(["chat", str(tiny_gguf), "--prompt", "hi", "--max-tokens", "3", "--json"])
    out, err = capsys.readouterr()
    assert code == 0
    result = json.loads(out)  # stdout is the JSON alone
    assert result["completion_tokens"] > 0 and REPACKING in result["safe_mode"][0]
    assert "Trying again in safe mode" in err


def test_cli_repl_reloads_after_a_failure(
    tiny_gguf: Path, data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANGAR_TEST_ENGINE_CRASH", "generate:always")
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n/load\n/exit\n"))
    code = main.main(["chat", str(tiny_gguf), "--max-tokens", "4", "--context-length", "256"])
    _, err = capsys.readouterr()
    assert code == 0
    assert "the reply failed" in err and "cannot run on this machine" in err
    assert "Type /load to load the model again." in err
    # /load brings the model back (at the safest step, as recorded), so the chat can go on
    assert err.count("Loaded in") == 2 and "Safe mode:" in err.split("Type /load")[-1]


def test_llama_honours_the_safe_mode_switches(tiny_gguf: Path, book: SafeModeBook, hosts: list[EngineHost]) -> None:
    host, _ = new_host(hosts, book)
    mapped = host.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=256)), timeout=120)
    assert any("Mapped" in key for key in mapped.allocated if key.startswith("model:"))
    safest = safe_steps(OPTIONS)[-1][0]
    read = host.load_blocking(ModelSpec("llama", str(tiny_gguf), safest), timeout=120)
    weights = [key for key in read.allocated if key.startswith("model:")]
    assert weights and not any("Mapped" in key for key in weights)  # read into memory, not mapped
    # every weight in the plain host buffer: no extra buffer type (a repacked copy) on any CPU
    assert all(key == "model:CPU" for key in weights), weights
    stats = host.generate_blocking([ChatMessage("user", "hi")], GenerationParams(max_tokens=3, ignore_eos=True))
    assert stats.completion_tokens == 3


def test_the_ladder_climbs_until_the_crash_stops(
    tiny_gguf: Path, book: SafeModeBook, hosts: list[EngineHost], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HANGAR_TEST_ENGINE_CRASH", "load:mmap")  # crashes until mmap is off: the second step
    host, seen = new_host(hosts, book)
    info = host.load_blocking(spec(tiny_gguf), timeout=120)
    assert len([e for e in seen if isinstance(e, EngineRecovering)]) == 2
    assert len(info.safe_mode) == 2 and "memory-mapped" in info.safe_mode[1]
    record = book.known_crash(tiny_gguf)
    assert record is not None and record.level == 2
    # a crash that happens once only (a passing fault) still leaves the model in safe mode for next time
    marker = tmp_path / "crashed-once"
    monkeypatch.setenv("HANGAR_TEST_ENGINE_CRASH", "load:once")
    monkeypatch.setenv("HANGAR_TEST_ENGINE_CRASH_MARKER", str(marker))
    other = write_tiny_gguf(tmp_path / "other.gguf", TinyModelConfig(n_layer=1))
    fresh, _ = new_host(hosts, book)  # the switch is read when the engine process starts
    info = fresh.load_blocking(spec(other), timeout=120)
    assert marker.exists() and len(info.safe_mode) == 1


def test_a_safe_mode_load_is_recorded_against_an_estimate_without_repacked_copies(
    tiny_gguf: Path, book: SafeModeBook, hosts: list[EngineHost], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record after a load in safe mode compares with what that load did: no repacked copies, even where the
    engine facts say this CPU repacks the model's weights (described here, as on an AMX Xeon, whatever runs it)."""
    from core.estimate.records import compare
    from core.hardware import EngineFacts, EngineSupport, ExtraBuffer, Hardware
    from core.remote.split import estimate_for_load

    monkeypatch.setenv("HANGAR_TEST_ENGINE_CRASH", "load")
    host, _ = new_host(hosts, book)
    info = host.load_blocking(spec(tiny_gguf), timeout=120)
    assert info.safe_mode
    facts = EngineFacts("x", "k", extra_buffers=(ExtraBuffer("AMX", {"F16": 1.0, "Q8_0": 1.0}),))
    amx = Hardware(
        os="Linux",
        machine="x86_64",
        cpu_name="cpu",
        cpu_cores=2,
        cpu_threads=2,
        cpu_family="x86_avx2",
        ram_total_bytes=8 << 30,
        ram_available_bytes=8 << 30,
        ram_bandwidth_gbs=20.0,
        engines=EngineSupport(llama_installed=True, facts=facts),
    )
    estimate = estimate_for_load(tiny_gguf, OPTIONS, amx, info)
    assert estimate is not None and not estimate.settings.extra_buffers and estimate.host.repack == 0
    assert abs(compare(estimate, info.allocated).error_pct) < 3.0
