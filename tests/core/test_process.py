"""The child-process supervisor with real spawned children: events in order, the last words before an exit
drained, the exit reported once (expected or not), cancel passed on; and exits put in words that blame nothing
they do not know."""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from typing import Any

import pytest

from core.jobs import CancelToken
from core.process import ChildProcess, describe_exit, is_native_crash, run_child


def echo_then_exit(requests: Any, events: Any, cancel: Any) -> None:
    """Echo requests until ``None``; ``"abort"`` sends a last word and aborts as a native crash would."""
    while True:
        request = requests.get()
        if request is None:
            return
        if request == "abort":
            events.put("last word")
            events.close()
            events.join_thread()
            os.abort()
        events.put(("echo", request))


def count_until_cancelled(request: int, events: Any, cancel: Any) -> None:
    for step in range(request):
        if cancel.is_set():
            events.put(("stopped", step))
            return
        events.put(("step", step))
        time.sleep(0.01)
    events.put(("done", request))


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.exits: list[tuple[int | None, bool]] = []
        self.ended = threading.Event()

    def on_event(self, event: Any) -> None:
        self.events.append(event)

    def on_exit(self, code: int | None, expected: bool) -> None:
        self.exits.append((code, expected))
        self.ended.set()


def test_events_arrive_in_order_and_a_crash_is_reported_once_after_the_last_words() -> None:
    seen = Recorder()
    child = ChildProcess(echo_then_exit, name="test-echo", on_event=seen.on_event, on_exit=seen.on_exit)
    child.start()
    for i in range(20):
        child.send(i)
    child.send("abort")
    assert seen.ended.wait(30)
    assert seen.events == [("echo", i) for i in range(20)] + ["last word"]
    assert seen.exits == [(-signal.SIGABRT, False)]
    assert is_native_crash(child.exitcode)


def test_stopping_on_purpose_is_an_expected_exit() -> None:
    seen = Recorder()
    child = ChildProcess(echo_then_exit, name="test-stop", on_event=seen.on_event, on_exit=seen.on_exit)
    child.start()
    child.stop(goodbye=None, timeout=0.2, grace=0.5)  # no goodbye: SIGINT ends it
    assert seen.ended.wait(10)
    assert seen.exits[0][1] is True and not child.is_alive()


def test_a_listener_that_fails_does_not_stop_the_reader() -> None:
    seen = Recorder()

    def fussy(event: Any) -> None:
        if event == ("echo", 0):
            raise RuntimeError("listener bug")
        seen.on_event(event)

    child = ChildProcess(echo_then_exit, name="test-fussy", on_event=fussy, on_exit=seen.on_exit)
    child.start()
    child.send(0)
    child.send(1)
    child.send(None)
    assert seen.ended.wait(30)
    assert seen.events == [("echo", 1)] and seen.exits == [(0, False)]


def test_run_child_relays_events_and_passes_a_cancel_on() -> None:
    relayed: queue.Queue[Any] = queue.Queue()
    outcome, code = run_child(
        count_until_cancelled, 3, CancelToken(), relayed.put, is_final=lambda e: e[0] == "done", grace=5, name="t"
    )
    assert outcome == ("done", 3) and code == 0
    assert [relayed.get_nowait() for _ in range(4)] == [("step", 0), ("step", 1), ("step", 2), ("done", 3)]

    token = CancelToken()
    timer = threading.Timer(1.0, token.cancel)
    timer.start()
    outcome, code = run_child(
        count_until_cancelled, 100_000, token, lambda e: None, is_final=lambda e: e[0] != "step", grace=10, name="t"
    )
    assert outcome is not None and outcome[0] == "stopped" and code == 0


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (-signal.SIGSEGV, "crashed (SIGSEGV) inside its native library while loading m.gguf, on this machine's CPU"),
        (-signal.SIGABRT, "crashed (SIGABRT)"),
        (-signal.SIGKILL, "killed (SIGKILL) while loading m.gguf. This usually means the system ran out of memory"),
        (3, "exited unexpectedly with code 3 while loading m.gguf"),
        (None, "stopped responding while loading m.gguf"),
    ],
)
def test_exits_are_put_in_words_that_blame_no_file(code: int | None, words: str) -> None:
    text = describe_exit(code, "while loading m.gguf")
    assert words in text
    assert "damaged" not in text and "file" not in text


def test_only_native_crashes_count_as_crashes() -> None:
    assert is_native_crash(-signal.SIGSEGV) and is_native_crash(-signal.SIGBUS)
    assert not is_native_crash(-signal.SIGKILL) and not is_native_crash(0) and not is_native_crash(None)
