"""Shared fixtures: every test gets its own data folder, so nothing touches the user's real files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Fixture modules of the features (tests/fixtures_<feature>.py).
pytest_plugins: list[str] = [
    "tests.support.fixtures_chat",
    "tests.support.fixtures_finetune",
    "tests.support.fixtures_fit",
    "tests.support.fixtures_hub",
    "tests.support.fixtures_library",
]

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "0")


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
    context.close()


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, loadable llama-architecture GGUF (random weights, ChatML template), made once per session."""
    from core.devkit.modelgen import write_tiny_gguf

    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny-llama-F16.gguf")
