from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.errors import JobError, ModelFileError
from core.jobs import JobContext, JobKind, JobManager, JobState
from core.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite3")


def test_job_runs_reports_progress_and_succeeds(store: Store) -> None:
    jobs = JobManager(store)
    seen: list[tuple[JobState, float | None]] = []
    jobs.changed.connect(lambda job: seen.append((job.state, job.progress)))

    def work(ctx: JobContext) -> dict[str, object]:
        for i in range(1, 5):
            ctx.report(i / 4, f"step {i}")
        return {"answer": 42}

    job = jobs.wait(jobs.submit("demo", "Demo job", work), 5)
    assert job.state == JobState.SUCCEEDED and job.result == {"answer": 42} and job.progress == 1.0
    assert seen[0][0] == JobState.QUEUED
    assert (JobState.RUNNING, 0.5) in seen


def test_a_failing_job_keeps_the_users_message(store: Store) -> None:
    jobs = JobManager(store)

    def work(ctx: JobContext) -> None:
        raise ModelFileError("model.gguf is truncated: 1.2 GB of 4.1 GB present")

    job = jobs.wait(jobs.submit("demo", "Broken", work), 5)
    assert job.state == JobState.FAILED and "truncated" in (job.error or "")


def test_an_unexpected_exception_fails_the_job_not_the_app(store: Store) -> None:
    jobs = JobManager(store)
    job = jobs.wait(jobs.submit("demo", "Buggy", lambda ctx: 1 / 0), 5)  # type: ignore[func-returns-value]
    assert job.state == JobState.FAILED and "division by zero" in (job.error or "")


def test_cancel_is_cooperative(store: Store) -> None:
    jobs = JobManager(store)
    started = threading.Event()

    def work(ctx: JobContext) -> None:
        started.set()
        while not ctx.token.wait(0.01):
            pass
        ctx.token.raise_if_cancelled()

    job_id = jobs.submit("demo", "Long", work)
    assert started.wait(5)
    jobs.cancel(job_id)
    assert jobs.wait(job_id, 5).state == JobState.CANCELLED


def test_concurrency_limit_per_kind_queues_the_rest(store: Store) -> None:
    jobs = JobManager(store, limits={"download": 2})
    release = threading.Event()
    running = []
    lock = threading.Lock()
    peak = [0]

    def work(ctx: JobContext) -> None:
        with lock:
            running.append(ctx.job_id)
            peak[0] = max(peak[0], len(running))
        release.wait(5)
        with lock:
            running.remove(ctx.job_id)

    ids = [jobs.submit("download", f"file {i}", work) for i in range(4)]
    other = jobs.submit("import", "Other kind is not blocked", lambda ctx: None)
    assert jobs.wait(other, 5).state == JobState.SUCCEEDED
    assert sum(1 for i in ids if jobs.get(i).state == JobState.QUEUED) == 2
    release.set()
    for job_id in ids:
        assert jobs.wait(job_id, 5).state == JobState.SUCCEEDED
    assert peak[0] == 2


def test_pause_and_resume_through_a_registered_runner(store: Store) -> None:
    jobs = JobManager(store)
    progress: list[int] = []
    gate = threading.Event()

    def factory(params: dict[str, object]):  # type: ignore[no-untyped-def]
        def work(ctx: JobContext) -> dict[str, object]:
            start = len(progress)
            for i in range(start, int(params["steps"])):  # type: ignore[call-overload]
                if i == 3 and not gate.is_set():
                    gate.set()
                    ctx.token.wait(5)
                ctx.token.raise_if_cancelled()
                progress.append(i)
            return {"done": len(progress)}

        return work

    jobs.register_runner("count", factory)
    job_id = jobs.submit("count", "Counting", params={"steps": 6}, resumable=True)
    assert gate.wait(5)
    jobs.pause(job_id)
    assert jobs.wait(job_id, 5).state == JobState.PAUSED
    assert progress == [0, 1, 2]
    jobs.resume(job_id)
    job = jobs.wait(job_id, 5)
    assert job.state == JobState.SUCCEEDED and progress == [0, 1, 2, 3, 4, 5]


def test_non_resumable_jobs_cannot_be_paused(store: Store) -> None:
    jobs = JobManager(store)
    gate = threading.Event()
    job_id = jobs.submit("demo", "Plain", lambda ctx: gate.wait(5) and None)
    with pytest.raises(JobError, match="cannot be paused"):
        jobs.pause(job_id)
    gate.set()
    jobs.wait(job_id, 5)


def test_history_survives_a_restart_and_interrupted_jobs_are_recovered(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    first = JobManager(Store(path))
    done = first.submit("demo", "Finished", lambda ctx: {"ok": True})
    first.wait(done, 5)
    # Simulate jobs that were running when the app was killed.
    for job_id, resumable in (("r1", 1), ("n1", 0)):
        first._store.execute(
            "INSERT INTO jobs (id, kind, title, state, resumable, created_at, updated_at) "
            "VALUES (?, 'download', 'x', 'running', ?, 0, 0)",
            (job_id, resumable),
        )
    second = JobManager(Store(path))
    assert second.get(done).result == {"ok": True}
    assert second.get("r1").state == JobState.PAUSED
    assert second.get("n1").state == JobState.FAILED and "closed" in (second.get("n1").error or "")
    assert {job.id for job in second.list()} >= {done, "r1", "n1"}


def test_jobs_of_another_live_process_are_left_alone(tmp_path: Path) -> None:
    """The CLI opening the database while the window runs a download must not mark that download paused."""
    import subprocess
    import sys

    path = tmp_path / "db.sqlite3"
    JobManager(Store(path))  # create the schema
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        import psutil

        owner = f"{other.pid}:{psutil.Process(other.pid).create_time():.3f}"
        store = Store(path)
        for job_id, who in (("live", owner), ("dead", "999999999:1.000")):
            store.execute(
                "INSERT INTO jobs (id, kind, title, state, resumable, created_at, updated_at, owner) "
                "VALUES (?, 'download', 'x', 'running', 1, 0, 0, ?)",
                (job_id, who),
            )
        jobs = JobManager(Store(path))
        assert jobs.get("live").state == JobState.RUNNING
        assert jobs.get("dead").state == JobState.PAUSED
    finally:
        other.kill()
        other.wait()


def _running(jobs: JobManager, ids: list[str]) -> int:
    return sum(jobs.get(i).state == JobState.RUNNING for i in ids)


def _wait_until(condition: object, timeout: float = 10) -> None:
    deadline = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():  # type: ignore[operator]
            return
        deadline.wait(0.02)
    raise AssertionError("timed out")


def test_a_raised_limit_starts_waiting_jobs_at_once(store: Store) -> None:
    jobs = JobManager(store, limits={JobKind.DOWNLOAD: 1})
    release = threading.Event()
    ids = [jobs.submit(JobKind.DOWNLOAD, f"d{i}", lambda ctx: release.wait(10) and None) for i in range(3)]
    _wait_until(lambda: _running(jobs, ids) == 1)
    jobs.set_limit(JobKind.DOWNLOAD, 3)
    _wait_until(lambda: _running(jobs, ids) == 3)
    jobs.set_limit(JobKind.DOWNLOAD, 1)  # lowered: the running ones finish, nothing is stopped
    assert _running(jobs, ids) == 3 and jobs.limit(JobKind.DOWNLOAD) == 1
    release.set()
    assert all(jobs.wait(i, 10).state == JobState.SUCCEEDED for i in ids)


def test_the_parallel_downloads_setting_reaches_the_running_job_manager(app) -> None:  # type: ignore[no-untyped-def]
    jobs = app.jobs
    assert jobs.limit(JobKind.DOWNLOAD) == app.settings.current.max_parallel_downloads == 2
    app.settings.update(max_parallel_downloads=5)
    assert jobs.limit(JobKind.DOWNLOAD) == 5


def test_job_kinds_are_typed_and_read_back(store: Store) -> None:
    jobs = JobManager(store)
    job = jobs.wait(jobs.submit(JobKind.IMPORT, "Import", lambda ctx: None), 5)
    assert job.kind is JobKind.IMPORT and jobs.list(JobKind.IMPORT)[0].kind is JobKind.IMPORT
    other = jobs.wait(jobs.submit("from-a-newer-hangar", "?", lambda ctx: None), 5)
    assert other.kind == "from-a-newer-hangar"  # an unknown kind is kept, not an error
