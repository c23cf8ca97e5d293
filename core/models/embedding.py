"""Embedding models: GGUFs that turn text into vectors (for the document index) rather than chat.

llama.cpp runs them with pooling: an encoder architecture (BERT and its kin) or any architecture whose header sets
``<arch>.pooling_type`` (Qwen3-Embedding is a ``qwen3`` with pooling). A reranker (pooling ``rank``) scores pairs of
texts instead, so it is not one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: llama.cpp's encoder architectures whose GGUFs are embedding models (gguf-py ``MODEL_ARCH_NAMES``).
EMBEDDING_ARCHITECTURES = frozenset(
    {
        "bert",
        "modern-bert",
        "nomic-bert",
        "nomic-bert-moe",
        "neo-bert",
        "jina-bert-v2",
        "jina-bert-v3",
        "eurobert",
        "gemma-embedding",
    }
)
#: llama.cpp's ``LLAMA_POOLING_TYPE_RANK``: a reranker's pooling.
_RANK = 4


def is_embedding_header(architecture: str | None, metadata: Mapping[str, Any]) -> bool:
    """Whether a GGUF header describes an embedding model."""
    pooling = metadata.get(f"{architecture}.pooling_type") if architecture else None
    if isinstance(pooling, int) and pooling == _RANK:
        return False
    return (architecture or "").lower() in EMBEDDING_ARCHITECTURES or isinstance(pooling, int)


def is_embedding_architecture(architecture: str | None) -> bool:
    return (architecture or "").lower() in EMBEDDING_ARCHITECTURES
