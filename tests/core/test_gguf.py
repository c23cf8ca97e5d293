"""The GGUF header reader on real files written by the gguf package: fields, per-layer layouts, split sets,
and truncated or damaged files."""

from __future__ import annotations

import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest

from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.errors import ModelFileError, NotFoundError
from core.gguf import ArraySummary, read_gguf, split_names
from core.models.check import check_gguf_file


def test_reads_a_tiny_llama(tiny_gguf: Path) -> None:
    info = read_gguf(tiny_gguf)
    assert info.architecture == "llama"
    assert info.block_count == 2 and info.embedding_length == 64 and info.feed_forward_length == 128
    assert info.head_count == (4, 4) and info.head_count_kv == (2, 2)
    assert info.key_length == 16 and info.value_length == 16
    assert info.context_length == 2048 and info.vocab_size == 512
    assert info.chat_template and "<|im_start|>" in info.chat_template
    assert info.quant_type == "F16" and info.dominant_type == "F16"
    assert info.sliding_window == 0 and info.swa_layers == (False, False)
    assert not info.is_moe and not info.tied_embeddings
    # every tensor's bytes lie inside the file, ending exactly where the data does
    last = max(info.tensors, key=lambda t: t.offset)
    assert last.offset + last.n_bytes <= tiny_gguf.stat().st_size
    assert info.file_size == tiny_gguf.stat().st_size
    embd = info.tensor("token_embd.weight")
    assert embd is not None and embd.shape == (64, 512) and embd.n_bytes == 64 * 512 * 2
    reference = gguf.GGUFReader(str(tiny_gguf))
    assert {t.name: int(t.n_bytes) for t in reference.tensors} == {t.name: t.n_bytes for t in info.tensors}
    assert {t.name: int(t.data_offset) for t in reference.tensors} == {t.name: t.offset for t in info.tensors}
    assert info.parameter_count == sum(int(t.n_elements) for t in reference.tensors)


def test_moe_sliding_window_and_quant_types(tmp_path: Path) -> None:
    moe = read_gguf(
        write_tiny_gguf(
            tmp_path / "moe.gguf", TinyModelConfig(n_embd=64, n_ff=64, n_expert=4, n_expert_used=2, weight_type="Q8_0")
        )
    )
    assert moe.is_moe and moe.expert_count == 4 and moe.expert_used_count == 2
    assert moe.quant_type == "Q8_0" and moe.dominant_type == "Q8_0"
    experts = [t for t in moe.tensors if t.is_expert]
    assert len(experts) == 6 and all(t.shape[2] == 4 for t in experts)
    gemma = read_gguf(
        write_tiny_gguf(
            tmp_path / "gemma.gguf",
            TinyModelConfig(arch="gemma3", n_layer=7, head_dim=32, sliding_window=128, weight_type="Q4_0"),
        )
    )
    assert gemma.sliding_window == 128
    assert gemma.swa_layers == (True, True, True, True, True, False, True)  # gemma3: every 6th layer is global
    assert gemma.key_length == 32 and gemma.tied_embeddings
    assert gemma.quant_type == "Q4_0"


def test_per_layer_head_counts_and_explicit_window_pattern(tmp_path: Path) -> None:
    path = tmp_path / "arrays.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(3)
    writer.add_embedding_length(32)
    writer.add_head_count([4, 4, 4])
    writer.add_head_count_kv([2, 0, 1])
    writer.add_sliding_window(64)
    writer.add_array("llama.attention.sliding_window_pattern", [True, False, True])
    writer.add_tensor("token_embd.weight", np.zeros((10, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    info = read_gguf(path)
    assert info.head_count_kv == (2, 0, 1)
    assert info.swa_layers == (True, False, True)
    assert info.key_length == 8  # no key_length key: n_embd / n_head


def test_big_vocabulary_is_summarised_not_listed(tmp_path: Path) -> None:
    path = write_tiny_gguf(
        tmp_path / "big.gguf", TinyModelConfig(n_vocab=70_000, n_embd=32, n_ff=32, n_head=2, n_head_kv=1, n_layer=1)
    )
    info = read_gguf(path)
    tokens = info.metadata["tokenizer.ggml.tokens"]
    assert isinstance(tokens, ArraySummary) and len(tokens) == 70_000
    assert info.vocab_size == 70_000
    assert info.header_bytes > 70_000 * 8  # the walk went through every token string


def _write_split(tmp_path: Path) -> list[Path]:
    """Two shards the way gguf-split writes them: metadata in the first, tensors spread over both."""
    rng = np.random.default_rng(0)
    names = [tmp_path / f"model-0000{i}-of-00002.gguf" for i in (1, 2)]
    for index, path in enumerate(names):
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_uint16("split.no", index)
        writer.add_uint16("split.count", 2)
        writer.add_int32("split.tensors.count", 4)
        if index == 0:
            writer.add_block_count(2)
            writer.add_embedding_length(32)
            writer.add_head_count(4)
            writer.add_context_length(1024)
            writer.add_file_type(1)
        for layer in (0, 1):
            writer.add_tensor(f"blk.{index}.w{layer}.weight", rng.standard_normal((16, 32)).astype(np.float16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return names


def test_split_set_reads_as_one_model(tmp_path: Path) -> None:
    first, second = _write_split(tmp_path)
    assert split_names("dir/model-00002-of-00002.gguf") == [
        "dir/model-00001-of-00002.gguf",
        "dir/model-00002-of-00002.gguf",
    ]
    info = read_gguf(second)  # any part names the set
    assert info.split_count == 2 and info.context_length == 1024
    assert [t.shard for t in info.tensors] == [0, 0, 1, 1]
    assert info.file_size == first.stat().st_size + second.stat().st_size
    second.unlink()
    with pytest.raises(ModelFileError, match="1 are missing"):
        read_gguf(first)


def test_truncated_download_is_named(tiny_gguf: Path, tmp_path: Path) -> None:
    data = tiny_gguf.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) - 1000])
    with pytest.raises(ModelFileError, match="truncated") as error:
        check_gguf_file(cut)
    assert "Resume the download" in str(error.value)
    cut.write_bytes(data[:200])
    with pytest.raises(ModelFileError, match="truncated"):
        read_gguf(cut)
    assert check_gguf_file(tiny_gguf).architecture == "llama"


def test_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        read_gguf(tmp_path / "nope.gguf")
    with pytest.raises(ModelFileError, match="folder"):
        check_gguf_file(tmp_path)
    other = tmp_path / "x.gguf"
    shutil.copyfile(__file__, other)
    with pytest.raises(ModelFileError, match="not a GGUF"):
        read_gguf(other)
