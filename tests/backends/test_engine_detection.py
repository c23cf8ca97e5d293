"""Hardware detection with the real engines installed (moved from tests/core, which runs without them): the probe
finds llama.cpp, and ``hangar hw`` reports it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import main
from core.hardware import detect_hardware

pytest.importorskip("llama_cpp")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = main.main(argv)
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1]) if out else {}


def test_hw_json(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _run(["hw", "--json"], capsys)
    assert code == 0
    assert data["ram_total_bytes"] > 0 and data["gpus"] == []
    assert data["engines"]["llama_installed"] is True
    assert main.main(["hw"]) == 0
    assert "llama.cpp" in capsys.readouterr().out


def test_real_machine_detection_never_fails() -> None:
    from backends.probe import probe_engines

    hardware = detect_hardware(probe_engines)
    assert hardware.ram_total_bytes > hardware.ram_available_bytes > 0
    assert hardware.cpu_threads >= hardware.cpu_cores >= 1
    assert hardware.engines.llama_installed
    assert hardware.engines.llama_gpu_offload is False  # this machine's llama-cpp-python is a CPU build
    assert hardware.gpus == ()  # no GPU here, and no fake leaks into the real path
    data = hardware.as_dict()
    assert data["engines"]["summary"]["llama.cpp"] == "CPU only"


def test_a_decode_probe_that_crashes_with_extra_buffers_is_measured_without_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama.cpp's repacked-weight path crashing in the probe (AMX on some Xeons; here the test-only fault switch
    on any CPU) costs neither the buffer facts nor the decode rate, and is recorded for the engine and estimator."""
    from backends.facts import engine_facts

    monkeypatch.setenv("HANGAR_TEST_ENGINE_CRASH", "probe")
    facts = engine_facts(tmp_path, refresh=True)
    assert facts is not None and facts.decode_gbs > 0
    # a CPU whose llama.cpp has no extra buffer type has nothing to turn off
    assert facts.extra_buffers_crash == bool(facts.extra_buffers)
    monkeypatch.delenv("HANGAR_TEST_ENGINE_CRASH")
    from core.estimate.facts import FACTS_FILE, load_cached

    cached = json.loads((tmp_path / FACTS_FILE).read_text())["facts"]
    assert cached["extra_buffers_crash"] == facts.extra_buffers_crash
    assert load_cached(tmp_path / FACTS_FILE, facts.llama_version, facts.cpu_key) == facts
