"""Fixtures that start the local Hub (tests/hub) and point huggingface_hub at it through HF_ENDPOINT."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.hub import LocalHub
from tests.support.hub.catalog import build_catalog


@pytest.fixture(scope="session")
def local_hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    hub = build_catalog(LocalHub(), tmp_path_factory.mktemp("hub-files")).start()
    yield hub
    hub.stop()


@pytest.fixture
def hub(local_hub_server: LocalHub, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    """The running local Hub with no faults armed; HF_ENDPOINT points at it for this test."""
    local_hub_server.reset()
    monkeypatch.setenv("HF_ENDPOINT", local_hub_server.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield local_hub_server
    local_hub_server.reset()
