"""``hangar hw`` and ``hangar estimate`` through main.main: local files, model folders and Hub targets read
remotely from a local Range server (header only, no download)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import main
from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from tests.core.test_estimate import _mlx_folder
from tests.support.fixtures_fit import RangeServer


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = main.main(argv)
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1]) if out else {}


def test_estimate_local_file(data_dir: Path, tiny_gguf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _run(["estimate", str(tiny_gguf), "--ctx", "1024", "--json"], capsys)
    assert code == 0
    assert data["verdict"] == "cpu_only" and data["n_ctx"] == 1024
    host = data["breakdown"]["CPU"]
    assert data["total_bytes"] == host["total"] > host["weights"] > 0
    assert host["kv"] == 2 * 2 * 2 * 16 * 2 * 1024
    assert data["max_context"] >= 1024 and data["tokens_per_second"] > 0
    # the keys scripts already read stay; the new ones say who answered and how sure the speed is
    for key in ("model", "total_bytes", "resident_bytes", "verdict", "verdict_text", "gpu_layers", "n_layer"):
        assert key in data
    assert data["source"] == "llama.cpp fit"  # the engine's own dry run, in a child process
    assert data["speed"]["low"] <= data["tokens_per_second"] <= data["speed"]["high"]
    assert data["speed"]["confidence"] in ("probed", "rough", "calibrated", "measured")
    code, analytic = _run(["estimate", str(tiny_gguf), "--ctx", "1024", "--no-fit", "--json"], capsys)
    assert code == 0 and analytic["source"] == "analytic"
    assert analytic["total_bytes"] == pytest.approx(data["total_bytes"], rel=0.03)
    assert main.main(["estimate", str(tiny_gguf), "--gpu-layers", "auto"]) == 0
    text = capsys.readouterr().out
    assert "verdict" in text and "source   llama.cpp fit" in text and " GB " not in text


def test_estimate_hub_file_reads_only_the_header(
    data_dir: Path, range_server: RangeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = write_tiny_gguf(
        tmp_path / "big-Q8_0.gguf", TinyModelConfig(n_embd=256, n_ff=1024, n_layer=4, n_vocab=8000, weight_type="Q8_0")
    )
    shutil.copy(model, range_server.repo_dir("someone/Tiny-GGUF") / model.name)
    code, data = _run(["estimate", f"someone/Tiny-GGUF:{model.name}", "--ctx", "2048", "--json"], capsys)
    assert code == 0 and data["n_ctx"] == 2048 and data["verdict"] == "cpu_only"
    assert data["breakdown"]["CPU"]["weights"] > 1_000_000
    assert range_server.bytes_sent < model.stat().st_size / 3
    assert not list(data_dir.rglob("*.gguf"))  # nothing was downloaded
    # llama.cpp's fit pass ran on a sparse local copy of the header: the same answer as for the file on disk
    assert data["source"] == "llama.cpp fit"
    code, local = _run(["estimate", str(model), "--ctx", "2048", "--json"], capsys)
    assert code == 0 and local["source"] == "llama.cpp fit" and local["total_bytes"] == data["total_bytes"]


def test_estimate_mlx_folder_and_hub_repo(
    data_dir: Path, range_server: RangeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _mlx_folder(tmp_path / "mlx-model")
    code, data = _run(["estimate", str(folder), "--json"], capsys)
    assert code == 0 and data["engine"] == "mlx" and data["breakdown"]["weights"] > 0
    for item in folder.iterdir():
        shutil.copy(item, range_server.repo_dir("mlx-community/tiny-4bit") / item.name)
    code, remote = _run(["estimate", "mlx-community/tiny-4bit", "--json"], capsys)
    assert code == 0 and remote["breakdown"]["weights"] == data["breakdown"]["weights"]


def test_estimate_errors(
    data_dir: Path, tmp_path: Path, range_server: RangeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = _run(["estimate", str(tmp_path / "missing.gguf"), "--json"], capsys)
    assert code != 0 and data["error"]["code"] == "not_found"
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 16)
    code, data = _run(["estimate", str(bad), "--json"], capsys)
    assert code != 0 and data["error"]["code"] == "model_file"
    code, data = _run(["estimate", "nobody/nothing", "--json"], capsys)
    assert code != 0 and data["error"]["code"] == "not_found"


def test_estimate_hub_repo_picks_a_gguf(
    data_dir: Path, range_server: RangeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = range_server.repo_dir("someone/Many-GGUF")
    for quant in ("Q8_0", "Q4_0"):
        write_tiny_gguf(repo / f"tiny-{quant}.gguf", TinyModelConfig(weight_type=quant))
    (repo / "README.md").write_text("hello")
    code, data = _run(["estimate", "someone/Many-GGUF", "--json"], capsys)
    assert code == 0 and data["model"] == "tiny-Q4_0.gguf"  # the preferred quant when none is named
    write_tiny_gguf(repo / "tiny-F16.gguf", TinyModelConfig())
    (repo / "tiny-Q4_0.gguf").unlink()
    code, data = _run(["estimate", "someone/Many-GGUF", "--json"], capsys)
    assert code == 0 and data["model"] == "tiny-Q8_0.gguf"
    (repo / "tiny-Q8_0.gguf").rename(repo / "tiny-IQ2.gguf")
    code, data = _run(["estimate", "someone/Many-GGUF", "--json"], capsys)
    assert code != 0 and "name one" in data["error"]["message"]


def test_rough_fit_level_from_file_size() -> None:
    from core.estimate.fitting import FitLevel, rough_fit_level
    from core.hardware import GIB
    from tests.core.test_estimate import machine

    assert rough_fit_level(4 * GIB, None) is FitLevel.UNKNOWN
    assert rough_fit_level(4 * GIB, machine(gpu_free=8 * GIB)) is FitLevel.FITS
    assert rough_fit_level(12 * GIB, machine(gpu_free=8 * GIB, ram=32 * GIB)) is FitLevel.PARTIAL
    assert rough_fit_level(12 * GIB, machine(ram=32 * GIB)) is FitLevel.FITS
    assert rough_fit_level(60 * GIB, machine(gpu_free=8 * GIB, ram=32 * GIB)) is FitLevel.TOO_LARGE
