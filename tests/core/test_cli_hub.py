"""``hangar search`` / ``pull`` / ``token`` against the local Hub: in-process, and a real pull process killed
mid-download and then resumed."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import main
from tests.support.downloads import sha256
from tests.support.hub import LocalHub
from tests.support.hub.catalog import BIGGER_REPO, GATED_REPO, GATED_TOKEN, GGUF_REPO, RANGED_FILE, RANGED_REPO

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
    assert status["storage"] == "none" and "readable only by your user account" in status["warning"]
    assert "HF_TOKEN" in status["warning"]


def test_without_a_keyring_the_token_outlives_the_command(hub: LocalHub, data_dir: Path) -> None:
    """`token set` in one process, a gated `pull` and `estimate` in the next ones: the 0600 file keeps it."""
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HANGAR_DATA_DIR": str(data_dir)}
    env.pop("HF_TOKEN", None)

    def hangar(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(ROOT / "main.py"), *args]
        return subprocess.run(command, cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=120)

    stored = hangar("token", "set", "--stdin", stdin=GATED_TOKEN + "\n")
    assert stored.returncode == 0, stored.stderr
    assert "secrets file" in stored.stdout and "Warning:" in stored.stderr and "HF_TOKEN" in stored.stderr
    secrets = data_dir / "data" / "secrets.json"
    assert secrets.stat().st_mode & 0o777 == 0o600
    status = json.loads(hangar("token", "status", "--json").stdout)
    assert status["storage"] == "file"
    estimate = hangar("estimate", f"{GATED_REPO}:tiny-gated-Q4_0.gguf", "--json")
    assert estimate.returncode == 0, estimate.stderr  # the header is read with the token
    pulled = hangar("pull", GATED_REPO, "--json")
    assert pulled.returncode == 0, pulled.stderr
    for path in data_dir.rglob("*"):  # nowhere but the secrets file
        if path.is_file() and path != secrets and path.suffix not in (".gguf",):
            assert GATED_TOKEN.encode() not in path.read_bytes(), path
    assert hangar("token", "clear").returncode == 0
    assert GATED_TOKEN not in secrets.read_text()


def test_the_gated_message_mentions_hf_token(hub: LocalHub, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["pull", GATED_REPO]) == 1
    assert "HF_TOKEN" in capsys.readouterr().err


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


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs prlimit (Linux)")
def test_a_full_disk_pauses_pull_with_one_line_and_exit_1(hub: LocalHub, tmp_path: Path) -> None:
    """A real full disk without root: once the pull runs, its file-size limit (RLIMIT_FSIZE) drops to 4 KiB, so
    every write past that (the part file, SQLite's journal, the log) fails in the kernel, as on a disk with 0 bytes
    free. The pull must end with one line and exit 1, not hang; the next pull finishes from what was kept."""
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HANGAR_DATA_DIR": str(tmp_path / "data")}
    env.pop("HF_TOKEN", None)
    name = "small-llama-F32.gguf"
    hub.faults.throttle_bps = 2_000_000
    command = [sys.executable, str(ROOT / "main.py"), "pull", BIGGER_REPO]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert hub.faults.wait_until_sent(f"{BIGGER_REPO}/{name}", 1_000_000, timeout=60)
        resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (4096, 4096))
        _out, err = process.communicate(timeout=60)  # before the fix: never returns
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, err
    # One line for the person: the job system's failed writes of the paused state go to the log, not the screen.
    assert "Traceback" not in err and "Exception in thread" not in err, err
    assert len([line for line in err.splitlines() if "error" in line.lower()]) == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("hangar: error:") and "disk" in last.lower(), err
    assert "paused" in last.lower()
    parts = list((tmp_path / "data" / "cache" / "downloads").rglob("*.part"))
    assert len(parts) == 1 and parts[0].stat().st_size > 0  # kept
    hub.faults.throttle_bps = None
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert sha256(Path(finished.stdout.strip())) == hub.repos[BIGGER_REPO].files[0].sha256


def test_a_killed_ranged_pull_fetches_only_the_missing_ranges(hub: LocalHub, tmp_path: Path) -> None:
    """kill -9 during a parallel download (no chance to save anything more): the next pull asks only for what the
    durable range record does not hold."""
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HANGAR_DATA_DIR": str(tmp_path / "data")}
    env.pop("HF_TOKEN", None)
    key = f"{RANGED_REPO}/{RANGED_FILE}"
    size = hub.repos[RANGED_REPO].files[0].size
    hub.faults.throttle_bps = 2_000_000
    command = [sys.executable, str(ROOT / "main.py"), "pull", RANGED_REPO]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    downloads = tmp_path / "data" / "cache" / "downloads"
    try:
        deadline = time.monotonic() + 60
        while hub.faults.body_bytes.get(key, 0) < size // 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # another process: nothing to wait on but what the server has sent
        time.sleep(0.6)  # at least one record written after that
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    # Its download child notices the parent is gone and exits at once; then the server's streams end.
    deadline = time.monotonic() + 10
    while hub.faults.active_streams(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.faults.active_streams(key) == 0
    records = list(downloads.rglob("*.ranges"))
    assert len(records) == 1
    kept = sum(b - a for a, b in json.loads(records[0].read_text())["done"])
    assert 0 < kept < size
    hub.faults.throttle_bps = None
    before = hub.faults.body_bytes[key]
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert sha256(Path(finished.stdout.strip())) == hub.repos[RANGED_REPO].files[0].sha256
    fetched = hub.faults.body_bytes[key] - before
    assert size - kept <= fetched < size - kept + 8 * 1024**2  # killed connections' socket buffers at most


def test_three_pulls_of_one_file_at_once_download_it_once(hub: LocalHub, tmp_path: Path) -> None:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HANGAR_DATA_DIR": str(tmp_path / "data")}
    env.pop("HF_TOKEN", None)
    main_py = str(ROOT / "main.py")
    # The database exists first (creating it from three processes at once is the store's own race, fixed there).
    subprocess.run([sys.executable, main_py, "ls"], cwd=ROOT, env=env, capture_output=True, timeout=120)
    subprocess.run([sys.executable, main_py, "pull", GGUF_REPO, "--quant", "NONE"], cwd=ROOT, env=env, timeout=120)
    name = "small-llama-F32.gguf"
    hub.faults.throttle_bps = 3_000_000
    processes = [
        subprocess.Popen(
            [sys.executable, main_py, "pull", BIGGER_REPO], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    try:
        outputs = [p.communicate(timeout=120)[0] for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert [p.returncode for p in processes] == [0, 0, 0]
    assert len({out.strip() for out in outputs}) == 1
    assert sha256(Path(outputs[0].strip())) == hub.repos[BIGGER_REPO].files[0].sha256
    assert hub.faults.body_bytes[f"{BIGGER_REPO}/{name}"] == hub.repos[BIGGER_REPO].files[0].size
