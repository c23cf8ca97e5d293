"""The values of the model library: formats, origins, a recognised model on disk and a library entry.

Kept apart from the index (``core.library.service``) so the scanners, the importer and the UI share them without
importing each other.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ModelFormat(enum.StrEnum):
    GGUF = "gguf"  # one .gguf file
    GGUF_SPLIT = "gguf-split"  # name-00001-of-0000N.gguf ... in one folder
    MLX = "mlx"  # a folder: config.json + *.safetensors + tokenizer
    LORA = "lora"  # an adapter: a PEFT/MLX adapter folder or a GGUF with general.type = adapter

    @property
    def engine(self) -> str | None:
        """The engine that loads this format (``core.engine.host.ModelSpec.engine``); adapters load with a base."""
        return {"gguf": "llama", "gguf-split": "llama", "mlx": "mlx"}.get(self.value)


class Origin(enum.StrEnum):
    DOWNLOADED = "downloaded"  # fetched by Hangar into its models folder
    IMPORTED = "imported"  # copied or moved into Hangar's models folder
    LINKED = "linked"  # left where it was, by the user's choice
    FOUND = "found"  # found in another app's folder (or a user scan folder); never copied

    @property
    def owns_files(self) -> bool:
        """Whether removing the entry deletes its files by default (only files Hangar put there)."""
        return self in (Origin.DOWNLOADED, Origin.IMPORTED)


class ImportMode(enum.StrEnum):
    COPY = "copy"
    MOVE = "move"
    LINK = "link"


@dataclass(frozen=True)
class ModelMetadata:
    """What the model's own files say about it. Every field may be unknown (None)."""

    architecture: str | None = None
    parameter_count: int | None = None
    quant: str | None = None
    context_length: int | None = None
    has_chat_template: bool = False
    license: str | None = None
    model_name: str | None = None  # general.name / the repository name, when the file says
    base_model: str | None = None  # for adapters: the base the adapter was trained on, as written in it
    #: An embedding model (``core.models.embedding``): it makes vectors for documents, it does not chat.
    embedding: bool = False


@dataclass(frozen=True)
class Candidate:
    """A model recognised (and validated) on disk, not yet in the library."""

    name: str
    format: ModelFormat
    #: The path a user points at: the file (single GGUF), the first part (split set), the folder (MLX, adapter).
    root: Path
    #: Every file that belongs to the model.
    files: tuple[Path, ...]
    size_bytes: int
    metadata: ModelMetadata = field(default_factory=ModelMetadata)
    #: Where it was found when a scanner found it ("huggingface", "lmstudio", "ollama", "gpt4all", "folder").
    source: str | None = None
    repo_id: str | None = None

    @property
    def load_path(self) -> Path:
        return self.root

    @property
    def projector(self) -> Path | None:
        from core.models.projector import projector_of

        return projector_of(self.files, self.root)


@dataclass(frozen=True)
class LibraryEntry:
    id: str
    name: str
    format: ModelFormat
    origin: Origin
    root: Path
    files: tuple[Path, ...]
    size_bytes: int
    metadata: ModelMetadata
    source: str | None = None
    repo_id: str | None = None
    base_model_id: str | None = None
    fingerprint: str | None = None
    added_at: float = 0.0

    @property
    def engine(self) -> str | None:
        return self.format.engine

    @property
    def load_path(self) -> Path:
        """What an engine opens: the GGUF file (first part of a split set) or the MLX/adapter folder."""
        return self.root

    @property
    def available(self) -> bool:
        return all(f.exists() for f in self.files)

    @property
    def projector(self) -> Path | None:
        """A vision model's projector (``mmproj*.gguf``), one of its files (``core.models.projector``)."""
        from core.models.projector import projector_of

        return projector_of(self.files, self.root)

    @property
    def is_embedding(self) -> bool:
        """An embedding model (also one listed before the header's pooling was recorded: by its architecture)."""
        from core.models.embedding import is_embedding_architecture

        return self.metadata.embedding or is_embedding_architecture(self.metadata.architecture)

    @property
    def capabilities(self) -> tuple[str, ...]:
        """What the model does besides text chat: ``vision`` (it has a projector), ``embedding`` (documents only)."""
        return (*(("vision",) if self.projector is not None else ()), *(("embedding",) if self.is_embedding else ()))

    def to_json(self) -> dict[str, Any]:
        meta = self.metadata
        return {
            "id": self.id,
            "name": self.name,
            "format": self.format.value,
            "engine": self.engine,
            "architecture": meta.architecture,
            "parameter_count": meta.parameter_count,
            "quant": meta.quant,
            "context_length": meta.context_length,
            "chat_template": meta.has_chat_template,
            "license": meta.license,
            "size_bytes": self.size_bytes,
            "origin": self.origin.value,
            "source": self.source,
            "repo_id": self.repo_id,
            "base_model_id": self.base_model_id,
            "path": str(self.root),
            "files": [str(f) for f in self.files],
            "projector": str(self.projector) if self.projector else None,
            "capabilities": list(self.capabilities),
            "available": self.available,
            "added_at": self.added_at,
        }


@dataclass(frozen=True)
class ImportProblem:
    """A path that was not imported, with the sentence to show for it."""

    path: Path
    message: str
    code: str = "model_file"


@dataclass(frozen=True)
class Recognition:
    """What a set of dropped or given paths turned out to hold."""

    candidates: tuple[Candidate, ...] = ()
    problems: tuple[ImportProblem, ...] = ()


@dataclass(frozen=True)
class ImportPreview:
    """What an import would do, shown before anything is copied (the import dialog)."""

    new: tuple[Candidate, ...] = ()
    duplicates: tuple[tuple[Candidate, LibraryEntry], ...] = ()
    problems: tuple[ImportProblem, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(c.size_bytes for c in self.new)


@dataclass(frozen=True)
class ImportReport:
    imported: tuple[LibraryEntry, ...] = ()
    #: Models already in the library (same content): (the path given, the entry that has it).
    duplicates: tuple[tuple[Path, LibraryEntry], ...] = ()
    problems: tuple[ImportProblem, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "imported": [e.to_json() for e in self.imported],
            "duplicates": [{"path": str(p), "existing": e.to_json()} for p, e in self.duplicates],
            "problems": [{"path": str(p.path), "code": p.code, "message": p.message} for p in self.problems],
        }


@dataclass(frozen=True)
class RemoveResult:
    entry: LibraryEntry
    files_deleted: bool
    freed_bytes: int


@dataclass(frozen=True)
class ScanReport:
    found: int = 0
    added: int = 0
    removed: int = 0
    headers_read: int = 0  # files whose headers were read (unchanged files are not read again)
    problems: tuple[ImportProblem, ...] = ()
