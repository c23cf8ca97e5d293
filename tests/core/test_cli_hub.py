"""``hangar search`` / ``pull`` / ``token`` against the local Hub: in-process, and a real pull process killed
mid-download and then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import main
from tests.support.downloads import sha256
from tests.support.hub import LocalHub
from tests.support.hub.catalog import BIGGER_REPO, GATED_REPO, GGUF_REPO

ROOT = Path(__file__).resolve().parents[2]


def test_search_json(hub: LocalHub, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["search", "chatter", "--format", "mlx", "--sort", "likes", "--limit", "5", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 5
    assert all("mlx" in r["formats"] for r in results)
    likes = [r["likes"] for r in results]
    assert likes == sorted(likes, reverse=True)


def test_search_limit_spans_pages(hub: LocalHub, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hub.page_size_cap = 7
    try:
        assert main.main(["search", "chatter", "--task", "any", "--limit", "20", "--json"]) == 0
    finally:
        hub.page_size_cap = 1000
    assert len({r["repo_id"] for r in json.loads(capsys.readouterr().out)}) == 20


def test_search_table(hub: LocalHub, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["search", "tiny-llama", "--task", "any"]) == 0
    out = capsys.readouterr().out
    assert GGUF_REPO in out and "5,000" in out


def test_pull_quant_json(hub: LocalHub, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["pull", GGUF_REPO, "--quant", "q4_0", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    path = Path(result["paths"][0])
    assert result["state"] == "done" and path.name == "tiny-llama-Q4_0.gguf"
    assert sha256(path) == hub.repos[GGUF_REPO].file("tiny-llama-Q4_0.gguf").sha256
    assert "Q4_0" in captured.err  # progress goes to stderr
    # the pulled model is in the library right away, ready for `hangar chat NAME`
    assert len(result["library"]) == 1
    assert main.main(["ls", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [entry["name"] for entry in listed] == result["library"]


def test_pull_gated_without_token_fails_with_the_licence_link(
    hub: LocalHub, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main.main(["pull", GATED_REPO, "--json"]) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "auth" and f"{hub.url}/{GATED_REPO}" in error["message"]


def test_pull_unknown_quant_lists_the_choices(
    hub: LocalHub, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main.main(["pull", GGUF_REPO, "--quant", "Q2_K"]) == 1
    assert "Available: Q4_0, Q8_0, F16, F32" in capsys.readouterr().err


def test_token_status_warns_without_a_keyring(
    hub: LocalHub, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main.main(["token", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["storage"] == "none" and "session only" in status["warning"]


def test_killed_pull_resumes_where_it_stopped(hub: LocalHub, tmp_path: Path) -> None:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HANGAR_DATA_DIR": str(tmp_path / "data")}
    env.pop("HF_TOKEN", None)
    name = "small-llama-F32.gguf"
    size = hub.repos[BIGGER_REPO].files[0].size
    hub.faults.throttle_bps = 3_000_000
    command = [sys.executable, str(ROOT / "main.py"), "pull", BIGGER_REPO, "--json"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert hub.faults.wait_until_sent(f"{BIGGER_REPO}/{name}", size // 2, timeout=60)
        process.send_signal(signal.SIGKILL)  # no chance to clean up or save anything
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    parts = list((tmp_path / "data" / "cache" / "downloads").rglob("*.part"))
    assert len(parts) == 1 and 0 < parts[0].stat().st_size < size
    kept = parts[0].stat().st_size
    hub.faults.throttle_bps = None
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    path = Path(json.loads(finished.stdout)["paths"][0])
    assert sha256(path) == hub.repos[BIGGER_REPO].files[0].sha256
    assert hub.file_requests(BIGGER_REPO, name)[-1].range == f"bytes={kept}-"


def test_ctrl_c_pauses_a_pull_and_the_next_pull_finishes_it(hub: LocalHub, tmp_path: Path) -> None:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HANGAR_DATA_DIR": str(tmp_path / "data")}
    env.pop("HF_TOKEN", None)
    name = "small-llama-F32.gguf"
    hub.faults.throttle_bps = 3_000_000
    command = [sys.executable, str(ROOT / "main.py"), "pull", BIGGER_REPO]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert hub.faults.wait_until_sent(f"{BIGGER_REPO}/{name}", 2_000_000, timeout=60)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert "Paused; run the same command again" in err
    hub.faults.throttle_bps = None
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert sha256(Path(finished.stdout.strip())) == hub.repos[BIGGER_REPO].files[0].sha256
    assert hub.file_requests(BIGGER_REPO, name)[-1].range not in (None, "bytes=0-")
