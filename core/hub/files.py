"""A Hub repository's file list, grouped the way a person chooses what to download.

GGUF repos: one row per quantisation (a split set ``-00001-of-00003.gguf`` is one row), ``mmproj`` projectors
and other companions marked. MLX and transformers safetensors repos: one row with the files the model needs
(config, tokenizer, every weight shard). Every other file gets its own row, so the list is complete. Names that
would escape the models folder are kept in the list but refused.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from core.errors import UnsafePathError
from core.paths import safe_join

SPLIT_RE = re.compile(r"^(?P<base>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
QUANT_RE = re.compile(
    r"(?:^|[-_.])(?P<quant>(?:UD-)?(?:I?Q\d(?:_[A-Z0-9]+)*|BF16|F16|F32|FP16|FP32|MXFP4(?:_MOE)?|TQ\d_\d))$",
    re.IGNORECASE,
)
#: What an MLX (or transformers safetensors) model needs to load; everything else is optional.
MLX_NEEDED = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.json",
    "chat_template.jinja",
    "*.tiktoken",
    "model*.safetensors",
    "model.safetensors.index.json",
    "preprocessor_config.json",
)
_CHECK_ROOT = Path("/hangar-name-check")


class RepoFormat(enum.StrEnum):
    GGUF = "gguf"
    MLX = "mlx"
    OTHER = "other"


class GroupKind(enum.StrEnum):
    QUANT = "quant"  # one GGUF model file or split set
    MLX = "mlx"  # the files of an MLX model
    SAFETENSORS = "safetensors"  # the files of a transformers safetensors model (full weights, for fine-tuning)
    COMPANION = "companion"  # mmproj and other files a model uses alongside
    OTHER = "other"  # README, images, anything else
    REFUSED = "refused"  # a name that would escape the models folder


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int | None
    #: SHA-256 of the content for LFS files (what the Hub lists as ``lfs.sha256``).
    sha256: str | None = None
    #: Git blob id, the checksum of small (non-LFS) files.
    blob_id: str | None = None

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class FileGroup:
    key: str
    label: str
    kind: GroupKind
    files: tuple[RemoteFile, ...]
    quant: str | None = None
    note: str = ""

    @property
    def size(self) -> int:
        return sum(f.size or 0 for f in self.files)

    @property
    def is_split(self) -> bool:
        return len(self.files) > 1 and self.kind == GroupKind.QUANT

    @property
    def downloadable(self) -> bool:
        return self.kind != GroupKind.REFUSED


def is_safe_name(path: str) -> bool:
    try:
        safe_join(_CHECK_ROOT, path)
    except UnsafePathError:
        return False
    return True


def quant_of(filename: str) -> str | None:
    """``Llama-3-8B-Q4_K_M.gguf`` → ``Q4_K_M``; ``model-F16-00001-of-00002.gguf`` → ``F16``."""
    name = PurePosixPath(filename).name
    split = SPLIT_RE.match(name)
    stem = split.group("base") if split else re.sub(r"\.gguf$", "", name, flags=re.IGNORECASE)
    match = QUANT_RE.search(stem)
    return match.group("quant").upper() if match else None


def detect_format(paths: list[str], tags: tuple[str, ...] = ()) -> RepoFormat:
    if any(p.lower().endswith(".gguf") for p in paths):
        return RepoFormat.GGUF
    if "mlx" in tags or any(p.endswith(".safetensors") for p in paths):
        return RepoFormat.MLX
    return RepoFormat.OTHER


def _matches_needed(path: str) -> bool:
    return "/" not in path and any(fnmatch.fnmatch(path, pattern) for pattern in MLX_NEEDED)


def group_files(files: list[RemoteFile], tags: tuple[str, ...] = ()) -> list[FileGroup]:
    """Group a repo's complete file list; model rows first (smallest quant first), then companions, then others."""
    groups: list[FileGroup] = []
    others: list[RemoteFile] = []
    splits: dict[str, list[RemoteFile]] = {}
    repo_format = detect_format([f.path for f in files], tags)
    mlx_files: list[RemoteFile] = []
    for remote in files:
        if not is_safe_name(remote.path):
            groups.append(
                FileGroup(remote.path, remote.path, GroupKind.REFUSED, (remote,), note="unsafe file name, refused")
            )
            continue
        lower = remote.path.lower()
        if lower.endswith(".gguf"):
            if "mmproj" in remote.name.lower():
                groups.append(
                    FileGroup(
                        remote.path,
                        remote.name,
                        GroupKind.COMPANION,
                        (remote,),
                        quant=quant_of(remote.path),
                        note="vision projector (mmproj)",
                    )
                )
                continue
            split = SPLIT_RE.match(remote.path)
            if split:
                splits.setdefault(split.group("base"), []).append(remote)
                continue
            groups.append(FileGroup(remote.path, remote.name, GroupKind.QUANT, (remote,), quant=quant_of(remote.path)))
        elif repo_format == RepoFormat.MLX and _matches_needed(remote.path):
            mlx_files.append(remote)
        else:
            others.append(remote)
    for base, parts in splits.items():
        parts.sort(key=lambda f: f.path)
        count = int(SPLIT_RE.match(parts[0].path).group("count"))  # type: ignore[union-attr]
        note = f"{count}-part split" + ("" if len(parts) == count else f", only {len(parts)} present")
        groups.append(
            FileGroup(
                base,
                PurePosixPath(base).name + ".gguf",
                GroupKind.QUANT,
                tuple(parts),
                quant=quant_of(parts[0].path),
                note=note,
            )
        )
    if mlx_files:
        groups.append(weights_group(mlx_files, tags))
    for remote in others:
        groups.append(FileGroup(remote.path, remote.path, GroupKind.OTHER, (remote,)))
    order = {
        GroupKind.QUANT: 0,
        GroupKind.MLX: 0,
        GroupKind.SAFETENSORS: 0,
        GroupKind.COMPANION: 1,
        GroupKind.OTHER: 2,
        GroupKind.REFUSED: 3,
    }
    groups.sort(key=lambda g: (order[g.kind], g.size if g.kind == GroupKind.QUANT else 0, g.key))
    return groups


def is_mlx_repo(tags: tuple[str, ...]) -> bool:
    """Tagged for MLX (an mlx-community conversion, often quantized): run with MLX, not fine-tuned with PEFT."""
    return "mlx" in tags or "library:mlx" in tags


def weights_group(files: list[RemoteFile], tags: tuple[str, ...]) -> FileGroup:
    """The one row of a folder model: config, tokenizer and every weight shard, downloaded together. An MLX repo's
    is an "MLX model"; any other safetensors repo's is a "Safetensors model", the full weights a fine-tune starts
    from (My Models lists both as folders; the Fine-tune page picks them)."""
    weights = [f for f in files if f.path.endswith(".safetensors")]
    ordered = tuple(sorted(files, key=lambda f: f.path))
    note = f"config, tokenizer and {len(weights)} weight file(s)"
    if is_mlx_repo(tags):
        return FileGroup("mlx", "MLX model", GroupKind.MLX, ordered, note=note)
    return FileGroup(
        "safetensors", "Safetensors model", GroupKind.SAFETENSORS, ordered, note=f"{note} · for fine-tuning"
    )


def find_group(groups: list[FileGroup], *, file: str | None = None, quant: str | None = None) -> FileGroup | None:
    """The row holding ``file``, or the model row whose quant is ``quant`` (case-insensitive)."""
    for group in groups:
        if file is not None and (group.key == file or any(f.path == file for f in group.files)):
            return group
        if quant is not None and group.kind == GroupKind.QUANT and (group.quant or "").upper() == quant.upper():
            return group
    return None


#: Which projector goes with a quant when a repository offers several: the unquantized ones first.
_PROJECTOR_PREFERENCE = ("F16", "BF16", "F32", "Q8_0")


def projector_for(
    groups: list[FileGroup], group: FileGroup, accept: Callable[[RemoteFile], bool] | None = None
) -> RemoteFile | None:
    """The vision projector (``mmproj*.gguf``) a model quant needs: one in the same folder of the repository, so
    that it lands next to the model (where the library pairs them), and one ``accept`` takes (``core.hub.vision``
    checks its header). None for other rows or text-only repos."""
    if group.kind != GroupKind.QUANT or not group.files:
        return None
    folder = PurePosixPath(group.files[0].path).parent
    projectors = [
        f
        for g in groups
        if g.kind == GroupKind.COMPANION
        for f in g.files
        if "mmproj" in f.name.lower() and PurePosixPath(f.path).parent == folder
    ]

    def rank(remote: RemoteFile) -> tuple[int, str]:
        quant = (quant_of(remote.path) or "").upper()
        order = _PROJECTOR_PREFERENCE.index(quant) if quant in _PROJECTOR_PREFERENCE else len(_PROJECTOR_PREFERENCE)
        return order, remote.path

    return next((p for p in sorted(projectors, key=rank) if accept is None or accept(p)), None)


def with_projector(
    groups: list[FileGroup], group: FileGroup, accept: Callable[[RemoteFile], bool] | None = None
) -> FileGroup:
    """``group`` with its vision projector as one more file to download (unchanged when it needs none)."""
    projector = projector_for(groups, group, accept)
    if projector is None or projector in group.files:
        return group
    extra = f"with its vision projector {projector.name}"
    note = f"{group.note}; {extra}" if group.note else extra
    return replace(group, files=(*group.files, projector), note=note)
