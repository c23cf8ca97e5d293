"""Checks made before a workshop job starts, so bad input is refused in one clear line and nothing is written:
the source is a GGUF, the type exists, a quantized source needs the requantize choice, the disk and memory
suffice, the evaluation text is long enough to be worth loading a model for."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil

from core.errors import DiskFullError, InsufficientMemoryError, ModelFileError, UsageError
from core.gguf import read_gguf
from core.gguf.info import GGUFInfo
from core.workshop.types import FULL_PRECISION, QUANT_TYPES, QuantType, quant_type

MIB = 1024 * 1024
#: Kept free on the target disk after the output is written.
DISK_MARGIN = 64 * MIB


@dataclass(frozen=True)
class QuantizePlan:
    source: Path
    output: Path
    qtype: QuantType
    source_type: str
    requantize: bool
    imatrix: Path | None
    expected_bytes: int
    source_bytes: int


def read_source(path: Path) -> GGUFInfo:
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist or is not a file.")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise ModelFileError(
            f"{path.name} is not a GGUF file.",
            hint="Quantize works on GGUF files; convert a Hugging Face folder first with `hangar convert`.",
        )
    return read_gguf(path)


def expected_size(info: GGUFInfo, qtype: QuantType) -> int:
    """Roughly what llama.cpp will write: 2-D weights at the type's bits per weight, the rest as they are."""
    total = info.header_bytes
    for tensor in info.tensors:
        if len(tensor.shape) >= 2:
            total += int(tensor.n_elements * qtype.bits_per_weight / 8)
        else:
            total += tensor.n_bytes
    return total


def plan_quantize(
    source: str | Path,
    output: str | Path,
    type_name: str,
    *,
    requantize: bool = False,
    imatrix: str | Path | None = None,
    overwrite: bool = False,
) -> QuantizePlan:
    qtype = quant_type(type_name)
    if qtype is None:
        names = ", ".join(q.name for q in QUANT_TYPES)
        raise UsageError(f"Unknown quant type “{type_name}”; choose one of {names}.")
    src = Path(source).expanduser().absolute()
    out = Path(output).expanduser().absolute()
    info = read_source(src)
    source_type = info.quant_type.upper()
    if source_type not in FULL_PRECISION and not requantize:
        raise UsageError(
            f"{src.name} is already quantized ({source_type}); quantizing it again loses more quality than "
            "quantizing the F16 or BF16.",
            hint="Use the full-precision file, or pass --requantize (from Q8_0 the loss is small).",
        )
    matrix = Path(imatrix).expanduser().absolute() if imatrix else None
    if matrix is not None and not matrix.is_file():
        raise ModelFileError(f"The importance matrix {matrix} does not exist.")
    if qtype.needs_imatrix and matrix is None:
        raise UsageError(f"{qtype.name} needs an importance matrix.", hint="Pass --imatrix FILE or choose Q4_K_M.")
    if out == src:
        raise UsageError("The output would overwrite the source; choose another path.")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists.", hint="Choose another output path or remove it.")
    if not out.parent.is_dir():
        raise UsageError(f"The folder {out.parent} does not exist.")
    expected = expected_size(info, qtype)
    check_disk(out.parent, expected)
    check_memory(info)
    return QuantizePlan(src, out, qtype, source_type, requantize, matrix, expected, info.file_size or 0)


def check_disk(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed + DISK_MARGIN:
        raise DiskFullError(
            f"{folder} has {free / MIB:.0f} MiB free; the output needs about {(needed + DISK_MARGIN) / MIB:.0f} MiB.",
            hint="Free some space or write the output to another disk.",
        )


def check_memory(info: GGUFInfo) -> None:
    """llama.cpp quantizes tensor by tensor (the source is mapped): the largest tensor as F32, in and out."""
    largest = max((t.n_elements for t in info.tensors), default=0)
    needed = largest * 4 * 3 + 256 * MIB
    available = psutil.virtual_memory().available
    if available < needed:
        raise InsufficientMemoryError(
            f"Quantizing needs about {needed / MIB:.0f} MiB of free memory; {available / MIB:.0f} MiB is free.",
            hint="Close other programs and try again.",
        )
