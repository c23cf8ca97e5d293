"""The smoke test of a built app (``Hangar --smoke-test --data-dir TMP``): the window is built offscreen by the
caller; this part writes a tiny model, loads it in the engine child process and generates a few tokens."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from core.app import AppContext
from core.devkit.modelgen import write_tiny_gguf
from core.engine.protocol import ChatMessage, GenerationParams, LoadOptions, ModelSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmokeResult:
    model_path: str
    completion_tokens: int
    seconds: float


def run_engine_smoke(app: AppContext) -> SmokeResult:
    """Generate a tiny GGUF, import it into the library (a real copy), load it from there and generate."""
    from core.models.types import ImportMode

    started = time.perf_counter()
    generated = write_tiny_gguf(app.paths.cache_dir / "smoke" / "smoke-tiny.gguf")
    library = app.library
    report = library.import_paths([generated], ImportMode.COPY)
    entry = library.resolve("smoke-tiny")
    if not entry.id:
        raise RuntimeError(f"the tiny model was not imported: {report}")
    model = entry.load_path
    host = app.new_engine_host("smoke-engine")
    host.load_blocking(ModelSpec("llama", str(model), LoadOptions(context_length=512)), timeout=120)
    stats = host.generate_blocking(
        [ChatMessage("user", "Say something.")], GenerationParams(max_tokens=8, ignore_eos=True, seed=1), timeout=120
    )
    host.shutdown()
    if stats.completion_tokens < 1:
        raise RuntimeError("the engine produced no tokens")
    return SmokeResult(str(model), stats.completion_tokens, time.perf_counter() - started)
