"""Parallel ranged downloads against the local Hub with a per-connection throttle: ranges complete and verify,
nothing is fetched twice, a failed range is retried alone, servers that do not serve ranges (or answer with a
captive portal, or redirect every request) fall back or give up cleanly, and the connection and bandwidth settings
apply while a download runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.app import AppContext
from core.downloads.limits import Bandwidth, TransferOptions
from core.downloads.manager import DownloadManager, DownloadState
from core.downloads.plan import record_path
from tests.support.downloads import make_app, make_manager, sha256, wait_for
from tests.support.hub import LocalHub
from tests.support.hub.catalog import BIGGER_REPO, RANGED_FILE, RANGED_REPO

KEY = f"{RANGED_REPO}/{RANGED_FILE}"
MIB = 1024**2


class Knob:
    """A setting the test turns while the download runs (the app reads its settings the same way)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def app(tmp_path: Path) -> Iterator[AppContext]:
    context = make_app(tmp_path / "data")
    yield context
    context.close()


def ranged_manager(app: AppContext, connections: Knob, limit: Knob | None = None, **options: object) -> DownloadManager:
    transfer = TransferOptions(
        connections=lambda: int(connections()),
        bandwidth=Bandwidth(lambda: limit() if limit else 0.0),
        split_min=4 * MIB,
        piece_min=512 * 1024,
        request_max=4 * MIB,
        **options,  # type: ignore[arg-type]
    )
    return make_manager(app, options=transfer)


def size_of(hub: LocalHub) -> int:
    return hub.repos[RANGED_REPO].files[0].size


def test_parallel_ranges_complete_verify_and_fetch_nothing_twice(app: AppContext, hub: LocalHub) -> None:
    hub.faults.throttle_bps = 8_000_000  # per connection
    manager = ranged_manager(app, Knob(6))
    started = time.monotonic()
    item = manager.wait(manager.enqueue(RANGED_REPO).id, 60)
    elapsed = time.monotonic() - started
    assert item.state == DownloadState.DONE, item.message
    assert sha256(item.paths[0]) == hub.repos[RANGED_REPO].files[0].sha256
    assert hub.faults.peak_streams[KEY] == 6
    size = size_of(hub)
    # One connection would need size / 8 MB/s; six share the work (some slack for a loaded machine).
    assert elapsed < size / 8_000_000 / 2
    # Nothing twice: a connection whose range was split stops at the split (its socket may hold a little more).
    assert size <= hub.faults.body_bytes[KEY] < size + 6 * MIB
    assert not record_path(app.paths.downloads_dir / item.id / "0000.part").exists()


def test_adaptive_connections_grow_while_throughput_grows(app: AppContext, hub: LocalHub) -> None:
    hub.faults.throttle_bps = 2_000_000  # per connection: more connections, more throughput
    manager = ranged_manager(app, Knob(0), start_connections=2, step=2, max_connections=8)
    item = manager.wait(manager.enqueue(RANGED_REPO).id, 90)
    assert item.state == DownloadState.DONE, item.message
    assert hub.faults.peak_streams[KEY] >= 4


def test_pause_and_resume_fetch_only_the_missing_ranges(app: AppContext, hub: LocalHub) -> None:
    hub.faults.throttle_bps = 3_000_000
    manager = ranged_manager(app, Knob(4))
    item = manager.enqueue(RANGED_REPO)
    assert hub.faults.wait_until_sent(KEY, size_of(hub) // 2, timeout=60)  # some connection is past the middle
    manager.pause(item.id)
    paused = manager.wait(item.id, 10)
    assert paused.state == DownloadState.PAUSED
    record = json.loads(record_path(app.paths.downloads_dir / item.id / "0000.part").read_text())
    kept = sum(b - a for a, b in record["done"])
    assert len(record["done"]) > 1 and paused.done == kept > 0  # several ranges, holes between them
    sent_before = hub.faults.body_bytes[KEY]
    hub.faults.throttle_bps = None
    manager.resume(item.id)
    done = manager.wait(item.id, 60)
    assert done.state == DownloadState.DONE, done.message
    assert sha256(done.paths[0]) == hub.repos[RANGED_REPO].files[0].sha256
    fetched_after = hub.faults.body_bytes[KEY] - sent_before
    assert size_of(hub) - kept <= fetched_after < size_of(hub) - kept + 4 * MIB


def test_a_dropped_range_is_retried_alone(app: AppContext, hub: LocalHub) -> None:
    size = size_of(hub)
    hub.faults.drop_at[KEY] = (size * 3 // 4, 1)
    manager = ranged_manager(app, Knob(4))
    item = manager.wait(manager.enqueue(RANGED_REPO).id, 60)
    assert item.state == DownloadState.DONE, item.message
    assert sha256(item.paths[0]) == hub.repos[RANGED_REPO].files[0].sha256
    ranges = [r.range for r in hub.file_requests(RANGED_REPO, RANGED_FILE) if r.status == 206]
    starts = [int(r.removeprefix("bytes=").split("-")[0]) for r in ranges if r]
    assert size * 3 // 4 in starts  # the retry asks exactly for what the drop lost
    assert hub.faults.body_bytes[KEY] < size + 6 * MIB


def test_a_server_ignoring_range_gets_one_stream(app: AppContext, hub: LocalHub) -> None:
    hub.faults.ignore_range.add(KEY)
    manager = ranged_manager(app, Knob(8))
    item = manager.wait(manager.enqueue(RANGED_REPO).id, 60)
    assert item.state == DownloadState.DONE, item.message
    assert sha256(item.paths[0]) == hub.repos[RANGED_REPO].files[0].sha256
    bodies = [r for r in hub.file_requests(RANGED_REPO, RANGED_FILE) if r.status == 200]
    assert len(bodies) == 2  # the probe (closed at once), then the one stream
    assert hub.faults.peak_streams[KEY] <= 2


def test_every_request_redirected_elsewhere_still_downloads(app: AppContext, hub: LocalHub) -> None:
    hub.faults.redirect_each.add(KEY)
    manager = ranged_manager(app, Knob(4))
    item = manager.wait(manager.enqueue(RANGED_REPO).id, 60)
    assert item.state == DownloadState.DONE, item.message
    assert sha256(item.paths[0]) == hub.repos[RANGED_REPO].files[0].sha256
    assert hub.redirects >= 4


@pytest.mark.parametrize("ranged", [True, False], ids=["ranges", "one-stream"])
def test_a_redirect_loop_fails_clearly(app: AppContext, hub: LocalHub, ranged: bool) -> None:
    hub.faults.redirect_forever.add(KEY)
    manager = ranged_manager(app, Knob(4 if ranged else 1))
    item = manager.wait(manager.enqueue(RANGED_REPO).id, 60)
    assert item.state == DownloadState.FAILED and item.error_code == "network"
    assert "keeps redirecting" in item.message
    assert len(hub.file_requests(RANGED_REPO, RANGED_FILE)) < 100


@pytest.mark.parametrize("ranged", [True, False], ids=["ranges", "one-stream"])
def test_a_captive_portal_page_is_never_kept_and_the_retries_end(app: AppContext, hub: LocalHub, ranged: bool) -> None:
    page = b"<html><body>Please log in to the hotel Wi-Fi</body></html>"
    hub.faults.portal[KEY] = page
    manager = ranged_manager(app, Knob(4 if ranged else 1))
    item = manager.wait(manager.enqueue(RANGED_REPO).id, 60)
    assert item.state == DownloadState.FAILED and item.error_code == "network"
    assert "captive portal" in item.message
    answered = [r for r in hub.file_requests(RANGED_REPO, RANGED_FILE) if r.status == 200]
    assert len(answered) <= 6  # FAST_RETRY gives up after 4 attempts (plus the range probe)
    part = app.paths.downloads_dir / item.id / "0000.part"
    assert not part.exists() or page not in part.read_bytes()


def test_range_ignored_and_dropped_gives_up_with_back_off(app: AppContext, hub: LocalHub) -> None:
    """The field report's loop: every answer starts again from byte 0 and drops at the same place."""
    key = f"{BIGGER_REPO}/small-llama-F32.gguf"
    hub.faults.ignore_range.add(key)
    hub.faults.drop_at[key] = (500_000, 1000)
    manager = make_manager(app)
    item = manager.wait(manager.enqueue(BIGGER_REPO).id, 60)
    assert item.state == DownloadState.FAILED and "kept failing" in item.message
    answered = [r for r in hub.file_requests(BIGGER_REPO, "small-llama-F32.gguf") if r.status == 200]
    assert len(answered) <= 5
    assert hub.faults.body_bytes[key] <= 5 * 500_000 + MIB


def test_connection_count_and_bandwidth_limit_apply_live(app: AppContext, hub: LocalHub) -> None:
    hub.faults.throttle_bps = 3_000_000  # per connection, so the rest takes long enough to see the new ones
    connections, limit = Knob(2), Knob(4_000_000)
    manager = ranged_manager(app, connections, limit)
    item = manager.enqueue(RANGED_REPO)
    first = wait_for(manager, lambda i: i.id == item.id and i.done > 2 * MIB)
    start_time, start_done = time.monotonic(), first.done
    time.sleep(2.0)  # a measured stretch under the limit
    middle = manager.get(item.id)
    rate = (middle.done - start_done) / (time.monotonic() - start_time)
    assert rate < 4_000_000 * 1.3  # the global limit holds across both connections
    assert hub.faults.peak_streams[KEY] <= 2
    connections.value, limit.value = 6, 0  # more connections, no limit: takes effect at once
    done = manager.wait(item.id, 60)
    assert done.state == DownloadState.DONE, done.message
    assert hub.faults.peak_streams[KEY] > 2
    assert sha256(done.paths[0]) == hub.repos[RANGED_REPO].files[0].sha256


def test_corrupt_data_in_a_range_fails_the_integrity_check(app: AppContext, hub: LocalHub) -> None:
    hub.faults.corrupt.add(KEY)
    manager = ranged_manager(app, Knob(4))
    item = manager.wait(manager.enqueue(RANGED_REPO).id, 60)
    assert item.state == DownloadState.FAILED and item.error_code == "integrity"
    assert not any(app.paths.downloads_dir.rglob("*.part")) and not any(app.paths.downloads_dir.rglob("*.ranges"))
    assert not (app.paths.models_dir / RANGED_REPO / RANGED_FILE).exists()


def test_in_a_child_process_ranges_verify_pause_resume_and_follow_the_settings(app: AppContext, hub: LocalHub) -> None:
    """As the app runs them: the connections in a child process (the window keeps the interpreter)."""
    hub.faults.throttle_bps = 2_000_000
    connections = Knob(2)
    manager = ranged_manager(app, connections, in_child=True, child_min=0)
    item = manager.enqueue(RANGED_REPO)
    wait_for(manager, lambda i: i.id == item.id and i.done > 4 * MIB)
    assert hub.faults.peak_streams[KEY] <= 2
    manager.pause(item.id)
    paused = manager.wait(item.id, 20)
    assert paused.state == DownloadState.PAUSED and paused.done > 0
    record = json.loads(record_path(app.paths.downloads_dir / item.id / "0000.part").read_text())
    kept = sum(b - a for a, b in record["done"])
    sent_before = hub.faults.body_bytes[KEY]
    connections.value = 6
    manager.resume(item.id)
    done = manager.wait(item.id, 90)
    assert done.state == DownloadState.DONE, done.message
    assert sha256(done.paths[0]) == hub.repos[RANGED_REPO].files[0].sha256
    assert hub.faults.peak_streams[KEY] > 2
    assert hub.faults.body_bytes[KEY] - sent_before < size_of(hub) - kept + 6 * MIB


def test_in_a_child_process_hub_errors_read_the_same(app: AppContext, hub: LocalHub) -> None:
    hub.faults.corrupt.add(KEY)
    manager = ranged_manager(app, Knob(4), in_child=True, child_min=0)
    item = manager.wait(manager.enqueue(RANGED_REPO).id, 90)
    assert item.state == DownloadState.FAILED and item.error_code == "integrity"
    assert "failed its integrity check" in item.message
