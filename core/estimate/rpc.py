"""Compute buffers of a model spread over llama.cpp RPC workers, for the analytic estimate (llama.cpp's own fit
pass answers instead when the workers can be reached: ``core.estimate.exact``).

With RPC devices the graph is cut into one split per device. Each worker's compute buffer holds the peak of its
layers' graph (the same peak as a local CPU run) plus the copies of the split's inputs: the KQ mask, the layer
input rows and the V-cache row indices, three of each. The host, holding no layer, keeps the graph inputs and the
embedding lookup. Measured on the bundled llama.cpp (CPU workers on loopback, six shapes from 256 to 1024 wide,
256 to 2048 tokens of context, 2k to 8k vocabulary: every figure within 0.1 MiB, see ``tests/core``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the header reader pulls in NumPy: not at start-up
    from core.gguf.info import GGUFInfo


def split_inputs(info: GGUFInfo, n_ctx: int, n_ub: int, flash: bool) -> tuple[int, int, int]:
    """Bytes of the KQ mask, of one micro-batch of layer input rows, and of the V-cache row indices (i64)."""
    mask = n_ctx * n_ub * (2 if flash else 4)
    rows = 4 * n_ub * info.embedding_length
    n_embd_v = max((h * max(info.value_length, info.value_length_swa) for h in info.head_count_kv), default=0)
    v_idxs = 8 * n_ub * n_embd_v
    return mask, rows, v_idxs


def worker_compute(info: GGUFInfo, local_compute: int, n_ctx: int, n_ub: int, flash: bool) -> int:
    """One RPC device holding layers: the local graph's peak plus three copies of its split's inputs."""
    mask, rows, v_idxs = split_inputs(info, n_ctx, n_ub, flash)
    return local_compute + 3 * (mask + rows + v_idxs)


def output_compute(info: GGUFInfo, n_ub: int) -> int:
    """An RPC device holding the output layer and no block: the logits of a micro-batch and a few rows."""
    return 4 * n_ub * (info.vocab_size + 5 * info.embedding_length) + 16 * 1024


def host_compute(info: GGUFInfo, n_ctx: int, n_ub: int, flash: bool) -> int:
    """The host when every layer is on RPC devices: graph inputs and the embedding lookup."""
    mask, rows, v_idxs = split_inputs(info, n_ctx, n_ub, flash)
    return 4 * mask + 5 * rows + 4 * v_idxs + 40 * 1024
