"""GGUF header reader for local files and remote files (HTTP Range), including split sets.

Public API::

    read_gguf(path) -> GGUFInfo                      # a local file; a -00001-of-0000N shard reads the whole
    set read_gguf_url(url, headers=None) -> GGUFInfo     # any HTTP server that honours Range
    read_gguf_hub(repo_id, filename, revision=None, token=None) -> GGUFInfo   # the Hub, honouring HF_ENDPOINT

Only header bytes are read; tensor data never is.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import ModelFileError
from core.gguf.info import GGUFInfo, TensorInfo, build_info
from core.gguf.parse import ArraySummary, RawHeader, parse_header
from core.gguf.source import ByteSource, Cursor, FileSource, HttpSource

__all__ = [
    "ArraySummary",
    "GGUFInfo",
    "TensorInfo",
    "hub_file_url",
    "read_gguf",
    "read_gguf_hub",
    "read_gguf_url",
    "split_names",
]

logger = logging.getLogger(__name__)

_SPLIT = re.compile(r"^(?P<stem>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
_MAX_SPLITS = 1024


def split_names(filename: str) -> list[str]:
    """All file names of the split set ``filename`` belongs to (``[filename]`` for a single file)."""
    directory, _, base = filename.rpartition("/")
    match = _SPLIT.match(base)
    if not match:
        return [filename]
    count = int(match.group("count"))
    if not 1 <= count <= _MAX_SPLITS or not 1 <= int(match.group("no")) <= count:
        raise ModelFileError(f"{base}: impossible split numbering.")
    prefix = f"{directory}/" if directory else ""
    return [f"{prefix}{match.group('stem')}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def _read_one(source: ByteSource) -> tuple[RawHeader, int, int | None]:
    cursor = Cursor(source)
    header = parse_header(cursor)
    alignment = header.metadata.get("general.alignment", 32)
    if (
        not isinstance(alignment, int)
        or isinstance(alignment, bool)
        or alignment <= 0
        or alignment & (alignment - 1)
        or alignment > 2**20
    ):
        raise ModelFileError(f"{source.name}: general.alignment {alignment!r} is not a power of two.")
    data_start = -(-header.header_bytes // alignment) * alignment
    size = source.size()
    _check_tensor_data(source.name, header, data_start, size, alignment)
    return header, data_start, size


def _check_tensor_data(name: str, header: RawHeader, data_start: int, size: int | None, alignment: int) -> None:
    from core.gguf.types import ggml_type_size

    for raw in header.tensors:
        n_bytes = ggml_type_size(raw.ggml_type, raw.shape, name=raw.name, file=name)
        if raw.offset % alignment:
            raise ModelFileError(f"{name}: tensor {raw.name!r} is not aligned; the file is damaged.")
        if size is not None and data_start + raw.offset + n_bytes > size:
            present = max(0, size - data_start)
            raise ModelFileError(
                f"{name} is truncated: tensor {raw.name!r} ends at byte "
                f"{data_start + raw.offset + n_bytes:,} "
                f"but the file has {size:,} bytes ({present:,} bytes of tensor data present).",
                hint="Resume the download or delete the file.",
            )


def _read_set(name: str, names: list[str], open_source: Callable[[str], ByteSource]) -> GGUFInfo:
    headers = []
    for part in names:
        source = open_source(part)
        try:
            headers.append(_read_one(source))
        finally:
            source.close()
    if len(names) > 1:
        declared = headers[0][0].metadata.get("split.count")
        if isinstance(declared, int) and declared != len(names):
            raise ModelFileError(f"{name}: the file says the set has {declared} parts, its name says {len(names)}.")
    return build_info(name, headers)


def read_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Read the header of a local GGUF file (or of every file of its split set)."""
    path = Path(path)
    names = split_names(path.name)
    if len(names) > 1:
        missing = [n for n in names if not (path.parent / n).exists()]
        if missing:
            raise ModelFileError(
                f"{path.name} is part {names.index(path.name) + 1} of a set of {len(names)} "
                f"files; {len(missing)} are missing (first: {missing[0]}).",
                hint="Download every part of the set into the same folder.",
            )
    return _read_set(
        path.name if len(names) == 1 else names[0],
        names,
        lambda n: FileSource(path.parent / n if len(names) > 1 else path),
    )


def read_gguf_url(url: str, *, headers: dict[str, str] | None = None, session: Any = None) -> GGUFInfo:
    """Read a remote GGUF header with Range requests; split sets are followed by URL."""
    base, _, filename = url.rpartition("/")
    names = split_names(filename)
    return _read_set(filename, names, lambda n: HttpSource(f"{base}/{n}", headers=headers, session=session, name=n))


def hub_file_url(repo_id: str, filename: str, revision: str | None = None) -> str:
    """The resolve URL of a Hub file, honouring ``HF_ENDPOINT`` as it is now (not at import time)."""
    from huggingface_hub import hf_hub_url

    endpoint = os.environ.get("HF_ENDPOINT")
    return hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint.rstrip("/") if endpoint else None)


def read_gguf_hub(
    repo_id: str, filename: str, *, revision: str | None = None, token: str | None = None, session: Any = None
) -> GGUFInfo:
    """Read a GGUF header from the Hub without downloading the file (a few Range requests)."""
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers(token=token) if token else build_hf_headers(token=False)
    names = split_names(filename)
    return _read_set(
        filename,
        names,
        lambda n: HttpSource(
            hub_file_url(repo_id, n, revision), headers=headers, session=session, name=n.rpartition("/")[2]
        ),
    )
