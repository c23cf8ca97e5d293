"""The repositories the local Hub serves in tests: real tiny GGUF models at several quants (with a split set and
an mmproj companion), a real MLX-layout repo, a gated repo, a repo with hostile file names, a large sparse file,
and a crowd of small repos for search, sort and paging."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from tests.support.hub.model import HubFile, HubRepo
from tests.support.hub.server import LocalHub

GGUF_REPO = "hangar-test/tiny-llama-GGUF"
MLX_REPO = "mlx-community/tiny-llama-4bit"
GATED_REPO = "gated-org/tiny-gated-GGUF"
HOSTILE_REPO = "evil/hostile-GGUF"
BIGGER_REPO = "hangar-test/small-llama-GGUF"
SPARSE_REPO = "hangar-test/huge-sparse-GGUF"
SPARSE_SIZE = 6 * 1024**3
#: A real GGUF of about 34 MB: large enough to be fetched in parallel ranges.
RANGED_REPO = "hangar-test/ranged-llama-GGUF"
RANGED_FILE = "ranged-llama-F32.gguf"
#: A repo whose one model file has a name longer than file systems allow.
LONG_NAME_REPO = "hangar-test/long-name-GGUF"
LONG_NAME = "l" * 300 + "-Q4_0.gguf"
#: A transformers model with full safetensors weights in two shards: what a fine-tune starts from.
HF_REPO = "hangar-test/tunable-lm-hf"
CROWD = 25
GATED_TOKEN = "hf_test_granted_token_0123456789"
UNGRANTED_TOKEN = "hf_test_not_granted_token_98765"
TINY_PARAMETERS = 512 * 64 * 2 + 2 * (4 * 64 * 64 + 3 * 64 * 128)

MLX_CONFIG = {
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 96,
    "max_position_embeddings": 2048,
    "quantization": {"group_size": 64, "bits": 4},
}

CARD = """---
license: apache-2.0
tags: [gguf, llama]
---
# Tiny Llama GGUF

A **tiny** llama model for tests, in several quantisations.

| quant | use |
|---|---|
| Q4_0 | smallest |
| F16 | reference |
"""


def gguf_bytes(folder: Path, weight_type: str, seed: int = 0) -> bytes:
    path = write_tiny_gguf(
        folder / f"tiny-{weight_type}-{seed}.gguf", TinyModelConfig(weight_type=weight_type, seed=seed)
    )
    return path.read_bytes()


def split_gguf(source: Path, out_base: Path, max_tensors: int) -> list[Path]:
    """Rewrite a GGUF as a real llama.cpp split set (``-0000N-of-0000M.gguf``, split.* keys), loadable as one."""
    import gguf
    import numpy as np

    out_base.parent.mkdir(parents=True, exist_ok=True)
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(
        str(out_base), reader.fields["general.architecture"].contents(), split_max_tensors=max_tensors
    )
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        writer.add_key_value(
            name, field.contents(), vtype, sub_type=field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        )
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, np.array(tensor.data), raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return sorted(out_base.parent.glob(out_base.stem + "-*-of-*.gguf"))


def safetensors_bytes(rows: int = 64, cols: int = 96) -> bytes:
    payload = bytes((i * 7) % 251 for i in range(rows * cols * 2))
    header = json.dumps(
        {
            "model.embed_tokens.weight": {
                "dtype": "F16",
                "shape": [rows, cols],
                "data_offsets": [0, len(payload)],
            }
        }
    ).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + payload


def sharded_hf_model(folder: Path) -> list[HubFile]:
    """The tiny Hugging Face llama (core.devkit.modelgen_hf), its weights split into two shards with an index, as
    larger models are published; plus files a fine-tune does not need."""
    from safetensors.numpy import load_file, save_file

    from core.devkit.modelgen_hf import write_tiny_hf_model

    model = write_tiny_hf_model(folder / "tiny-llama-hf")
    tensors = load_file(str(model / "model.safetensors"))
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2]}
    shards["model-00002-of-00002.safetensors"] = names[len(names) // 2 :]
    weight_map = {}
    files = [HubFile(".gitattributes", b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n")]
    files.append(HubFile("README.md", b"---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n# Tiny llama\n"))
    for shard, members in shards.items():
        save_file({n: tensors[n] for n in members}, str(folder / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(members, shard))
        files.append(HubFile(shard, (folder / shard).read_bytes()))
    total = sum(t.nbytes for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    files.append(HubFile("model.safetensors.index.json", json.dumps(index).encode()))
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        files.append(HubFile(name, (model / name).read_bytes()))
    files.append(HubFile("special_tokens_map.json", (model / "special_tokens_map.json").read_bytes()))
    files.append(HubFile("original/consolidated.pth", b"not needed"))
    return files


def build_catalog(hub: LocalHub, folder: Path) -> LocalHub:
    folder.mkdir(parents=True, exist_ok=True)
    q4, q8, f16 = (gguf_bytes(folder, t) for t in ("Q4_0", "Q8_0", "F16"))
    f32 = write_tiny_gguf(folder / "tiny-F32.gguf", TinyModelConfig(weight_type="F32"))
    f32_parts = split_gguf(f32, folder / "split" / "tiny-llama-F32.gguf", max_tensors=11)
    gguf_summary = {"total": TINY_PARAMETERS, "architecture": "llama", "context_length": 2048}
    hub.add(
        HubRepo(
            GGUF_REPO,
            files=[
                HubFile(".gitattributes", b"*.gguf filter=lfs diff=lfs merge=lfs -text\n"),
                HubFile("README.md", CARD.encode()),
                HubFile("tiny-llama-Q4_0.gguf", q4),
                HubFile("tiny-llama-Q8_0.gguf", q8),
                HubFile("tiny-llama-F16.gguf", f16),
                # A real split set (llama.cpp's gguf-split layout) in a sub-folder, as many repos have.
                *(HubFile(f"F32/{part.name}", part.read_bytes()) for part in f32_parts),
                HubFile("mmproj-tiny-llama-F16.gguf", gguf_bytes(folder, "F16", seed=7)),
            ],
            downloads=5000,
            likes=40,
            trending_score=12,
            last_modified="2025-05-01T10:00:00.000Z",
            tags=["gguf", "llama", "text-generation", "license:apache-2.0"],
            library_name="gguf",
            gguf=gguf_summary,
            card_data={"license": "apache-2.0"},
        )
    )
    hub.add(
        HubRepo(
            MLX_REPO,
            files=[
                HubFile(".gitattributes", b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"),
                HubFile("README.md", b"---\nlibrary_name: mlx\n---\n# Tiny Llama MLX 4bit\n"),
                HubFile("config.json", json.dumps(MLX_CONFIG).encode()),
                HubFile("tokenizer.json", json.dumps({"version": "1.0", "model": {"type": "BPE"}}).encode()),
                HubFile("tokenizer_config.json", b'{"chat_template": "{{ messages }}"}'),
                HubFile("special_tokens_map.json", b'{"eos_token": "</s>"}'),
                HubFile("model.safetensors", safetensors_bytes()),
                HubFile("images/banner.png", b"\x89PNG\r\n\x1a\n" + bytes(64)),
            ],
            downloads=800,
            likes=9,
            trending_score=30,
            last_modified="2025-06-01T10:00:00.000Z",
            tags=["mlx", "safetensors", "llama", "text-generation"],
            library_name="mlx",
            safetensors={"parameters": {"F16": 6144}, "total": 6144},
        )
    )
    hub.add(
        HubRepo(
            GATED_REPO,
            files=[HubFile("README.md", b"# Gated\n"), HubFile("tiny-gated-Q4_0.gguf", q4)],
            gated="manual",
            downloads=100,
            likes=3,
            tags=["gguf", "llama", "text-generation"],
            gguf=gguf_summary,
        )
    )
    hub.add(
        HubRepo(
            HOSTILE_REPO,
            files=[
                HubFile("../../escape-Q4_0.gguf", q4),
                HubFile("/etc/owned-Q4_0.gguf", q4),
                HubFile("sub/../../../up-Q4_0.gguf", q4),
                HubFile("ok-Q4_0.gguf", q4),
            ],
            downloads=1,
            tags=["gguf", "text-generation"],
            gguf=gguf_summary,
        )
    )
    bigger = write_tiny_gguf(
        folder / "small-llama-F32.gguf",
        TinyModelConfig(n_vocab=2048, n_embd=256, n_ff=512, n_head=4, n_head_kv=4, weight_type="F32", name="small"),
    )
    hub.add(
        HubRepo(
            BIGGER_REPO,
            files=[HubFile("small-llama-F32.gguf", bigger.read_bytes())],
            downloads=50,
            tags=["gguf", "text-generation"],
            gguf={"total": 2_700_000, "architecture": "llama", "context_length": 2048},
        )
    )
    ranged = write_tiny_gguf(
        folder / RANGED_FILE,
        TinyModelConfig(n_vocab=8192, n_embd=512, n_ff=512, n_head=4, n_head_kv=4, weight_type="F32", name="ranged"),
    )
    hub.add(
        HubRepo(
            RANGED_REPO,
            files=[HubFile(RANGED_FILE, source=ranged)],
            downloads=40,
            tags=["gguf", "text-generation"],
            gguf={"total": 9_000_000, "architecture": "llama", "context_length": 2048},
        )
    )
    hub.add(
        HubRepo(
            LONG_NAME_REPO,
            files=[HubFile("README.md", b"# long\n"), HubFile(LONG_NAME, q4)],
            downloads=1,
            tags=["gguf", "text-generation"],
            gguf=gguf_summary,
        )
    )
    sparse = folder / "huge-sparse.gguf"
    with sparse.open("wb") as handle:
        handle.truncate(SPARSE_SIZE)  # sparse: takes no disk space
    hub.add(
        HubRepo(
            SPARSE_REPO,
            # The hash is declared, not computed: this file is only for size and progress tests.
            files=[HubFile("huge-Q4_K_M.gguf", source=sparse, sha256_hex="ab" * 32)],
            downloads=2,
            tags=["gguf", "text-generation"],
            gguf={"total": 8_000_000_000, "architecture": "llama", "context_length": 8192},
        )
    )
    for index in range(CROWD):
        mlx = index % 3 == 0
        hub.add(
            HubRepo(
                f"crowd{index % 4}/chatter-{index:02d}-{'mlx' if mlx else 'GGUF'}",
                files=[HubFile("README.md", f"# chatter {index}\n".encode())],
                downloads=1000 + index * 37 % 500,
                likes=index * 13 % 50,
                trending_score=index * 7 % 25,
                last_modified=f"2025-03-{index + 1:02d}T00:00:00.000Z",
                tags=["mlx" if mlx else "gguf", "text-generation"],
                library_name="mlx" if mlx else None,
                pipeline_tag="text-generation" if index % 5 else "text-classification",
                gguf=None if mlx else {"total": (index + 1) * 10**9, "architecture": "llama"},
                safetensors={"parameters": {"BF16": (index + 1) * 10**9}, "total": (index + 1) * 10**9}
                if mlx
                else None,
            )
        )
    hub.add(
        HubRepo(
            HF_REPO,
            files=sharded_hf_model(folder / "hf"),
            downloads=300,
            likes=4,
            tags=["transformers", "safetensors", "llama", "text-generation", "license:apache-2.0"],
            library_name="transformers",
            safetensors={"parameters": {"F16": 70_000}, "total": 70_000},
        )
    )
    hub.tokens[GATED_TOKEN] = ("alice", {GATED_REPO})
    hub.tokens[UNGRANTED_TOKEN] = ("bob", set())
    return hub


def add_embedding_repo(hub: LocalHub, folder: Path) -> HubRepo:
    """The suggested embedding model's repo (``core.hub.suggestions.EMBEDDING_SUGGESTION``), holding a tiny real
    embedding GGUF under the suggested file's name. Returned so a test can take it away again."""
    from core.hub.suggestions import EMBEDDING_SUGGESTION as S
    from tests.support.fixtures_library import write_embedding_gguf

    assert S.file is not None
    data = write_embedding_gguf(folder / "tiny-embed.gguf").read_bytes()
    return hub.add(
        HubRepo(
            S.repo_id,
            files=[HubFile("README.md", b"# nomic-embed-text v1.5 (tiny stand-in)\n"), HubFile(S.file, data)],
            downloads=900,
            tags=["gguf", "nomic-bert", "sentence-similarity"],
            pipeline_tag="sentence-similarity",
            library_name="gguf",
            gguf={"total": TINY_PARAMETERS, "architecture": "llama", "context_length": 2048},
        )
    )
