"""A tiny vision model: a llava-style ``mmproj`` GGUF (a small ViT and the two-layer MLP projector) paired with a
tiny llama text model whose embedding width matches the projector's output, plus a PNG writer for test images.

llama.cpp's multimodal loader (``mtmd``/``clip``) accepts the projector as it accepts LLaVA 1.5's: random weights,
so the model describes nothing, but an image is really decoded, encoded into embeddings and read by the model.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf


@dataclass(frozen=True)
class TinyProjectorConfig:
    #: The text model's embedding width: the projector's output must match it.
    n_embd_text: int = 64
    n_embd: int = 32
    n_head: int = 4
    n_ff: int = 64
    n_layer: int = 2
    #: Images are resized to ``image_size`` squared and cut into ``patch_size`` patches: (32/8)^2 = 16 tokens.
    image_size: int = 32
    patch_size: int = 8
    n_mm_hidden: int = 64
    seed: int = 1
    name: str = "tiny-vision-projector"

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def write_tiny_mmproj(path: Path, config: TinyProjectorConfig = TinyProjectorConfig()) -> Path:
    """Write a llava MLP projector GGUF (``general.architecture = clip``) to ``path`` and return it."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(config.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_name(config.name)
    writer.add_file_type(1)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_text_encoder", False)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.use_gelu", False)
    writer.add_uint32("clip.vision.image_size", config.image_size)
    writer.add_uint32("clip.vision.patch_size", config.patch_size)
    writer.add_uint32("clip.vision.embedding_length", config.n_embd)
    writer.add_uint32("clip.vision.feed_forward_length", config.n_ff)
    writer.add_uint32("clip.vision.projection_dim", config.n_embd_text)
    writer.add_uint32("clip.vision.attention.head_count", config.n_head)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_uint32("clip.vision.block_count", config.n_layer)
    writer.add_array("clip.vision.image_mean", [0.48145466, 0.4578275, 0.40821073])
    writer.add_array("clip.vision.image_std", [0.26862954, 0.26130258, 0.27577711])

    def matrix(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(1.0 / np.sqrt(shape[-1]))

    def add(name: str, data: np.ndarray) -> None:
        writer.add_tensor(name, data.astype(np.float32 if data.ndim == 1 else np.float16))

    d, p = config.n_embd, config.patch_size
    n_pos = config.image_tokens + 1  # the patches and the class embedding
    add("v.class_embd", matrix(d))
    add("v.patch_embd.weight", matrix(d, 3, p, p))
    add("v.position_embd.weight", matrix(n_pos, d))
    add("v.pre_ln.weight", np.ones(d, dtype=np.float32))
    add("v.pre_ln.bias", np.zeros(d, dtype=np.float32))
    for i in range(config.n_layer):
        for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
            add(f"v.blk.{i}.{part}.weight", matrix(d, d))
            add(f"v.blk.{i}.{part}.bias", np.zeros(d, dtype=np.float32))
        for norm in ("ln1", "ln2"):
            add(f"v.blk.{i}.{norm}.weight", np.ones(d, dtype=np.float32))
            add(f"v.blk.{i}.{norm}.bias", np.zeros(d, dtype=np.float32))
        add(f"v.blk.{i}.ffn_up.weight", matrix(config.n_ff, d))
        add(f"v.blk.{i}.ffn_up.bias", np.zeros(config.n_ff, dtype=np.float32))
        add(f"v.blk.{i}.ffn_down.weight", matrix(d, config.n_ff))
        add(f"v.blk.{i}.ffn_down.bias", np.zeros(d, dtype=np.float32))
    add("mm.0.weight", matrix(config.n_mm_hidden, d))
    add("mm.0.bias", np.zeros(config.n_mm_hidden, dtype=np.float32))
    add("mm.2.weight", matrix(config.n_embd_text, config.n_mm_hidden))
    add("mm.2.bias", np.zeros(config.n_embd_text, dtype=np.float32))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_tiny_vision_model(folder: Path, name: str = "tiny-vision") -> tuple[Path, Path]:
    """A text model and its projector side by side in ``folder``, named as vision repositories name them
    (``NAME-F16.gguf`` and ``mmproj-NAME-F16.gguf``). Returns ``(model, projector)``."""
    text = TinyModelConfig(name=name)
    model = write_tiny_gguf(folder / f"{name}-F16.gguf", text)
    projector = write_tiny_mmproj(folder / f"mmproj-{name}-F16.gguf", TinyProjectorConfig(n_embd_text=text.n_embd))
    return model, projector


def png_bytes(width: int, height: int, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A plain-colour RGB PNG (stdlib only: no imaging library is needed to make test images)."""
    row = b"\x00" + bytes(rgb) * width
    raw = row * height

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
