"""One model over several machines with llama.cpp RPC: real workers (``hangar worker``'s child processes) on
loopback, asked for their memory over the RPC protocol, used by the engine to hold the layers — with the same
greedy text as without them — planned by the estimator per device, and failing in one line when one is down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.rpc_worker import serve as serve_worker
from core.engine.host import ChatMessage, GenerationParams, LoadOptions, ModelSpec
from core.errors import UsageError
from core.remote.rpc import (
    ClientConnected,
    WorkerProcess,
    WorkerRequest,
    exposure_warning,
    parse_endpoints,
    query_worker,
)
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workers() -> Iterator[list[WorkerProcess]]:
    started = []
    try:
        for _ in range(2):
            worker = WorkerProcess(serve_worker, WorkerRequest("127.0.0.1", free_port(), threads=1))
            worker.start()
            started.append(worker)
        yield started
    finally:
        for worker in started:
            worker.stop()


def test_a_worker_reports_its_device_and_free_memory(workers: list[WorkerProcess]) -> None:
    info = query_worker(workers[0].endpoint)
    assert info.answered and info.error is None and info.protocol and info.protocol.startswith("7.")
    assert len(info.devices) >= 1
    assert 0 < info.devices[0].free_bytes <= info.devices[0].total_bytes


def test_greedy_text_through_two_workers_equals_local_text(app, tiny_gguf: Path, workers) -> None:
    prompt = [ChatMessage("user", "Say something about the sea")]
    params = GenerationParams(max_tokens=24, temperature=0.0, ignore_eos=True)
    local = app.new_engine_host("local")
    local.load_blocking(ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=512)))
    expected = local.generate_blocking(prompt, params).text
    local.shutdown()

    connections: list[object] = []
    workers[0].events.connect(lambda e: connections.append(e) if isinstance(e, ClientConnected) else None)
    spread = app.new_engine_host("rpc")
    endpoints = tuple(w.endpoint for w in workers)
    info = spread.load_blocking(
        ModelSpec("llama", str(tiny_gguf), LoadOptions(context_length=512, rpc_servers=endpoints))
    )
    # the layers' weights really are on the workers: llama.cpp reports a model buffer on each
    for endpoint in endpoints:
        assert any(key.startswith("model:RPC") and endpoint in key for key in info.allocated), info.allocated
    assert spread.generate_blocking(prompt, params).text == expected
    assert connections  # the worker saw the engine connect
    spread.shutdown()


def test_estimate_plans_the_split_per_device(tiny_gguf: Path, workers, tmp_path: Path) -> None:
    endpoints = ",".join(w.endpoint for w in workers)
    result = subprocess.run(
        [sys.executable, "main.py", "estimate", str(tiny_gguf), "--ctx", "512", "--rpc", endpoints, "--json"],
        cwd=ROOT,
        env=dict(os.environ, HANGAR_DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [w["endpoint"] for w in data["rpc"]] == [w.endpoint for w in workers]
    assert all(w["free_bytes"] > 0 for w in data["rpc"])
    devices = [row["device"] for row in data["split"]]
    assert devices[0] == "CPU" and devices[1:] == [f"RPC0[{w.endpoint}]" for w in workers]
    assert data["gpu_layers"] == data["n_layer"] + 1 and data["fits"] is True
    assert sum(row["weights_bytes"] for row in data["split"][1:]) > 0  # the layers are on the workers
    # llama.cpp's own fit pass sized the devices, the workers registered in its child; the analytic split agrees
    assert data["source"] == "llama.cpp fit"
    analytic = subprocess.run(
        [
            sys.executable,
            "main.py",
            "estimate",
            str(tiny_gguf),
            "--ctx",
            "512",
            "--rpc",
            endpoints,
            "--json",
            "--no-fit",
        ],
        cwd=ROOT,
        env=dict(os.environ, HANGAR_DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    plain = json.loads(analytic.stdout)
    assert plain["source"] == "analytic"
    for fit_row, row in zip(data["split"], plain["split"], strict=True):
        assert row["device"] == fit_row["device"]
        assert abs(row["compute_bytes"] - fit_row["compute_bytes"]) <= 0.03 * fit_row["compute_bytes"] + 65536


def test_a_down_worker_fails_in_one_line(tiny_gguf: Path, tmp_path: Path) -> None:
    closed = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, HANGAR_DATA_DIR=str(tmp_path))
    for argv in (
        ["chat", str(tiny_gguf), "--prompt", "hi", "--rpc", closed, "--json"],
        ["estimate", str(tiny_gguf), "--rpc", closed],
    ):
        result = subprocess.run(
            [sys.executable, "main.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1 and closed in result.stderr and "cannot be reached" in result.stderr


def test_worker_command_listens_on_loopback_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "main.py", "worker", "--port", str(port), "--json"],
        cwd=ROOT,
        env=dict(os.environ, HANGAR_DATA_DIR=str(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        assert first["event"] == "WorkerStarted" and first["endpoint"] == f"127.0.0.1:{port}"
        assert first["warning"] is None and first["devices"]
        assert query_worker(first["endpoint"]).answered
        busy = subprocess.run(
            [sys.executable, "main.py", "worker", "--port", str(port)],
            cwd=ROOT,
            env=dict(os.environ, HANGAR_DATA_DIR=str(tmp_path)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert busy.returncode == 1 and f"Cannot listen on 127.0.0.1:{port}" in busy.stderr
    finally:
        process.terminate()
        process.wait(20)
    assert process.returncode == 0


def test_endpoints_and_exposure_are_checked() -> None:
    assert parse_endpoints("a:1, b:2,a:1") == ("a:1", "b:2")
    assert parse_endpoints("gpu-box") == ("gpu-box:50052",)
    assert parse_endpoints("[::1]:9") == ("[::1]:9",)
    for bad in ("a:b", "a:0", "a:70000", ":5"):
        with pytest.raises(UsageError):
            parse_endpoints(bad)
    assert exposure_warning("127.0.0.1", 50052) is None
    assert exposure_warning("::1", 50052) is None
    warning = exposure_warning("0.0.0.0", 50052)
    assert warning and "no authentication" in warning and "ssh -L 50052" in warning


def test_chat_over_workers_records_estimate_vs_actual_per_device(tiny_gguf: Path, workers, tmp_path: Path) -> None:
    from core.estimate.calibrate import estimate_accuracy
    from core.estimate.records import load_history
    from core.paths import AppPaths
    from core.store import Store

    endpoints = [w.endpoint for w in workers]
    argv = ["chat", str(tiny_gguf), "--prompt", "hi", "--max-tokens", "2", "--context-length", "512", "--json"]
    result = subprocess.run(
        [sys.executable, "main.py", *argv, "--rpc", ",".join(endpoints)],
        cwd=ROOT,
        env=dict(os.environ, HANGAR_DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    allocation = json.loads(result.stdout)["allocation"]
    assert allocation["source"] == "analytic"
    rows = {row["device"]: row for row in allocation["devices"]}
    assert list(rows) == ["CPU", *(f"RPC0[{e}]" for e in endpoints)]
    for row in rows.values():  # weights, KV and compute per device, as llama.cpp placed them
        assert row["actual_mib"] > 0 and row["estimate_mib"] > 0
        assert abs(row["error_pct"]) <= 3, allocation
    # recorded per device, as local loads are recorded, and counted by the Hardware page's accuracy
    store = Store(AppPaths.under(tmp_path).database_file)
    history = load_history(store)
    assert sorted(r.device for r in history) == sorted(rows)
    assert all(r.actual_total > 0 and r.estimated_total > 0 for r in history)
    accuracy = estimate_accuracy(store)
    assert accuracy.count == 3 and "3 of them per device" in accuracy.words
