"""Closing the app while a fine-tune's child is busy for longer than the jobs' 5 s shutdown: the run is paused,
its child is gone, and its last rows are in the database before the database closes (issue 11)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from core.finetune.types import TrainingStarted
from core.jobs import JobState
from tests.backends.test_finetune_peft import FAST, Watcher

#: Longer than ``JobManager.shutdown``'s 5 s.
LOAD_SECONDS = 7.0


def slow_loading_entry(request: Any, events: Any, cancel: Any) -> None:
    """The real fine-tune child behind a start-up that cannot be interrupted and outlasts the jobs' shutdown
    (a large model read from a slow disk). Runs in the spawned child, so it lives at module level."""
    from backends.finetune_worker import run

    time.sleep(LOAD_SECONDS)
    run(request, events, cancel)


@pytest.mark.slow
def test_closing_the_app_waits_for_a_slow_child_and_keeps_its_last_writes(
    data_dir: Path, tiny_hf_model: Path, facts_dataset: Path
) -> None:
    from backends.worker import serve
    from core.app import AppContext
    from core.paths import AppPaths

    errors: list[BaseException] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)  # type: ignore[assignment,return-value]
    try:
        first = AppContext.create(AppPaths.under(data_dir), worker_entry=serve, finetune_entry=slow_loading_entry)
        first.finetune.cancel_grace = 60.0  # the child stops on its own, at its first step
        watcher = Watcher(first.finetune)
        job_id = first.finetune.start(tiny_hf_model, facts_dataset, FAST.with_(iters=16), backend="peft")
        # the child is sleeping through its "load"; quitting now outlasts the 5 s job shutdown
        asked = time.monotonic()
        first.close()
        took = time.monotonic() - asked
    finally:
        threading.excepthook = previous_hook
    assert not errors, errors
    assert took > 5.0  # it waited for the child rather than closing the database under it
    [started] = [e for e in watcher.events if isinstance(e, TrainingStarted)]
    assert not psutil.pid_exists(started.pid)

    second = AppContext.create(AppPaths.under(data_dir), worker_entry=serve, finetune_entry=slow_loading_entry)
    try:
        run = second.finetune.run(job_id)
        assert run.job.state == JobState.PAUSED
        log = second.finetune.log(job_id)
        # written by the job's thread after the child stopped, i.e. after the 5 s shutdown had passed
        assert "Stopped at step 0." in log, log
        assert [p.step for p in run.val_curve] == [0]
    finally:
        second.close()


def stubborn_entry(request: Any, events: Any, cancel: Any) -> None:
    """A child stuck where it cannot see the cancel (a hung native call): only termination ends it."""
    time.sleep(120)


@pytest.mark.slow
def test_closing_the_app_terminates_a_stuck_child_before_the_database_closes(
    data_dir: Path, tiny_hf_model: Path, facts_dataset: Path
) -> None:
    from backends.worker import serve
    from core.app import AppContext
    from core.paths import AppPaths

    first = AppContext.create(AppPaths.under(data_dir), worker_entry=serve, finetune_entry=stubborn_entry)
    first.finetune.cancel_grace = 6.0  # past the jobs' 5 s shutdown
    job_id = first.finetune.start(tiny_hf_model, facts_dataset, FAST, backend="peft")
    children = _wait_for_children()
    asked = time.monotonic()
    first.close()
    assert time.monotonic() - asked > 6.0
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)
    second = AppContext.create(AppPaths.under(data_dir), worker_entry=serve, finetune_entry=stubborn_entry)
    try:
        job = second.finetune.run(job_id).job
        # written by the closing app ("Paused."), not by the next start's recovery of an interrupted job
        assert (job.state, job.message) == (JobState.PAUSED, "Paused.")
    finally:
        second.close()


def _wait_for_children(timeout: float = 30.0) -> list[psutil.Process]:
    """This process's spawned children (not multiprocessing's resource tracker) once the job's thread has started
    one (a process has no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not (children := [c for c in psutil.Process().children() if "spawn_main" in " ".join(c.cmdline())]):
        assert time.monotonic() < deadline, "the fine-tune child never started"
        time.sleep(0.05)
    return children
