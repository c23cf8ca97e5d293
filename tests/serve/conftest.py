"""Fixtures of the server tests: an app whose library holds real tiny GGUF models, and a running server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def second_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny model (different weights and name) for eviction tests."""
    from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf

    config = TinyModelConfig(seed=7, name="tiny-two")
    return write_tiny_gguf(tmp_path_factory.mktemp("models-two") / "tiny-two-F16.gguf", config)


@pytest.fixture
def served_models(app, tiny_gguf: Path, second_gguf: Path) -> list[str]:  # type: ignore[no-untyped-def]
    """The two tiny models linked into the app's library; their library names."""
    from core.models.types import ImportMode

    library = app.library
    library.import_paths([tiny_gguf, second_gguf], ImportMode.LINK)
    return sorted(e.name for e in library.list())


@pytest.fixture
def serve_service(app, served_models: list[str]) -> Iterator[object]:  # type: ignore[no-untyped-def]
    from core.serve.server import ServeService

    service = ServeService(app)
    yield service
    service.stop()


@pytest.fixture
def server(serve_service) -> object:  # type: ignore[no-untyped-def]
    """A running server on a free port of 127.0.0.1, no key."""
    serve_service.start(port=0)
    return serve_service


@pytest.fixture
def base_url(server) -> str:  # type: ignore[no-untyped-def]
    return server.endpoint.base_url


@pytest.fixture
def client(base_url: str):  # type: ignore[no-untyped-def]
    import openai

    with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60) as c:
        yield c
