"""A vision model's projector (``mmproj``) in the memory estimate: its weights, read from its header, and a compute
allowance for encoding one image at the projector's own resolution, on the device llama.cpp puts it on (the first
GPU when the model's layers are offloaded, else the host). Shown as its own line (``projector``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from core.estimate.types import MIB, Estimate, Verdict
from core.gguf import GGUFInfo

#: Dynamic-resolution projectors (Qwen-VL and kin) have no fixed image size; llama.cpp warms them up at about this.
DYNAMIC_IMAGE_SIZE = 1024


@dataclass(frozen=True)
class ProjectorUsage:
    name: str
    device: str
    weights: int
    compute: int
    image_size: int
    #: Patches the encoder sees for one image (before any merging into fewer model tokens).
    patches: int

    @property
    def total(self) -> int:
        return self.weights + self.compute

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


def projector_usage(info: GGUFInfo, *, device: str = "CPU", flash_attention: bool = False) -> ProjectorUsage:
    """What loading ``info`` (a projector's header) and encoding one image take.

    The encoder is a ViT over ``(image_size / patch_size)²`` patches: per layer it holds the hidden states, Q, K,
    V and the feed-forward activations (f32), and without flash attention one f32 score matrix per head. The
    graph allocator reuses buffers between layers, so one layer's worth is counted, plus the input image and the
    projected output. On the tiny test projector this is within 20% of what llama.cpp reports."""
    meta = info.metadata
    image_size = int(meta.get("clip.vision.image_size") or 0) or DYNAMIC_IMAGE_SIZE
    patch = max(1, int(meta.get("clip.vision.patch_size") or 14))
    n_embd = int(meta.get("clip.vision.embedding_length") or 0)
    n_ff = int(meta.get("clip.vision.feed_forward_length") or 4 * n_embd)
    n_head = max(1, int(meta.get("clip.vision.attention.head_count") or 1))
    out_dim = int(meta.get("clip.vision.projection_dim") or n_embd)
    patches = (image_size // patch) ** 2
    n_pos = patches + 1
    activations = 4 * n_pos * (4 * n_embd + n_ff)
    scores = 0 if flash_attention else 4 * n_head * n_pos * n_pos
    image = 4 * 3 * image_size * image_size
    compute = activations + scores + image + 4 * patches * out_dim
    return ProjectorUsage(info.name, device, info.weights_bytes, compute, image_size, patches)


def with_projector(estimate: Estimate, info: GGUFInfo) -> Estimate:
    """``estimate`` with the projector counted: its own ``projector`` line, the total, and the verdict when the
    device it lands on cannot hold it as well."""
    gpus = [d for d in estimate.devices if not d.is_host]
    target = gpus[0] if gpus and estimate.gpu_layers > 0 else estimate.host
    usage = projector_usage(info, device=target.device, flash_attention=estimate.settings.flash_attention)
    notes = list(estimate.notes)
    notes.append(
        f"Includes the vision projector {info.name}: {usage.weights / MIB:,.0f} MiB of weights and "
        f"{usage.compute / MIB:,.0f} MiB to encode one {usage.image_size}×{usage.image_size} image, on {target.device}."
    )
    verdict = estimate.verdict
    if target.budget is not None and target.resident + usage.total > target.budget:
        verdict = Verdict.TOO_LARGE
        notes.append(f"With the projector, {target.device} is over its budget.")
    return replace(estimate, projector=usage, verdict=verdict, notes=tuple(notes))
