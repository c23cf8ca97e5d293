"""Documents as a feature of the app: collections indexed as background jobs with progress (re-indexing reads changed
files only), searched with the collection's embedding model when it has one, and the passages a chat should read,
numbered so a reply can cite them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.docs.embedding import EngineEmbedder
from core.docs.index import DocumentIndex, Embedder, Hit, IndexReport, SearchResult
from core.store import Store

if TYPE_CHECKING:
    from core.engine.host import EngineHost
    from core.jobs import JobContext, JobManager

logger = logging.getLogger(__name__)

JOB_KIND = "docs-index"
#: A dropped file up to this many characters goes into the chat whole; a longer one through retrieval.
WHOLE_FILE_CHARS = 12_000


@dataclass(frozen=True)
class Sources:
    """What a chat reads before answering: passages numbered [1], [2], … and the instruction to cite them."""

    hits: tuple[Hit, ...]
    retrieval: str
    note: str | None

    def system_text(self) -> str:
        if not self.hits:
            return ""
        blocks = [f"[{i}] {Path(h.path).name} ({h.place}):\n{h.text}" for i, h in enumerate(self.hits, start=1)]
        return (
            "Answer using the numbered passages below from the user's documents when they are relevant, and cite "
            "them as [1], [2], … after the sentences they support. If they do not contain the answer, say so.\n\n"
            + "\n\n".join(blocks)
        )

    def to_json(self) -> list[dict[str, object]]:
        return [{"n": i, **h.to_json()} for i, h in enumerate(self.hits, start=1)]


class DocumentService:
    def __init__(self, store: Store, jobs: JobManager | None, new_host: Callable[[str], EngineHost]) -> None:
        self.index = DocumentIndex(store)
        self._jobs = jobs
        self._new_host = new_host
        self._embedders: dict[str, EngineEmbedder] = {}
        if jobs is not None:
            jobs.register_runner(JOB_KIND, self._run_job)

    def embedder_for(self, model: str | None) -> Embedder | None:
        if not model:
            return None
        if model not in self._embedders:
            self._embedders[model] = EngineEmbedder(self._new_host, Path(model))
        return self._embedders[model]

    def add(
        self,
        name: str,
        paths: Sequence[Path],
        *,
        embed_model: Path | None = None,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> IndexReport:
        existing = next((c for c in self.index.collections() if c.name == name), None)
        model = str(embed_model.resolve()) if embed_model else (existing.embed_model if existing else None)
        return self.index.add(name, list(paths), embedder=self.embedder_for(model), progress=progress)

    def submit_add(self, name: str, paths: Sequence[Path], *, embed_model: Path | None = None) -> str:
        """Index in the background as a job (progress and cancel through the job system); returns the job id."""
        assert self._jobs is not None
        params = {"name": name, "paths": [str(p) for p in paths], "embed_model": str(embed_model or "")}
        return self._jobs.submit(JOB_KIND, f"Index documents: {name}", params=params)

    def _run_job(self, params: dict[str, Any]) -> Callable[[JobContext], dict[str, Any]]:
        def run(ctx: JobContext) -> dict[str, Any]:
            model = Path(params["embed_model"]) if params.get("embed_model") else None
            existing = next((c for c in self.index.collections() if c.name == params["name"]), None)
            chosen = str(model.resolve()) if model else (existing.embed_model if existing else None)
            report = self.index.add(
                params["name"],
                [Path(p) for p in params["paths"]],
                embedder=self.embedder_for(chosen),
                progress=lambda done, total, label: ctx.report(done / total if total else None, label),
                cancelled=lambda: ctx.token.cancelled,
            )
            return report.to_json()

        return run

    def search(self, name: str, query: str, *, limit: int = 5) -> SearchResult:
        info = self.index.info(name)
        return self.index.search(name, query, limit=limit, embedder=self.embedder_for(info.embed_model))

    def sources_for(self, name: str, question: str, *, limit: int = 4) -> Sources:
        result = self.search(name, question, limit=limit)
        return Sources(result.hits, result.retrieval, result.note)

    def close(self) -> None:
        for embedder in self._embedders.values():
            embedder.close()
        self._embedders.clear()
