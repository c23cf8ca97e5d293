"""Vision projectors (``mmproj*.gguf``): the image encoder a llama.cpp vision model loads next to its weights.

A projector is not a model of its own. Found next to GGUF models (same folder), it becomes a file of each of them:
listed, moved, imported and deleted with the model, and passed to the engine when the model loads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from core.errors import HangarError
from core.models.types import Candidate, ModelFormat

logger = logging.getLogger(__name__)

#: Preferred when a folder holds several projectors: the unquantized ones first (every llama.cpp build reads them).
_PREFERENCE = ("f16", "bf16", "f32", "q8_0")


def is_projector_name(name: str) -> bool:
    lowered = name.lower()
    return lowered.endswith(".gguf") and "mmproj" in lowered


def projector_of(files: Sequence[Path], root: Path) -> Path | None:
    """The projector among a model's files, if it has one."""
    return next((f for f in files if f != root and is_projector_name(f.name)), None)


def find_projector(folder: Path) -> Path | None:
    """The projector for the GGUF models in ``folder``: an ``mmproj*.gguf`` whose header says ``clip``."""
    try:
        names = sorted(p for p in folder.iterdir() if p.is_file() and is_projector_name(p.name))
    except OSError:
        return None
    ranked = sorted(names, key=lambda p: next((i for i, q in enumerate(_PREFERENCE) if q in p.name.lower()), 99))
    for path in ranked:
        if is_projector_file(path):
            return path
    return None


def is_projector_file(path: Path) -> bool:
    from core.gguf import read_gguf

    try:
        return read_gguf(path).architecture == "clip"
    except (HangarError, OSError) as exc:
        logger.info("%s is not a usable projector: %s", path, exc)
        return False


def with_projector(candidate: Candidate, projector: Path | None) -> Candidate:
    """``candidate`` with ``projector`` as one more of its files (GGUF models only; adapters take none)."""
    if projector is None or candidate.format not in (ModelFormat.GGUF, ModelFormat.GGUF_SPLIT):
        return candidate
    if projector in candidate.files:
        return candidate
    size = projector.stat().st_size
    return replace(candidate, files=(*candidate.files, projector), size_bytes=candidate.size_bytes + size)
