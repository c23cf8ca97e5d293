"""Fixtures shared by the window's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def ws_app(data_dir: Path) -> Iterator[object]:
    """An AppContext wired like main.py's, with the real workshop child entry point."""
    from backends import available_engines
    from backends.worker import serve
    from backends.workshop_worker import run as workshop_entry
    from core.app import AppContext
    from core.paths import AppPaths

    context = AppContext.create(
        AppPaths.under(data_dir),
        worker_entry=serve,
        engine_availability=available_engines,
        workshop_entry=workshop_entry,
    )
    yield context
    context.close()
