"""Safetensors and MLX model folders: ``config.json`` plus every ``.safetensors`` header, local or remote (HTTP
Range, header bytes only), into one ``SafetensorsModel`` the estimators use.

A safetensors file is an 8-byte little-endian header length, a JSON header (name -> dtype, shape, data_offsets),
then the data. Hostile headers (absurd lengths, offsets past the end, bad JSON) raise ``ModelFileError``.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ModelFileError, NotFoundError
from core.gguf.source import ByteSource, FileSource, HttpSource

MAX_HEADER = 100 * 1024 * 1024  # huggingface_hub allows 25 MB; real ones are a few MB at most
MAX_CONFIG = 4 * 1024 * 1024
_FIRST_READ = 100_000
DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "U32": 4,
    "I16": 2,
    "U16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "U64": 8,
    "F4": 1,
}


@dataclass(frozen=True)
class SafetensorsTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    n_bytes: int
    file: str


@dataclass(frozen=True)
class SafetensorsModel:
    name: str
    config: dict[str, Any] = field(compare=False, repr=False)
    tensors: tuple[SafetensorsTensor, ...]
    files: tuple[tuple[str, int], ...]  # (file name, size in bytes)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    @property
    def bytes_by_dtype(self) -> dict[str, int]:
        counter: Counter[str] = Counter()
        for t in self.tensors:
            counter[t.dtype] += t.n_bytes
        return dict(counter)

    @property
    def quantization(self) -> dict[str, Any] | None:
        """MLX ``quantization`` (bits, group_size) or a transformers ``quantization_config``."""
        value = self.config.get("quantization") or self.config.get("quantization_config")
        return value if isinstance(value, dict) else None


def parse_safetensors_header(source: ByteSource) -> list[SafetensorsTensor]:
    # One request usually holds the whole header (as huggingface_hub does: 100 kB first, the rest if needed).
    head = source.read_at(0, _FIRST_READ)
    if len(head) < 8:
        raise ModelFileError(f"{source.name} is too short to be a safetensors file.")
    (length,) = struct.unpack("<Q", head[:8])
    size = source.size()
    if length > MAX_HEADER or (size is not None and 8 + length > size):
        raise ModelFileError(f"{source.name}: the header claims {length} bytes; the file is damaged or truncated.")
    raw = head[8 : 8 + length]
    if len(raw) < length:
        raw += source.read_at(8 + len(raw), length - len(raw))
    if len(raw) < length:
        raise ModelFileError(f"{source.name} is truncated inside its header.")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{source.name}: the header is not valid JSON ({exc}).") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{source.name}: the header is not a JSON object.")
    data_size = None if size is None else size - 8 - length
    tensors = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = str(entry["dtype"])
            shape = tuple(int(d) for d in entry["shape"])
            start, end = (int(x) for x in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(f"{source.name}: tensor {name!r} has a malformed entry.") from None
        if dtype not in DTYPE_BYTES or any(d < 0 for d in shape) or not 0 <= start <= end:
            raise ModelFileError(f"{source.name}: tensor {name!r} has an invalid dtype, shape or offsets.")
        if data_size is not None and end > data_size:
            raise ModelFileError(
                f"{source.name} is truncated: tensor {name!r} lies past the end of the file.",
                hint="Download the file again.",
            )
        if end - start != math.prod(shape) * DTYPE_BYTES[dtype] and dtype != "F4":
            raise ModelFileError(f"{source.name}: tensor {name!r} size does not match its shape.")
        tensors.append(SafetensorsTensor(name, dtype, shape, end - start, source.name))
    return tensors


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{what} is not valid JSON ({exc}).") from None
    if not isinstance(value, dict):
        raise ModelFileError(f"{what} is not a JSON object.")
    return value


def read_safetensors_dir(folder: str | os.PathLike[str]) -> SafetensorsModel:
    """A local model folder (MLX or transformers layout)."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise NotFoundError(f"{folder} has no config.json; it is not a safetensors model folder.")
    if config_path.stat().st_size > MAX_CONFIG:
        raise ModelFileError(f"{config_path} is implausibly large.")
    config = _json(config_path.read_bytes(), str(config_path))
    files = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    if not files:
        raise NotFoundError(f"{folder} has no .safetensors files.")
    tensors: list[SafetensorsTensor] = []
    sizes = []
    for path in files:
        source = FileSource(path)
        try:
            tensors += parse_safetensors_header(source)
        finally:
            source.close()
        sizes.append((path.name, path.stat().st_size))
    return SafetensorsModel(folder.name, config, tuple(tensors), tuple(sizes))


def read_safetensors_hub(
    repo_id: str, *, revision: str | None = None, token: str | None = None, session: Any = None
) -> SafetensorsModel:
    """A Hub repository: config.json, the shard index if any, then each shard's header through Range."""
    from huggingface_hub.utils import build_hf_headers

    from core.gguf import hub_file_url

    headers = build_hf_headers(token=token) if token else build_hf_headers(token=False)

    def small_file(name: str) -> bytes | None:
        source = HttpSource(hub_file_url(repo_id, name, revision), headers=headers, session=session, name=name)
        try:
            data = source.read_at(0, MAX_CONFIG)
        except NotFoundError:
            return None
        return data

    config_bytes = small_file("config.json")
    if config_bytes is None:
        raise NotFoundError(f"{repo_id} has no config.json; it is not a safetensors model repository.")
    config = _json(config_bytes, f"{repo_id}/config.json")
    index = small_file("model.safetensors.index.json")
    if index is not None:
        weight_map = _json(index, f"{repo_id}/model.safetensors.index.json").get("weight_map", {})
        names = sorted({str(v) for v in weight_map.values()}) if isinstance(weight_map, dict) else []
    else:
        names = ["model.safetensors"]
    tensors: list[SafetensorsTensor] = []
    sizes = []
    for name in names:
        source = HttpSource(hub_file_url(repo_id, name, revision), headers=headers, session=session, name=name)
        tensors += parse_safetensors_header(source)
        sizes.append((name, source.size() or 0))
    return SafetensorsModel(repo_id, config, tuple(tensors), tuple(sizes))
