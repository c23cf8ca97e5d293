"""Shared fixtures: every test gets its own data folder, so nothing touches the user's real files."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Fixture modules of the features (tests/fixtures_<feature>.py).
pytest_plugins: list[str] = [
    "pytester",  # tests/ui/test_strictness.py runs small suites under this project's pytest settings
    "tests.support.fixtures_chat",
    "tests.support.fixtures_finetune",
    "tests.support.fixtures_fit",
    "tests.support.fixtures_hub",
    "tests.support.fixtures_library",
]

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "0")
# Tests reach only 127.0.0.1: a test without the local Hub (tests/support/hub) that still asks the Hub — Discover's
# popular models when a window opens — gets a refused connection at once, never the real huggingface.co.
os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "hangar-data"
    monkeypatch.setenv("HANGAR_DATA_DIR", str(root))
    return root


@pytest.fixture
def app(data_dir: Path) -> Iterator[object]:
    from backends import available_engines
    from backends.worker import serve
    from core.app import AppContext
    from core.paths import AppPaths

    context = AppContext.create(AppPaths.under(data_dir), worker_entry=serve, engine_availability=available_engines)
    yield context
    _settle_qt_tasks()
    context.close()


def _settle_qt_tasks() -> None:
    """As the app does before it closes its services (ui/app.py run_gui): close the windows, let their background
    tasks end and deliver their results, so none of them reaches a closed database."""
    if "PySide6.QtWidgets" not in sys.modules:
        return
    from PySide6.QtCore import QThreadPool
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is not None:
        for widget in QApplication.topLevelWidgets():
            if widget.isVisible():
                widget.close()  # the window's own shutdown (pages stop their work), as when a person quits
    QThreadPool.globalInstance().waitForDone(5000)
    if QApplication.instance() is not None:
        QApplication.processEvents()


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, loadable llama-architecture GGUF (random weights, ChatML template), made once per session."""
    from core.devkit.modelgen import write_tiny_gguf

    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny-llama-F16.gguf")


class _ListenerFailures(logging.Handler):
    """Collects the errors ``core.events.EventHook`` logs when a listener raises (the emitter carries on)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.failures.append(record.getMessage() + "\n" + "".join(traceback.format_exception(*record.exc_info)))


@pytest.fixture(autouse=True)
def _event_listeners_must_not_fail() -> Iterator[None]:
    """An exception raised in an event listener fails the test that caused it: the hook only logs it, so without
    this a broken page or service would pass every test."""
    handler = _ListenerFailures()
    events_logger = logging.getLogger("core.events")
    events_logger.addHandler(handler)
    try:
        yield
    finally:
        events_logger.removeHandler(handler)
    if handler.failures:
        pytest.fail("an event listener raised:\n" + "\n".join(handler.failures), pytrace=False)
