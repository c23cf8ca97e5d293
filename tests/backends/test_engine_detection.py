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
