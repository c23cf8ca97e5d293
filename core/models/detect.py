"""Recognise models among files and folders, and validate them before anything enters the library.

Given paths (dropped on the window, named on the command line, or found by a scanner), this works out what they
hold (single GGUF files, split sets, MLX folders, LoRA adapters, folders holding several of these) and checks
each one, reading only headers: a truncated file, a file that is not GGUF, a split set with a missing part, an
MLX folder without weights each get a specific sentence. GGUF headers are read by ``core.gguf``.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import HangarError, ModelFileError
from core.gguf.source import require_regular_file
from core.models.embedding import is_embedding_header
from core.models.folders import folder_files as _folder_files
from core.models.folders import is_hidden, read_adapter_folder, read_mlx_folder
from core.models.projector import find_projector, is_projector_name, with_projector
from core.models.types import Candidate, ImportProblem, ModelFormat, ModelMetadata, Recognition
from core.text import printable

logger = logging.getLogger(__name__)

_SPLIT = re.compile(r"^(?P<stem>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_MAX_DEPTH = 6


@dataclass
class ScanCache:
    """Models already described, by absolute root path: (stat key, candidate). A rescan passes the library's
    entries so an unchanged file's header is not read again; ``headers_read`` counts the reads it did do."""

    known: dict[str, tuple[str | None, Candidate]] = field(default_factory=dict)
    headers_read: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_read(self) -> None:
        with self._lock:
            self.headers_read += 1

    def lookup(self, root: Path, files: Sequence[Path]) -> Candidate | None:
        hit = self.known.get(str(root.absolute()))
        if hit is None or hit[0] is None:
            return None
        try:
            return hit[1] if stat_key(files) == hit[0] else None
        except OSError:
            return None


@dataclass(frozen=True)
class _Ctx:
    source: str | None = None
    cache: ScanCache | None = None


@dataclass(frozen=True)
class _Split:
    stem: str
    number: int
    count: int


def _split_of(name: str) -> _Split | None:
    match = _SPLIT.match(name)
    if not match:
        return None
    return _Split(match.group("stem"), int(match.group("no")), int(match.group("count")))


# -- recognising ---------------------------------------------------------------------------------------------


def recognise(paths: Iterable[Path], *, source: str | None = None, cache: ScanCache | None = None) -> Recognition:
    """Find and validate every model in ``paths``. Never raises for a bad model: it becomes a problem."""
    ctx = _Ctx(source, cache)
    candidates: list[Candidate] = []
    problems: list[ImportProblem] = []
    seen_roots: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        found, trouble = _recognise_one(path, depth=0, ctx=ctx)
        for candidate in found:
            key = candidate.root.absolute()
            if key not in seen_roots:
                seen_roots.add(key)
                candidates.append(candidate)
        problems.extend(trouble)
    return Recognition(tuple(candidates), tuple(problems))


def _recognise_one(path: Path, *, depth: int, ctx: _Ctx) -> tuple[list[Candidate], list[ImportProblem]]:
    if not path.exists():
        return [], [ImportProblem(path, f"{path} does not exist.", "not_found")]
    if not path.is_file() and not path.is_dir():  # a FIFO, a device, a socket: never opened
        try:
            require_regular_file(path)
        except HangarError as exc:
            return [], [ImportProblem(path, str(exc), exc.code)]
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return _from_gguf_files(path.parent, [path], ctx=ctx)
        return [], [ImportProblem(path, _not_a_model_message(path), "unsupported")]
    return _from_folder(path, depth=depth, ctx=ctx)


def _from_folder(folder: Path, *, depth: int, ctx: _Ctx) -> tuple[list[Candidate], list[ImportProblem]]:
    if (folder / "adapter_config.json").is_file():
        return _guarded(folder, None, lambda: read_adapter_folder(folder, source=ctx.source), ctx)
    if (folder / "config.json").is_file() and not _has_gguf(folder):
        return _guarded(folder, None, lambda: read_mlx_folder(folder, source=ctx.source), ctx)
    candidates: list[Candidate] = []
    problems: list[ImportProblem] = []
    try:
        children = sorted(p for p in folder.iterdir() if not is_hidden(p))
    except OSError as exc:
        return [], [ImportProblem(folder, f"{folder} could not be read ({exc.strerror}).", "unreadable")]
    ggufs = [p for p in children if p.suffix.lower() == ".gguf" and p.is_file()]
    if ggufs:
        found, trouble = _from_gguf_files(folder, ggufs, ctx=ctx)
        candidates += found
        problems += trouble
    if depth < _MAX_DEPTH:
        for child in children:
            if child.is_dir():
                found, trouble = _from_folder(child, depth=depth + 1, ctx=ctx)
                candidates += found
                problems += [t for t in trouble if t.code != "empty"]
    if depth == 0 and not candidates and not problems:
        problems.append(
            ImportProblem(folder, f"No models were found in {folder.name} (no .gguf files or MLX folders).", "empty")
        )
    return candidates, problems


def _has_gguf(folder: Path) -> bool:
    return any(p.suffix.lower() == ".gguf" for p in folder.iterdir())


def _guarded(
    root: Path, files: Sequence[Path] | None, read: Any, ctx: _Ctx
) -> tuple[list[Candidate], list[ImportProblem]]:
    """Run one reader, turning its failure into a problem; skip it when the scan cache has the model."""
    path = root
    try:
        if ctx.cache is not None:
            listed = files if files is not None else _folder_files(root)
            cached = ctx.cache.lookup(root, listed)
            if cached is not None:
                return [cached], []
            ctx.cache.count_read()
        return [read()], []
    except HangarError as exc:
        return [], [ImportProblem(path, str(exc), exc.code)]
    except OSError as exc:
        return [], [ImportProblem(path, f"{path.name} could not be read ({exc.strerror or exc}).", "unreadable")]


def _from_gguf_files(folder: Path, files: Sequence[Path], *, ctx: _Ctx) -> tuple[list[Candidate], list[ImportProblem]]:
    """Single files become one model each; the parts of a split set (any one part given) become one model."""
    reads: list[Callable[[], tuple[list[Candidate], list[ImportProblem]]]] = []
    done_sets: set[tuple[str, int]] = set()
    projector = find_projector(folder) if any(not is_projector_name(p.name) for p in files) else None
    for path in files:
        if is_projector_name(path.name) and (projector is not None or len(files) > 1):
            continue  # a vision projector shipped next to its model, not a model of its own
        split = _split_of(path.name)
        if split is None or split.count == 1:
            reads.append(functools.partial(_read_single, path, ctx, projector))
        else:
            key = (split.stem, split.count)
            if key in done_sets:
                continue
            done_sets.add(key)
            parts = [folder / n for n in _split_names(split)]
            listed = parts if all(p.exists() for p in parts) else [path]
            reads.append(functools.partial(_read_set, folder, split, parts[0], listed, ctx, projector))
    candidates: list[Candidate] = []
    problems: list[ImportProblem] = []
    for found, trouble in (read() for read in reads):
        candidates += found
        problems += trouble
    return candidates, problems


def _read_single(path: Path, ctx: _Ctx, projector: Path | None) -> tuple[list[Candidate], list[ImportProblem]]:
    files = [path, projector] if projector else [path]
    return _guarded(path, files, lambda: with_projector(read_gguf_model([path], source=ctx.source), projector), ctx)


def _read_set(
    folder: Path, split: _Split, first: Path, listed: list[Path], ctx: _Ctx, projector: Path | None
) -> tuple[list[Candidate], list[ImportProblem]]:
    files = [*listed, projector] if projector else listed
    read = lambda: with_projector(_read_split_set(folder, split, source=ctx.source), projector)  # noqa: E731
    return _guarded(first, files, read, ctx)


def _split_names(split: _Split) -> list[str]:
    return [f"{split.stem}-{i:05d}-of-{split.count:05d}.gguf" for i in range(1, split.count + 1)]


def _read_split_set(folder: Path, split: _Split, *, source: str | None) -> Candidate:
    names = _split_names(split)
    by_lower = {p.name.lower(): p for p in folder.iterdir()}
    parts = [by_lower.get(n.lower()) for n in names]
    missing = [i + 1 for i, p in enumerate(parts) if p is None]
    if missing:
        listed = ", ".join(str(i) for i in missing[:5]) + ("…" if len(missing) > 5 else "")
        raise ModelFileError(
            f"The split model {split.stem} is incomplete: part{'s' if len(missing) > 1 else ''} {listed} "
            f"of {split.count} {'are' if len(missing) > 1 else 'is'} missing (expected {names[missing[0] - 1]}).",
            hint="Put every part of the set in the same folder, then import again.",
        )
    return read_gguf_model([p for p in parts if p is not None], source=source, name=split.stem)


def recognise_gguf_file(
    path: Path, *, name: str, source: str | None = None, cache: ScanCache | None = None
) -> tuple[list[Candidate], list[ImportProblem]]:
    """One GGUF file whatever its file name (Ollama's blobs have none), as ``recognise`` would report it."""
    return _guarded(path, [path], lambda: read_gguf_model([path], source=source, name=name), _Ctx(source, cache))


# -- GGUF ----------------------------------------------------------------------------------------------------


def sniff_not_gguf(path: Path) -> str | None:
    """A friendly sentence when ``path`` is clearly not GGUF (say, what it is instead); None if it starts right."""
    size = path.stat().st_size
    if size == 0:
        return f"{path.name} is empty (0 bytes); the download or copy did not finish."
    with path.open("rb") as handle:
        head = handle.read(64)
    if head[:4] == b"GGUF":
        return None
    what = "it does not start with 'GGUF'"
    if head.startswith(b"version https://git-lfs"):
        what = "it is a Git LFS pointer (a small text file standing in for the model), not the model itself"
    elif head[:4] == b"PK\x03\x04":
        what = "it is a ZIP archive (perhaps a PyTorch checkpoint)"
    elif head.lstrip()[:9].lower() in (b"<!doctype", b"<html>") or head.lstrip()[:5].lower() == b"<html":
        what = "it is a web page, probably an error page saved instead of the model"
    elif len(head) >= 10 and head[8:10] == b'{"':
        what = "it is a safetensors file; Hangar loads safetensors only as an MLX folder"
    elif head[:2] == b"\x80\x02" or head[:2] == b"\x80\x04":
        what = "it is a Python pickle (a PyTorch .bin checkpoint)"
    return f"{path.name} is not a GGUF model, although it is named .gguf: {what}."


def read_gguf_model(parts: Sequence[Path], *, source: str | None = None, name: str | None = None) -> Candidate:
    """Validate a GGUF file or a complete split set and describe it. Raises ``ModelFileError``."""
    for part in parts:
        problem = sniff_not_gguf(part)
        if problem:
            raise ModelFileError(problem)
    info = _read_gguf_info(parts[0])
    if info.architecture == "clip":
        raise ModelFileError(
            f"{parts[0].name} is a vision projector (mmproj), not a model.",
            hint="Keep it in the same folder as its model and import that folder; the two load together.",
        )
    meta = info.metadata
    is_adapter = str(meta.get("general.type", "")).lower() == "adapter"
    metadata = ModelMetadata(
        architecture=info.architecture or None,
        parameter_count=info.parameter_count or None,
        quant=info.quant_type or None,
        context_length=(info.context_length or None) if not is_adapter else None,
        has_chat_template=bool(info.chat_template),
        license=_text(meta.get("general.license")),
        model_name=info.model_name,
        base_model=_text(meta.get("general.base_model.0.name")) or _text(meta.get("general.base_model.0.repo_url")),
        embedding=not is_adapter and is_embedding_header(info.architecture, meta),
    )
    stem = name or parts[0].name[: -len(".gguf")]
    return Candidate(
        name=stem,
        format=ModelFormat.LORA if is_adapter else (ModelFormat.GGUF_SPLIT if len(parts) > 1 else ModelFormat.GGUF),
        root=parts[0],
        files=tuple(parts),
        size_bytes=sum(p.stat().st_size for p in parts),
        metadata=metadata,
        source=source,
    )


def _read_gguf_info(path: Path) -> Any:
    """The one place the GGUF header reader is called (``core.gguf``, the fit feature's reader)."""
    from core.gguf import read_gguf

    try:
        return read_gguf(path)
    except ModelFileError as exc:
        message = str(exc)
        if "truncated" in message and not message.startswith(f"{path.name} is truncated"):
            # The reader names the field it was reading; a person needs to know the file is incomplete.
            raise ModelFileError(
                f"{path.name} is truncated: it ends inside its header, after {path.stat().st_size:,} bytes.",
                hint="The download or copy did not finish; download it again.",
            ) from exc
        raise


def _text(value: Any) -> str | None:
    return printable(value) or None if isinstance(value, str) and value else None


def _not_a_model_message(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return (
            f"{path.name} is one weights file of a model; drop the whole folder (with config.json and the "
            "tokenizer) instead."
        )
    if suffix in (".bin", ".pt", ".pth", ".ckpt"):
        return f"{path.name} is a PyTorch checkpoint; Hangar runs GGUF files and MLX folders."
    return f"{path.name} is not a model Hangar can use (it takes .gguf files and MLX model folders)."


def stat_key(files: Sequence[Path]) -> str:
    """Changes when any file of a model changes (size or modification time): rescans skip unchanged models."""
    parts = []
    for f in files:
        st = os.stat(f)
        parts.append(f"{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)
