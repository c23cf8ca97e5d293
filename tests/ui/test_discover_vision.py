"""Discover's detail pane says when a repository is a vision model (it ships an mmproj projector)."""

from __future__ import annotations

from core.hub.client import HubClient
from tests.support.hub import LocalHub
from tests.support.hub.catalog import GGUF_REPO, MLX_REPO
from ui.pages.discover_detail import ModelDetailView


def test_the_detail_pane_marks_vision_repositories(qtbot, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    view = ModelDetailView()
    qtbot.addWidget(view)
    client = HubClient(endpoint=hub.url)
    view.show_detail(client.model_detail(GGUF_REPO))  # it lists an mmproj companion
    assert "vision: takes images" in view.stats.text()
    view.show_detail(client.model_detail(MLX_REPO))
    assert "vision" not in view.stats.text()
