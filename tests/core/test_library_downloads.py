"""Downloads from the local Hub (real HTTP on 127.0.0.1) land in the library with their repository."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.app import AppContext
from core.downloads.manager import DownloadState
from core.library.downloads import follow_downloads
from core.models.types import ModelFormat, Origin
from tests.support.downloads import make_app, make_manager
from tests.support.hub import LocalHub
from tests.support.hub.catalog import GGUF_REPO, MLX_REPO


@pytest.fixture
def hub_app(tmp_path: Path) -> Iterator[AppContext]:
    context = make_app(tmp_path / "data")
    yield context
    context.close()


def test_finished_downloads_are_indexed(hub_app: AppContext, hub: LocalHub) -> None:
    manager = make_manager(hub_app)
    library = hub_app.library
    first = manager.wait(manager.enqueue(GGUF_REPO, quant="Q8_0").id, 30)
    assert first.state == DownloadState.DONE
    stop = follow_downloads(library, manager)  # picks up what finished before it started following
    (q8,) = library.list()
    assert q8.origin == Origin.DOWNLOADED and q8.repo_id == GGUF_REPO and q8.root == first.paths[0]

    split = manager.wait(manager.enqueue(GGUF_REPO, quant="F32").id, 30)
    mlx = manager.wait(manager.enqueue(MLX_REPO).id, 30)
    assert split.state == mlx.state == DownloadState.DONE
    entries = {e.format: e for e in library.list()}
    assert entries[ModelFormat.GGUF_SPLIT].files == tuple(sorted(split.paths))
    assert entries[ModelFormat.MLX].root == mlx.destination and entries[ModelFormat.MLX].repo_id == MLX_REPO
    assert len(library.list()) == 3
    stop()
