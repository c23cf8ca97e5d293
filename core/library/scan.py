"""Finding models other apps already have on disk, without copying them: the Hugging Face cache, LM Studio,
Ollama, GPT4All, and folders the user adds. Found models enter the library with origin ``found``.

Every location is built from ``ScanRoots`` (a home folder and a Hugging Face cache folder), so tests point it at
fake app folders. Only headers are read, and an unchanged file (same size and modification time as at the last
scan) is not read again. Nothing here writes the library: ``plan_rescan`` and ``own_folder_diff`` return a
``ScanDiff`` that ``Library.rescan`` applies. Hangar's own models folder is scanned too, so models whose library
rows were lost (a damaged database kept aside) come back, downloads with the repository of their manifest.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from core.errors import HangarError
from core.models.detect import ScanCache, recognise, recognise_gguf_file
from core.models.types import Candidate, ImportProblem, LibraryEntry, Origin

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


@dataclass(frozen=True)
class ScanDiff:
    """What a scan found that the library should change: entries to add (with their origin), descriptions to
    refresh (by entry id), entries to remove (by id), and the files that could not be read."""

    add: tuple[tuple[Candidate, Origin], ...] = ()
    update: tuple[tuple[str, Candidate], ...] = ()
    remove: tuple[str, ...] = ()
    problems: tuple[ImportProblem, ...] = ()
    found: int = 0
    headers_read: int = 0


def plan_rescan(
    entries: list[LibraryEntry], stat_keys: dict[str, str | None], hidden: set[str], roots: ScanRoots
) -> ScanDiff:
    """How the library's ``found`` entries differ from what the scanners see now."""
    cache = ScanCache(
        {str(e.root): (stat_keys.get(e.id), _as_candidate(e)) for e in entries if e.origin == Origin.FOUND}
    )
    candidates, problems = scan_all(roots, cache)
    by_root = {str(e.root): e for e in entries}
    seen: set[str] = set()
    add: list[tuple[Candidate, Origin]] = []
    update: list[tuple[str, Candidate]] = []
    for candidate in candidates:
        root = str(candidate.root.absolute())
        if root in hidden or root in seen:
            continue
        seen.add(root)
        existing = by_root.get(root)
        if existing is None:
            add.append((candidate, Origin.FOUND))
        elif existing.origin == Origin.FOUND and cache.lookup(candidate.root, candidate.files) is None:
            # Changed on disk since the last scan: describe it afresh, keeping its id and name.
            update.append((existing.id, candidate))
    gone = tuple(e.id for e in entries if e.origin == Origin.FOUND and str(e.root) not in seen)
    return ScanDiff(tuple(add), tuple(update), gone, tuple(problems), len(seen), cache.headers_read)


def own_folder_diff(
    models_dir: Path, entries: list[LibraryEntry], stat_keys: dict[str, str | None], hidden: set[str]
) -> ScanDiff:
    """Models in Hangar's own models folder that the library lacks: downloads (named by the manifest the
    downloader left next to them) come back as ``downloaded`` with their repository, other models as
    ``imported`` copies."""
    if not models_dir.is_dir():
        return ScanDiff()
    known = {str(e.root) for e in entries} | {str(f) for e in entries for f in e.files}
    cache = ScanCache({str(e.root): (stat_keys.get(e.id), _as_candidate(e)) for e in entries})
    try:
        found = recognise([models_dir], cache=cache)
    except (OSError, HangarError) as exc:
        logger.warning("scanning the models folder %s failed: %s", models_dir, exc)
        return ScanDiff()
    add: list[tuple[Candidate, Origin]] = []
    for candidate in found.candidates:
        root = str(candidate.root.absolute())
        own = [f for f in candidate.files if f != candidate.projector]  # a projector may serve several models
        if root in known or root in hidden or any(str(f.absolute()) in known for f in own):
            continue
        repo_id = _manifest_repo(models_dir, candidate)
        if repo_id is not None:
            add.append((replace(candidate, repo_id=repo_id, source=None), Origin.DOWNLOADED))
        else:
            add.append((replace(candidate, source=None), Origin.IMPORTED))
    problems = tuple(p for p in found.problems if p.code != "empty")
    return ScanDiff(add=tuple(add), problems=problems, found=len(add), headers_read=cache.headers_read)


#: The file the downloader writes next to what it installs (``core.downloads.fs``): repository, revision, files.
MANIFEST_NAME = ".hangar-download.json"


def _manifest_repo(models_dir: Path, candidate: Candidate) -> str | None:
    """The repository a downloaded model came from, read from the manifest in its folder (or a parent folder
    inside the models folder) that lists one of its files."""
    folder = candidate.root if candidate.root.is_dir() else candidate.root.parent
    names = {f.absolute() for f in candidate.files}
    while folder.is_relative_to(models_dir) and folder != models_dir:
        manifest = folder / MANIFEST_NAME
        if manifest.is_file():
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
                for download in data.get("downloads", []):
                    listed = {(folder / str(f["path"])).absolute() for f in download.get("files", [])}
                    if listed & names or candidate.root.absolute() in listed or candidate.root == folder:
                        repo = download.get("repo_id")
                        return str(repo) if isinstance(repo, str) and repo else None
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                logger.warning("the download manifest %s could not be read", manifest)
        folder = folder.parent
    return None


def _as_candidate(entry: LibraryEntry) -> Candidate:
    from core.library.rows import candidate_of

    return candidate_of(entry)
