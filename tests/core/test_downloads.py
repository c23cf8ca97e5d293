"""The download manager against the local Hub: verify and install, split sets, MLX repos, faults, gated repos,
disk space, hostile names, pause/resume/cancel, concurrency and restart."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gguf
import pytest

from core.app import AppContext
from core.downloads.fs import PartLock
from core.downloads.manager import DownloadManager, DownloadState, failure_of
from core.errors import AuthError, DiskFullError, UnsafePathError, UsageError
from tests.support.downloads import TokenHolder, finished, make_app, make_manager, sha256, wait_for
from tests.support.hub import LocalHub
from tests.support.hub.catalog import (
    BIGGER_REPO,
    GATED_REPO,
    GATED_TOKEN,
    GGUF_REPO,
    HOSTILE_REPO,
    LONG_NAME,
    LONG_NAME_REPO,
    MLX_REPO,
    SPARSE_REPO,
    UNGRANTED_TOKEN,
)

Q8 = "tiny-llama-Q8_0.gguf"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[AppContext]:
    context = make_app(tmp_path / "data")
    yield context
    context.close()


@pytest.fixture
def manager(app: AppContext, hub: LocalHub) -> DownloadManager:
    return make_manager(app)


def test_download_is_verified_and_installed(manager: DownloadManager, hub: LocalHub, app: AppContext) -> None:
    item = manager.enqueue(GGUF_REPO, quant="Q8_0")
    assert item.label.endswith("Q8_0") and item.total == hub.repos[GGUF_REPO].file(Q8).size
    item = manager.wait(item.id, 30)
    assert item.state == DownloadState.DONE, item.message
    path = app.paths.models_dir / GGUF_REPO / Q8
    assert item.paths == (path,)
    assert sha256(path) == hub.repos[GGUF_REPO].file(Q8).sha256
    assert gguf.GGUFReader(path).fields["general.architecture"].contents() == "llama"  # a real, readable model
    assert not any(app.paths.downloads_dir.rglob("*.part"))
    manifest = json.loads((path.parent / ".hangar-download.json").read_text())
    assert manifest["downloads"][0]["revision"] == hub.repos[GGUF_REPO].commit
    # Pinned to the commit seen when it was queued.
    assert all(
        hub.repos[GGUF_REPO].commit in r.path or "/cdn-lfs/" in r.path or r.path.endswith(Q8)
        for r in hub.requests
        if "resolve" in r.path
    )


def test_a_models_folder_on_another_filesystem(
    app: AppContext, hub: LocalHub, caplog: pytest.LogCaptureFixture
) -> None:
    """A real cross-device move (/dev/shm is a tmpfs here): copied beside the target, then renamed."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == app.paths.downloads_dir.parent.stat().st_dev:
        pytest.skip("no second filesystem to move across")
    caplog.set_level("INFO", logger="core.downloads.fs")
    models = Path(tempfile.mkdtemp(prefix="hangar-models-", dir=shm))
    try:
        manager = make_manager(app, models_dir=models)
        item = manager.wait(manager.enqueue(GGUF_REPO, quant="Q4_0").id, 30)
        assert item.state == DownloadState.DONE, item.message
        assert item.paths[0].is_relative_to(models)
        assert sha256(item.paths[0]) == hub.repos[GGUF_REPO].file("tiny-llama-Q4_0.gguf").sha256
        assert not list(models.rglob("*.hangar-copy"))
        assert "across filesystems" in caplog.text
    finally:
        shutil.rmtree(models, ignore_errors=True)


def test_split_set_is_fetched_together(manager: DownloadManager, hub: LocalHub, app: AppContext) -> None:
    item = manager.wait(manager.enqueue(GGUF_REPO, quant="F32").id, 30)
    assert item.state == DownloadState.DONE
    names = sorted(p.name for p in item.paths)
    assert names == ["tiny-llama-F32-00001-of-00002.gguf", "tiny-llama-F32-00002-of-00002.gguf"]
    for path in item.paths:
        assert sha256(path) == hub.repos[GGUF_REPO].file(f"F32/{path.name}").sha256
    # Asking for one part brings the whole set.
    again = manager.enqueue(GGUF_REPO, file="F32/tiny-llama-F32-00002-of-00002.gguf")
    assert again.id == item.id


def test_mlx_repo_downloads_config_tokenizer_and_weights(manager: DownloadManager, hub: LocalHub) -> None:
    item = manager.wait(manager.enqueue(MLX_REPO).id, 30)
    assert item.state == DownloadState.DONE, item.message
    names = sorted(p.name for p in item.paths)
    assert names == sorted(
        ["config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    )
    for path in item.paths:
        assert path.read_bytes() == hub.repos[MLX_REPO].file(path.name).data
    assert not (item.destination / "images").exists()


def test_a_repo_with_several_quants_needs_a_choice(manager: DownloadManager, hub: LocalHub) -> None:
    with pytest.raises(UsageError, match="Q4_0, Q8_0, F16, F32"):
        manager.enqueue(GGUF_REPO)


def test_dropped_connection_resumes_with_range(manager: DownloadManager, hub: LocalHub) -> None:
    key = f"{GGUF_REPO}/{Q8}"
    hub.faults.drop_at[key] = (60_000, 1)
    item = manager.wait(manager.enqueue(GGUF_REPO, quant="Q8_0").id, 30)
    assert item.state == DownloadState.DONE
    assert sha256(item.paths[0]) == hub.repos[GGUF_REPO].file(Q8).sha256
    ranges = [r.range for r in hub.file_requests(GGUF_REPO, Q8) if "/cdn-lfs/" in r.path or r.status in (200, 206)]
    assert ranges[0] is None and ranges[1] == "bytes=60000-"


def test_service_unavailable_is_retried(manager: DownloadManager, hub: LocalHub) -> None:
    hub.faults.unavailable[f"{GGUF_REPO}/{Q8}"] = 2
    item = manager.wait(manager.enqueue(GGUF_REPO, quant="Q8_0").id, 30)
    assert item.state == DownloadState.DONE
    assert [r.status for r in hub.file_requests(GGUF_REPO, Q8) if r.status != 302] == [503, 503, 200]


def test_a_connection_that_keeps_failing_fails_clearly_and_keeps_the_data(
    manager: DownloadManager, hub: LocalHub, app: AppContext
) -> None:
    hub.faults.unavailable[f"{GGUF_REPO}/{Q8}"] = 50
    item = manager.wait(manager.enqueue(GGUF_REPO, quant="Q8_0").id, 30)
    assert item.state == DownloadState.FAILED
    assert "kept failing" in item.message and item.error_code == "network"
    hub.faults.unavailable.clear()
    manager.resume(item.id)
    assert manager.wait(item.id, 30).state == DownloadState.DONE


def test_wrong_checksum_is_an_error_and_never_enters_the_library(
    manager: DownloadManager, hub: LocalHub, app: AppContext
) -> None:
    hub.faults.corrupt.add(f"{GGUF_REPO}/{Q8}")
    item = manager.wait(manager.enqueue(GGUF_REPO, quant="Q8_0").id, 30)
    assert item.state == DownloadState.FAILED
    assert "failed its integrity check" in item.message and item.error_code == "integrity"
    assert not (app.paths.models_dir / GGUF_REPO / Q8).exists()
    assert not any(app.paths.downloads_dir.rglob("*.part"))
    hub.faults.corrupt.clear()
    manager.retry_download(item.id)
    assert manager.wait(item.id, 30).state == DownloadState.DONE


def test_gated_without_token_says_where_to_accept_the_licence(manager: DownloadManager, hub: LocalHub) -> None:
    with pytest.raises(AuthError) as caught:
        manager.enqueue(GATED_REPO)
    assert f"{hub.url}/{GATED_REPO}" in str(caught.value) and "token" in str(caught.value)


def test_gated_with_a_token_lacking_access(app: AppContext, hub: LocalHub) -> None:
    manager = make_manager(app, TokenHolder(UNGRANTED_TOKEN))
    item = manager.wait(manager.enqueue(GATED_REPO).id, 30)
    assert item.state == DownloadState.FAILED and item.error_code == "auth"
    assert "no access" in item.message and f"{hub.url}/{GATED_REPO}" in item.message
    assert UNGRANTED_TOKEN not in item.message
    assert isinstance(failure_of(item), AuthError)


def test_gated_with_a_granted_token(app: AppContext, hub: LocalHub) -> None:
    manager = make_manager(app, TokenHolder(GATED_TOKEN))
    item = manager.wait(manager.enqueue(GATED_REPO).id, 30)
    assert item.state == DownloadState.DONE
    file_requests = hub.file_requests(GATED_REPO, "tiny-gated-Q4_0.gguf")
    assert [r.authorization for r in file_requests] == [True, False]  # the token never goes to the CDN


def test_not_enough_space_is_refused_before_starting(app: AppContext, hub: LocalHub) -> None:
    manager = make_manager(app, free_space=lambda path: 2 * 1024**3)
    with pytest.raises(DiskFullError, match=r"needs 6\.44 GB, 2\.15 GB is free"):
        manager.enqueue(SPARSE_REPO)
    assert manager.list() == []


def test_running_out_of_space_midway_pauses_and_keeps_the_data(app: AppContext, hub: LocalHub) -> None:
    """Simulated at the free-space seam: the disk 'fills' once the download has started."""
    space = {"free": 10 * 1024**3}
    manager = make_manager(app, free_space=lambda path: space["free"], reserve=0, disk_check_every=16 * 1024)
    hub.faults.throttle_bps = 2_000_000
    key = f"{BIGGER_REPO}/small-llama-F32.gguf"
    item = manager.enqueue(BIGGER_REPO)
    assert hub.faults.wait_until_sent(key, 1_000_000)
    space["free"] = 1000
    item = wait_for(manager, lambda i: i.id == item.id and finished(i))
    assert item.state == DownloadState.PAUSED and item.error_code == "disk_full"
    assert "Not enough disk space" in item.message and "paused" in item.message
    assert item.done > 0  # nothing lost
    hub.faults.throttle_bps = None
    space["free"] = 10 * 1024**3
    manager.resume(item.id)
    item = manager.wait(item.id, 30)
    assert item.state == DownloadState.DONE
    assert sha256(item.paths[0]) == hub.repos[BIGGER_REPO].files[0].sha256
    assert any(r.range and r.range != "bytes=0-" for r in hub.file_requests(BIGGER_REPO, "small-llama-F32.gguf"))


def test_a_real_disk_full_error_pauses_the_download(manager: DownloadManager, hub: LocalHub, app: AppContext) -> None:
    """A real ENOSPC from the kernel: the part file is pointed at /dev/full, where every write fails that way."""
    hub.faults.throttle_bps = 3_000_000
    item = manager.enqueue(BIGGER_REPO)
    assert hub.faults.wait_until_sent(f"{BIGGER_REPO}/small-llama-F32.gguf", 1_000_000)
    manager.pause(item.id)
    assert manager.wait(item.id, 10).state == DownloadState.PAUSED
    part = app.paths.downloads_dir / item.id / "0000.part"
    part.unlink()
    part.symlink_to("/dev/full")
    hub.faults.throttle_bps = None
    manager.resume(item.id)
    paused = wait_for(manager, lambda i: i.id == item.id and finished(i))
    assert paused.state == DownloadState.PAUSED and paused.error_code == "disk_full"
    assert "The disk filled up" in paused.message
    part.unlink()  # space is back
    manager.resume(item.id)
    done = manager.wait(item.id, 30)
    assert done.state == DownloadState.DONE
    assert sha256(done.paths[0]) == hub.repos[BIGGER_REPO].files[0].sha256


def test_hostile_names_are_refused_and_nothing_escapes(
    manager: DownloadManager, hub: LocalHub, app: AppContext
) -> None:
    for name in ("../../escape-Q4_0.gguf", "/etc/owned-Q4_0.gguf", "sub/../../../up-Q4_0.gguf"):
        with pytest.raises(UnsafePathError):
            manager.enqueue(HOSTILE_REPO, file=name)
    item = manager.wait(manager.enqueue(HOSTILE_REPO, file="ok-Q4_0.gguf").id, 30)
    assert item.state == DownloadState.DONE
    root = app.paths.models_dir.parent
    assert sorted(p.name for p in root.rglob("*.gguf")) == ["ok-Q4_0.gguf"]


def test_progress_speed_and_eta_then_cancel_promptly(manager: DownloadManager, hub: LocalHub, app: AppContext) -> None:
    """A 6 GiB sparse file served slowly: progress, speed and ETA are reported; cancel stops it and cleans up."""
    hub.faults.throttle_bps = 4_000_000
    item = manager.enqueue(SPARSE_REPO)
    running = wait_for(manager, lambda i: i.id == item.id and i.done > 1_000_000 and i.speed > 0)
    assert 0 < running.progress < 0.01
    assert running.eta_seconds is not None and running.eta_seconds > 100
    manager.cancel(item.id)
    item = manager.wait(item.id, 10)
    assert item.state == DownloadState.CANCELLED
    assert not (app.paths.downloads_dir / item.id).exists()


def test_pause_keeps_data_and_resume_continues_with_range(manager: DownloadManager, hub: LocalHub) -> None:
    hub.faults.throttle_bps = 3_000_000
    key = f"{BIGGER_REPO}/small-llama-F32.gguf"
    item = manager.enqueue(BIGGER_REPO)
    assert hub.faults.wait_until_sent(key, 2_000_000)
    manager.pause(item.id)
    paused = manager.wait(item.id, 10)
    assert paused.state == DownloadState.PAUSED and paused.done > 0
    hub.faults.throttle_bps = None
    manager.resume(item.id)
    done = manager.wait(item.id, 30)
    assert done.state == DownloadState.DONE
    assert sha256(done.paths[0]) == hub.repos[BIGGER_REPO].files[0].sha256
    last = hub.file_requests(BIGGER_REPO, "small-llama-F32.gguf")[-1]
    assert last.range == f"bytes={paused.done}-"


def test_two_processes_never_write_the_same_part(manager: DownloadManager, hub: LocalHub, app: AppContext) -> None:
    """The part folder's OS lock (another open file description stands in for the other process)."""
    hub.faults.throttle_bps = 3_000_000
    item = manager.enqueue(BIGGER_REPO)
    assert hub.faults.wait_until_sent(f"{BIGGER_REPO}/small-llama-F32.gguf", 1_000_000)
    manager.pause(item.id)
    paused = manager.wait(item.id, 10)
    other = PartLock(app.paths.downloads_dir, item.id)
    assert other.acquire()
    try:
        manager.resume(item.id)
        refused = manager.wait(item.id, 10)
        assert refused.state == DownloadState.FAILED and "another Hangar process" in refused.message
        assert refused.done == paused.done  # untouched
    finally:
        other.release()
    hub.faults.throttle_bps = None
    manager.retry_download(item.id)
    assert manager.wait(item.id, 30).state == DownloadState.DONE


def test_concurrency_limit_holds(app: AppContext, hub: LocalHub) -> None:
    manager = make_manager(app)
    running_now: set[str] = set()
    peak = [0]

    def track(item):  # type: ignore[no-untyped-def]
        if item.state == DownloadState.RUNNING:
            running_now.add(item.id)
        else:
            running_now.discard(item.id)
        peak[0] = max(peak[0], len(running_now))

    manager.changed.connect(track)
    hub.faults.throttle_bps = 400_000
    detail = manager.hub.model_detail(GGUF_REPO)
    items = [manager.enqueue(GGUF_REPO, quant=q, detail=detail) for q in ("Q4_0", "Q8_0", "F16")]
    states = {manager.wait(i.id, 30).state for i in items}
    assert states == {DownloadState.DONE}
    assert peak[0] == app.settings.current.max_parallel_downloads == 2


def test_restart_resumes_interrupted_downloads(tmp_path: Path, hub: LocalHub) -> None:
    first = make_app(tmp_path / "data")
    manager = make_manager(first)
    hub.faults.throttle_bps = 3_000_000
    key = f"{BIGGER_REPO}/small-llama-F32.gguf"
    item = manager.enqueue(BIGGER_REPO)
    assert hub.faults.wait_until_sent(key, 2_000_000)
    first.close()  # the app quits mid-download
    hub.faults.throttle_bps = None
    second = make_app(tmp_path / "data")
    try:
        again = make_manager(second)  # resumes what was interrupted, by itself
        done = again.wait(item.id, 30)
        assert done.state == DownloadState.DONE
        assert sha256(done.paths[0]) == hub.repos[BIGGER_REPO].files[0].sha256
        assert hub.file_requests(BIGGER_REPO, "small-llama-F32.gguf")[-1].range not in (None, "bytes=0-")
    finally:
        second.close()


def test_a_paused_download_stays_paused_after_restart(tmp_path: Path, hub: LocalHub) -> None:
    first = make_app(tmp_path / "data")
    hub.faults.throttle_bps = 3_000_000
    manager = make_manager(first)
    item = manager.enqueue(BIGGER_REPO)
    assert hub.faults.wait_until_sent(f"{BIGGER_REPO}/small-llama-F32.gguf", 1_000_000)
    manager.pause(item.id)
    manager.wait(item.id, 10)
    first.close()
    second = make_app(tmp_path / "data")
    try:
        assert make_manager(second).get(item.id).state == DownloadState.PAUSED
    finally:
        second.close()


def test_an_installed_verified_file_is_never_fetched_again_after_the_database_is_lost(
    tmp_path: Path, hub: LocalHub
) -> None:
    first = make_app(tmp_path / "first")
    try:
        manager = make_manager(first)
        item = manager.wait(manager.enqueue(GGUF_REPO, quant="Q8_0").id, 30)
        assert item.state == DownloadState.DONE
        models = first.paths.models_dir
    finally:
        first.close()
    hub.requests.clear()
    second = make_app(tmp_path / "second")  # a new database; the same models folder
    try:
        again = make_manager(second, models_dir=models)
        done = again.wait(again.enqueue(GGUF_REPO, quant="Q8_0").id, 30)
        assert done.state == DownloadState.DONE and done.paths == item.paths
        assert [r for r in hub.file_requests(GGUF_REPO, Q8) if r.status in (200, 206)] == []
    finally:
        second.close()


def test_a_kill_between_install_and_done_does_not_download_again(tmp_path: Path, hub: LocalHub) -> None:
    """The state a kill leaves after the file moved into place: the job still 'running', no manifest yet."""
    first = make_app(tmp_path / "data")
    manager = make_manager(first)
    item = manager.wait(manager.enqueue(BIGGER_REPO).id, 30)
    assert item.state == DownloadState.DONE
    (item.destination / ".hangar-download.json").unlink()
    first.store.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (item.job_id,))
    first.close()
    hub.requests.clear()
    second = make_app(tmp_path / "data")
    try:
        done = make_manager(second).wait(item.id, 30)  # resumed by itself
        assert done.state == DownloadState.DONE
        assert [r for r in hub.file_requests(BIGGER_REPO, "small-llama-F32.gguf") if r.status in (200, 206)] == []
        assert sha256(done.paths[0]) == hub.repos[BIGGER_REPO].files[0].sha256
    finally:
        second.close()


def test_a_changed_file_in_the_models_folder_is_fetched_again(
    manager: DownloadManager, hub: LocalHub, app: AppContext
) -> None:
    path = app.paths.models_dir / GGUF_REPO / Q8
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0" * hub.repos[GGUF_REPO].file(Q8).size)  # the right size, not the right file
    done = manager.wait(manager.enqueue(GGUF_REPO, quant="Q8_0").id, 30)
    assert done.state == DownloadState.DONE and sha256(path) == hub.repos[GGUF_REPO].file(Q8).sha256


def test_two_downloads_of_one_file_fetch_it_once(tmp_path: Path, hub: LocalHub) -> None:
    """Two apps with their own databases but one models folder ask for the same file at once: two rows, as when
    two `hangar pull`s race past each other's check; the file's lock lets one fetch it, the other finds it."""
    apps = [make_app(tmp_path / "one"), make_app(tmp_path / "two")]
    models = tmp_path / "models"
    try:
        hub.faults.throttle_bps = 3_000_000
        managers = [make_manager(a, auto_resume=False, models_dir=models) for a in apps]
        items = [m.enqueue(BIGGER_REPO) for m in managers]
        hub.faults.throttle_bps = None
        results = [m.wait(i.id, 60) for m, i in zip(managers, items, strict=True)]
        assert [r.state for r in results] == [DownloadState.DONE, DownloadState.DONE]
        key = f"{BIGGER_REPO}/small-llama-F32.gguf"
        assert hub.faults.body_bytes[key] == hub.repos[BIGGER_REPO].files[0].size
    finally:
        for context in apps:
            context.close()


def test_an_over_long_file_name_is_refused_before_downloading(manager: DownloadManager, hub: LocalHub) -> None:
    with pytest.raises(UnsafePathError, match="longer than file systems allow"):
        manager.enqueue(LONG_NAME_REPO, file=LONG_NAME)
    assert manager.list() == [] and hub.file_requests(LONG_NAME_REPO, LONG_NAME) == []


def test_a_file_that_is_not_a_model_is_refused(manager: DownloadManager, hub: LocalHub) -> None:
    with pytest.raises(UsageError, match="not a model Hangar can use"):
        manager.enqueue(GGUF_REPO, file="README.md")
    assert manager.list() == []
