"""Fixtures of the library feature: real tiny model files (GGUF, split sets, MLX folders, adapters) and fake
folders of other apps (Hugging Face cache, LM Studio, Ollama, GPT4All) holding them, laid out as those apps do.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf

#: Small enough to write in milliseconds, still a real llama GGUF with a vocabulary and a chat template.
SMALL = TinyModelConfig(n_vocab=400, n_embd=32, n_head=4, n_head_kv=2, n_ff=32, n_layer=1)


def write_gguf(path: Path, *, seed: int = 0, **changes: object) -> Path:
    return write_tiny_gguf(path, SMALL.with_(seed=seed, **changes))


def write_split_set(folder: Path, stem: str = "split-model", parts: int = 3, *, seed: int = 0) -> list[Path]:
    """A split set the way gguf-split writes it: metadata in the first part, tensors spread over all parts."""
    import gguf

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}-{i:05d}-of-{parts:05d}.gguf" for i in range(1, parts + 1)]
    for index, path in enumerate(paths):
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_uint16("split.no", index)
        writer.add_uint16("split.count", parts)
        writer.add_int32("split.tensors.count", 2 * parts)
        if index == 0:
            writer.add_name(stem)
            writer.add_block_count(parts)
            writer.add_embedding_length(32)
            writer.add_head_count(4)
            writer.add_context_length(8192)
            writer.add_file_type(7)
            writer.add_string("general.license", "apache-2.0")
            writer.add_chat_template("{{ messages }}")
        for j in (0, 1):
            writer.add_tensor(f"blk.{index}.w{j}.weight", rng.standard_normal((16, 32)).astype(np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return paths


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "mlx"}}
    offset = 0
    blobs = []
    for name, array in tensors.items():
        data = array.tobytes()
        dtype = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32", np.dtype(np.uint32): "U32"}[array.dtype]
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def write_mlx_folder(folder: Path, *, weights: bool = True, tokenizer: bool = True, seed: int = 0) -> Path:
    """An MLX model folder as mlx-lm writes it: config.json, 4-bit packed weights, tokenizer, model card."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "qwen2",
        "max_position_embeddings": 32768,
        "hidden_size": 64,
        "quantization": {"group_size": 32, "bits": 4},
    }
    (folder / "config.json").write_text(json.dumps(config))
    if weights:
        _write_safetensors(
            folder / "model.safetensors",
            {
                "model.embed_tokens.weight": rng.integers(0, 2**32, (128, 8), dtype=np.uint32),  # 128 x 64 4-bit
                "model.embed_tokens.scales": rng.standard_normal((128, 2)).astype(np.float16),
                "model.norm.weight": np.ones(64, dtype=np.float16),
            },
        )
    if tokenizer:
        (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE"}}))
        (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    (folder / "README.md").write_text("---\nlicense: mit\nlibrary_name: mlx\n---\n# A tiny MLX model\n")
    return folder


def write_adapter_folder(folder: Path, base: str = "tiny-llama") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": base}))
    _write_safetensors(
        folder / "adapter_model.safetensors",
        {"lora_A": np.zeros((4, 32), dtype=np.float32), "lora_B": np.zeros((32, 4), dtype=np.float32)},
    )
    return folder


@dataclass(frozen=True)
class FakeApps:
    """A fake home folder with other apps' model stores in it, and a Hugging Face cache."""

    home: Path
    hf_cache: Path

    def roots(self, extra: tuple[Path, ...] = ()):  # -> core.library.scan.ScanRoots
        from core.library.scan import ScanRoots

        return ScanRoots(home=self.home, hf_cache=self.hf_cache, extra=extra, platform="linux")

    def add_hf_file(self, repo_id: str, filename: str, write: Callable[[Path], object], commit: str = "a" * 40) -> Path:
        """A file in the cache's real layout: a blob named by its hash, a snapshot symlink, a ref."""
        repo = self.hf_cache / f"models--{repo_id.replace('/', '--')}"
        staging = repo / "staging.tmp"
        repo.mkdir(parents=True, exist_ok=True)
        write(staging)
        digest = hashlib.sha256(staging.read_bytes()).hexdigest()
        (repo / "blobs").mkdir(parents=True, exist_ok=True)
        blob = repo / "blobs" / digest
        os.replace(staging, blob)
        link = repo / "snapshots" / commit / filename
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        return link

    def add_lmstudio(self, publisher: str, repo: str, filename: str, *, seed: int = 0, legacy: bool = False) -> Path:
        base = self.home / (".cache/lm-studio/models" if legacy else ".lmstudio/models")
        return write_gguf(base / publisher / repo / filename, seed=seed)

    def add_ollama(self, name: str, tag: str, *, seed: int = 0) -> Path:
        models = self.home / ".ollama" / "models"
        staging = models / "staging.tmp"
        write_gguf(staging, seed=seed)
        digest = hashlib.sha256(staging.read_bytes()).hexdigest()
        blob = models / "blobs" / f"sha256-{digest}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, blob)
        template = models / "blobs" / f"sha256-{'0' * 64}"
        template.write_text("{{ .Prompt }}")
        manifest = models / "manifests" / "registry.ollama.ai" / "library" / name / tag
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(
            json.dumps(
                {
                    "schemaVersion": 2,
                    "layers": [
                        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"},
                        {"mediaType": "application/vnd.ollama.image.template", "digest": f"sha256:{'0' * 64}"},
                    ],
                }
            )
        )
        return blob

    def add_gpt4all(self, filename: str, *, seed: int = 0) -> Path:
        return write_gguf(self.home / ".local/share/nomic.ai/GPT4All" / filename, seed=seed)


@pytest.fixture(autouse=True, scope="session")
def _no_real_app_folders(tmp_path_factory: pytest.TempPathFactory):  # -> Iterator[None]
    """No test may scan the real home folder: the library's default scan roots point at an empty folder."""
    from core.library.scan import SCAN_HOME_ENV

    previous = os.environ.get(SCAN_HOME_ENV)
    os.environ[SCAN_HOME_ENV] = str(tmp_path_factory.mktemp("empty-home"))
    yield
    if previous is None:
        os.environ.pop(SCAN_HOME_ENV, None)
    else:
        os.environ[SCAN_HOME_ENV] = previous


@pytest.fixture
def fake_apps(tmp_path: Path) -> FakeApps:
    home = tmp_path / "home"
    home.mkdir()
    return FakeApps(home=home, hf_cache=tmp_path / "hf-cache")


@pytest.fixture
def library(app):  # -> core.library.service.Library

    return app.library


#: A real embedding GGUF for llama.cpp: a tiny llama whose header sets mean pooling (as Qwen3-Embedding's does), no
#: chat template. Its weights are random, so its vectors carry no meaning; the plumbing is real.
EMBED = TinyModelConfig(pooling_type=1, chat_template=None, name="tiny-embed")


def write_embedding_gguf(path: Path, *, seed: int = 0) -> Path:
    return write_tiny_gguf(path, EMBED.with_(seed=seed))


def write_bert_header(path: Path) -> Path:
    """A GGUF whose header says ``bert`` (an encoder: an embedding model by its architecture), with one tensor."""
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "bert")
    writer.add_name("tiny-bert")
    writer.add_context_length(512)
    writer.add_embedding_length(32)
    writer.add_block_count(1)
    writer.add_head_count(4)
    writer.add_tensor("token_embd.weight", np.zeros((64, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def tiny_embed_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real embedding GGUF (``EMBED``), made once per session."""
    return write_embedding_gguf(tmp_path_factory.mktemp("embed") / "tiny-embed-F16.gguf")
