"""Finding models other apps already have on disk, without copying them: the Hugging Face cache, LM Studio,
Ollama, GPT4All, and folders the user adds. Found models enter the library with origin ``found``.

Every location is built from ``ScanRoots`` (a home folder and a Hugging Face cache folder), so tests point it at
fake app folders. Only headers are read, and an unchanged file (same size and modification time as at the last
scan) is not read again.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.models.detect import ScanCache, recognise, recognise_gguf_file
from core.models.types import Candidate, ImportProblem, Origin, ScanReport
from core.store import Store

if TYPE_CHECKING:
    from core.library.service import Library

logger = logging.getLogger(__name__)

SCAN_HOME_ENV = "HANGAR_SCAN_HOME"
_OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"


@dataclass(frozen=True)
class ScanRoots:
    home: Path
    #: The Hugging Face hub cache (``HF_HUB_CACHE``); None skips it.
    hf_cache: Path | None
    #: The user's own scan folders (``settings.scan_folders``).
    extra: tuple[Path, ...] = ()
    #: Ollama's models folder when ``OLLAMA_MODELS`` moves it; None means ``home/.ollama/models``.
    ollama_models: Path | None = None
    platform: str = sys.platform

    @classmethod
    def default(cls, extra: tuple[str, ...] = ()) -> ScanRoots:
        """The real locations; ``$HANGAR_SCAN_HOME`` stands in for the home folder (and holds the Hugging Face
        cache at ``.cache/huggingface/hub``) so tests, screenshots and the smoke test never see the real ones."""
        from huggingface_hub import constants

        ollama = os.environ.get("OLLAMA_MODELS")
        fake_home = os.environ.get(SCAN_HOME_ENV)
        if fake_home:
            home = Path(fake_home)
            return cls(home=home, hf_cache=home / ".cache" / "huggingface" / "hub", extra=tuple(map(Path, extra)))
        return cls(
            home=Path.home(),
            hf_cache=Path(constants.HF_HUB_CACHE),
            extra=tuple(Path(p).expanduser() for p in extra),
            ollama_models=Path(ollama) if ollama else None,
        )

    def lmstudio(self) -> list[Path]:
        return [self.home / ".lmstudio" / "models", self.home / ".cache" / "lm-studio" / "models"]

    def ollama(self) -> Path:
        return self.ollama_models or self.home / ".ollama" / "models"

    def gpt4all(self) -> Path:
        if self.platform == "darwin":
            return self.home / "Library" / "Application Support" / "nomic.ai" / "GPT4All"
        if self.platform == "win32":
            return self.home / "AppData" / "Local" / "nomic.ai" / "GPT4All"
        return self.home / ".local" / "share" / "nomic.ai" / "GPT4All"


Found = tuple[list[Candidate], list[ImportProblem]]


def scan_huggingface(cache_dir: Path | None, cache: ScanCache | None = None) -> Found:
    """Models in the Hugging Face cache: each repository's newest snapshot, read through its symlinks."""
    if cache_dir is None or not cache_dir.is_dir():
        return [], []
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return [], []
    candidates: list[Candidate] = []
    problems: list[ImportProblem] = []
    for repo in info.repos:
        if repo.repo_type != "model" or not repo.revisions:
            continue
        newest = max(repo.revisions, key=lambda r: r.last_modified)
        found = recognise([newest.snapshot_path], source="huggingface", cache=cache)
        for c in found.candidates:
            # An MLX folder is the snapshot itself: name it after the repository, not a commit hash.
            name = repo.repo_id.split("/")[-1] if c.root == newest.snapshot_path else c.name
            candidates.append(replace(c, name=name, repo_id=repo.repo_id))
        problems += [p for p in found.problems if p.code != "empty"]
    return candidates, problems


def scan_lmstudio(folders: list[Path], cache: ScanCache | None = None) -> Found:
    """LM Studio keeps ``models/<publisher>/<repo>/<file>.gguf`` (and MLX folders at the repo level)."""
    return _scan_folders([f for f in folders if f.is_dir()], "lmstudio", cache, repo_from_layout=True)


def scan_gpt4all(folder: Path, cache: ScanCache | None = None) -> Found:
    return _scan_folders([folder] if folder.is_dir() else [], "gpt4all", cache)


def scan_user_folders(folders: tuple[Path, ...], cache: ScanCache | None = None) -> Found:
    return _scan_folders([f for f in folders if f.is_dir()], "folder", cache)


def _scan_folders(
    folders: list[Path], source: str, cache: ScanCache | None, *, repo_from_layout: bool = False
) -> Found:
    candidates: list[Candidate] = []
    problems: list[ImportProblem] = []
    for folder in folders:
        found = recognise([folder], source=source, cache=cache)
        for c in found.candidates:
            repo_id = None
            if repo_from_layout:
                relative = c.root.relative_to(folder).parts
                repo_id = "/".join(relative[:2]) if len(relative) >= 2 else None
            candidates.append(replace(c, repo_id=repo_id) if repo_id else c)
        problems += [p for p in found.problems if p.code != "empty"]
    return candidates, problems


def scan_ollama(models_dir: Path, cache: ScanCache | None = None) -> Found:
    """Ollama: ``manifests/<host>/<namespace>/<name>/<tag>`` JSON files whose model layer is a GGUF blob in
    ``blobs/sha256-<digest>``."""
    manifests = models_dir / "manifests"
    if not manifests.is_dir():
        return [], []
    candidates: list[Candidate] = []
    problems: list[ImportProblem] = []
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        parts = manifest.relative_to(manifests).parts
        if len(parts) != 4:
            continue
        _host, namespace, model, tag = parts
        name = f"{model}:{tag}" if namespace == "library" else f"{namespace}/{model}:{tag}"
        try:
            layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers", [])
            digest = next(layer["digest"] for layer in layers if layer.get("mediaType") == _OLLAMA_MODEL_LAYER)
        except (ValueError, StopIteration, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            problems.append(ImportProblem(manifest, f"Ollama's manifest for {name} could not be read.", "unreadable"))
            continue
        blob = models_dir / "blobs" / str(digest).replace(":", "-")
        if not blob.is_file():
            problems.append(ImportProblem(blob, f"Ollama's model {name} is missing its weights blob.", "not_found"))
            continue
        found, trouble = recognise_gguf_file(blob, name=name, source="ollama", cache=cache)
        candidates += [replace(c, repo_id=f"ollama:{name}") for c in found]
        problems += trouble
    return candidates, problems


def scan_all(roots: ScanRoots, cache: ScanCache | None = None) -> Found:
    scanners: list[Callable[[], Found]] = [
        lambda: scan_huggingface(roots.hf_cache, cache),
        lambda: scan_lmstudio(roots.lmstudio(), cache),
        lambda: scan_ollama(roots.ollama(), cache),
        lambda: scan_gpt4all(roots.gpt4all(), cache),
        lambda: scan_user_folders(roots.extra, cache),
    ]
    candidates: list[Candidate] = []
    problems: list[ImportProblem] = []
    for scanner in scanners:
        try:
            found, trouble = scanner()
        except OSError as exc:
            logger.warning("a model scan failed: %s", exc)
            continue
        candidates += found
        problems += trouble
    return candidates, problems


def rescan(library: Library, store: Store, roots: ScanRoots) -> ScanReport:
    """Bring the library's ``found`` entries in line with what the scanners see now."""
    entries = library.list()
    keys = {r["id"]: r["stat_key"] for r in store.query("SELECT id, stat_key FROM library_models")}
    cache = ScanCache({str(e.root): (keys.get(e.id), _as_candidate(e)) for e in entries if e.origin == Origin.FOUND})
    candidates, problems = scan_all(roots, cache)
    hidden = {r["root"] for r in store.query("SELECT root FROM library_hidden")}
    by_root = {str(e.root): e for e in entries}
    seen: set[str] = set()
    added = 0
    for candidate in candidates:
        root = str(candidate.root.absolute())
        if root in hidden or root in seen:
            continue
        seen.add(root)
        existing = by_root.get(root)
        if existing is None:
            library._insert(candidate, Origin.FOUND, fingerprint=None)
            added += 1
        elif existing.origin == Origin.FOUND and cache.lookup(candidate.root, candidate.files) is None:
            # Changed on disk since the last scan: describe it afresh, keeping its id and name.
            library._update_description(existing.id, candidate)
    gone = [e for e in entries if e.origin == Origin.FOUND and str(e.root) not in seen]
    for entry in gone:
        store.execute("DELETE FROM library_models WHERE id = ?", (entry.id,))
    logger.info(
        "scan: %d models found, %d new, %d gone, %d headers read", len(seen), added, len(gone), cache.headers_read
    )
    return ScanReport(
        found=len(seen), added=added, removed=len(gone), headers_read=cache.headers_read, problems=tuple(problems)
    )


def _as_candidate(entry: object) -> Candidate:
    from core.library.rows import candidate_of

    return candidate_of(entry)  # type: ignore[arg-type]
