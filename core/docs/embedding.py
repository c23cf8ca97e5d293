"""Embeddings for the document index from an embedding GGUF, run by llama.cpp in its own engine child process
(``EngineHost.embed``), so a native crash ends a search, not the app. Texts go in batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from core.engine.protocol import EmbeddingsReady, LoadOptions, ModelSpec
from core.errors import EngineError

if TYPE_CHECKING:
    from core.engine.host import EngineHost

BATCH = 32


class EngineEmbedder:
    """``embed(texts)`` through an engine host with ``model`` loaded (started on first use)."""

    def __init__(self, new_host: Callable[[str], EngineHost], model: Path, context_length: int = 2048) -> None:
        self.model = str(model)
        self._new_host = new_host
        self._context = context_length
        self._host: EngineHost | None = None

    def _ready(self) -> EngineHost:
        if self._host is None or self._host.model is None:
            host = self._new_host("embeddings")
            host.load_blocking(ModelSpec("llama", self.model, LoadOptions(context_length=self._context)))
            self._host = host
        return self._host

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        host = self._ready()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            event = host.wait(host.embed(list(texts[start : start + BATCH])), timeout=600)
            if not isinstance(event, EmbeddingsReady):
                raise EngineError("The embedding model gave no vectors.")
            vectors.extend(list(v) for v in event.vectors)
        return vectors

    def close(self) -> None:
        if self._host is not None:
            self._host.shutdown()
            self._host = None
