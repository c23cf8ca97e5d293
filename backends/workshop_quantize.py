"""Quantize a GGUF with llama.cpp's own ``llama_model_quantize`` (what ``llama-quantize`` calls), optionally with an
importance matrix, reporting progress from llama.cpp's per-tensor log lines. Runs in the workshop child process;
the parent owns the output's temporary name and removes it on any failure."""

from __future__ import annotations

import ctypes
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import DiskFullError, HangarError, ModelFileError, UsageError
from core.workshop.types import QuantizeRequest

logger = logging.getLogger(__name__)

_TENSOR_LINE = re.compile(r"\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")


def load_imatrix(path: str | Path) -> dict[str, Any]:
    """Per-tensor importance (``in_sum2 / counts``, per expert) from a GGUF imatrix, as llama-quantize loads it."""
    import numpy as np
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{Path(path).name} is not a GGUF importance matrix ({exc}).") from exc
    tensors = {t.name: np.asarray(t.data, dtype=np.float32) for t in reader.tensors}
    values: dict[str, Any] = {}
    for name, sums in tensors.items():
        if not name.endswith(".in_sum2"):
            continue
        base = name.removesuffix(".in_sum2")
        counts = tensors.get(base + ".counts")
        if counts is None:
            raise ModelFileError(f"{Path(path).name} lacks the counts of {base}.")
        sums = sums.reshape(-1)
        counts = counts.reshape(-1)
        per_expert = sums.size // max(1, counts.size)
        out = np.ones(sums.size, dtype=np.float32)
        for j, count in enumerate(counts):
            if count > 0:
                out[j * per_expert : (j + 1) * per_expert] = sums[j * per_expert : (j + 1) * per_expert] / count
        values[base] = np.ascontiguousarray(out)
    if not values:
        raise ModelFileError(
            f"{Path(path).name} holds no importance data (GGUF imatrix files have *.in_sum2 and *.counts tensors)."
        )
    return values


#: llama.cpp keeps only a pointer to the log callback: it must live as long as the process, so it is made once and
#: forwards to whoever listens now.
_HOOK: list[Any] = []
_LISTENER: list[Callable[[str], None] | None] = [None]


def _listen(listener: Callable[[str], None] | None) -> None:
    import llama_cpp

    _LISTENER[0] = listener
    if not _HOOK:

        @llama_cpp.llama_log_callback
        def hook(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            current = _LISTENER[0]
            if current is not None:
                current(text.decode("utf-8", errors="replace"))

        _HOOK.append(hook)
    if listener is not None:  # (again: another part of this process may have set its own since)
        llama_cpp.llama_log_set(_HOOK[0], ctypes.c_void_p(0))


def quantize(request: QuantizeRequest, progress: Callable[[int, int, str], object]) -> dict[str, Any]:
    import llama_cpp

    lines: list[str] = []
    partial = [""]

    def on_text(text: str) -> None:
        partial[0] += text
        while "\n" in partial[0]:
            line, partial[0] = partial[0].split("\n", 1)
            lines.append(line)
            match = _TENSOR_LINE.search(line)
            if match:
                progress(int(match.group(1)), int(match.group(2)), f"Tensor {match.group(3)}")
        # llama.cpp writes "[  1/ 21] name - [...], type = f16, " and finishes the line later: report it now
        match = _TENSOR_LINE.search(partial[0])
        if match and partial[0].rstrip().endswith(","):
            progress(int(match.group(1)) - 1, int(match.group(2)), f"Tensor {match.group(3)}")

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = request.ftype
    params.allow_requantize = request.requantize
    params.nthread = request.threads or 0
    keep: list[Any] = []
    if request.imatrix:
        entries = load_imatrix(request.imatrix)
        array = (llama_cpp.llama_model_imatrix_data * (len(entries) + 1))()
        for i, (name, data) in enumerate(entries.items()):
            encoded = name.encode("utf-8")
            keep.append((encoded, data))
            array[i].name = encoded
            array[i].data = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            array[i].size = data.size
        array[len(entries)].name = None
        keep.append(array)
        params.imatrix = ctypes.cast(array, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    _listen(on_text)
    try:
        rc = llama_cpp.llama_model_quantize(request.source.encode(), request.output.encode(), ctypes.byref(params))
    finally:
        _listen(None)
    if rc != 0:
        raise _failure(lines, request)
    return {"imatrix_entries": len(keep) - 1 if request.imatrix else 0}


def _failure(lines: list[str], request: QuantizeRequest) -> HangarError:
    reason = next((line for line in reversed(lines) if "failed to quantize" in line), "")
    reason = reason.split("failed to quantize:", 1)[-1].strip() or "llama.cpp did not say why"
    folder = Path(request.output).parent
    # llama.cpp writes through an ofstream: a full disk surfaces as a bare "iostream error", so look at the disk
    if "No space left" in reason or ("iostream error" in reason and shutil.disk_usage(folder).free < 4 * 1024 * 1024):
        return DiskFullError(
            f"The disk filled up while writing {Path(request.output).name} in {folder}.",
            hint="Free some space or write the output to another disk.",
        )
    if "requires an imatrix" in reason or "importance matrix" in reason:
        return UsageError(
            f"{request.type_name} needs an importance matrix: {reason}.",
            hint="Pass --imatrix FILE, or choose a type such as Q4_K_M.",
        )
    return ModelFileError(f"Quantizing to {request.type_name} failed: {reason}.")
