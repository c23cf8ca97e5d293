"""Screenshot scenes of Discover and Downloads with real data: a local Hub (the test one, tests/hub) is started
on 127.0.0.1 for the rendering, so the pages show real search results, files, fit badges and downloads."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_hub: Any = None


def _local_hub() -> Any:
    global _hub
    if _hub is None:
        from tests.support.hub import LocalHub
        from tests.support.hub.catalog import build_catalog

        _hub = build_catalog(LocalHub(), Path(tempfile.mkdtemp(prefix="hangar-shots-hub-"))).start()
        os.environ["HF_ENDPOINT"] = _hub.url
    return _hub


def _wait(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)


def discover_results(window: Any) -> None:
    _local_hub()
    window.show_page("discover")
    page = window.pages["discover"]
    page.text_only.setChecked(False)
    page.search.setText("chatter")
    page.search_now()
    _wait(lambda: page.results_model.rowCount() > 0)


def discover_files(window: Any) -> None:
    from tests.support.hub.catalog import GGUF_REPO

    _local_hub()
    window.show_page("discover")
    page = window.pages["discover"]
    page.search.setText("tiny")
    page.text_only.setChecked(False)
    page.search_now()
    _wait(lambda: page.results_model.rowCount() > 0)
    page.open_model(GGUF_REPO)
    _wait(lambda: page.detail.files_model.best is not None)


def downloads_active(window: Any) -> None:
    from core.downloads.manager import DownloadState
    from tests.support.hub.catalog import BIGGER_REPO, GGUF_REPO, MLX_REPO, SPARSE_REPO

    hub = _local_hub()
    manager = window.app.downloads
    done = manager.enqueue(MLX_REPO)
    manager.wait(done.id, 30)
    hub.faults.corrupt.add(f"{GGUF_REPO}/tiny-llama-Q8_0.gguf")
    failed = manager.enqueue(GGUF_REPO, quant="Q8_0")
    manager.wait(failed.id, 30)
    hub.faults.throttle_bps = 3_000_000
    paused = manager.enqueue(BIGGER_REPO)
    _wait(lambda: manager.get(paused.id).done > 2_000_000)
    manager.pause(paused.id)
    manager.wait(paused.id, 10)
    running = manager.enqueue(SPARSE_REPO)
    window.show_page("downloads")
    page = window.pages["downloads"]
    _wait(lambda: any(i.id == running.id and i.speed > 0 and i.done > 4_000_000 for i in page.model.items))
    page.select(running.id)
    hub.faults.corrupt.clear()
    _ = DownloadState


SCENES: list[tuple[str, Callable[[Any], None]]] = [
    ("discover-results", discover_results),
    ("discover-files", discover_files),
    ("downloads-active", downloads_active),
]
