"""Reading GGUF and safetensors headers over HTTP Range from a local Hub-like server (127.0.0.1), through
huggingface_hub's session and HF_ENDPOINT: only header bytes travel."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.errors import AuthError, ModelFileError, NetworkError, NotFoundError
from core.gguf import hub_file_url, read_gguf, read_gguf_hub
from tests.core.test_gguf import _write_split
from tests.support.fixtures_fit import RangeServer


@pytest.fixture(scope="module")
def model_with_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 20k tokens (a ~300 kB header) and ~5 MB of tensor data
    return write_tiny_gguf(
        tmp_path_factory.mktemp("remote") / "model-Q8_0.gguf",
        TinyModelConfig(n_vocab=20_000, n_embd=128, n_ff=256, n_head=4, n_head_kv=2, n_layer=2, weight_type="Q8_0"),
    )


def test_hub_url_honours_hf_endpoint(range_server: RangeServer) -> None:
    assert hub_file_url("me/repo", "a b.gguf") == f"{range_server.url}/me/repo/resolve/main/a%20b.gguf"


def test_remote_header_equals_local_and_fetches_only_the_header(
    range_server: RangeServer, model_with_data: Path
) -> None:
    shutil.copy(model_with_data, range_server.repo_dir("me/tiny-GGUF") / model_with_data.name)
    local = read_gguf(model_with_data)
    remote = read_gguf_hub("me/tiny-GGUF", model_with_data.name)
    assert remote.tensors == local.tensors
    assert remote.file_size == model_with_data.stat().st_size
    assert remote.vocab_size == 20_000 and remote.quant_type == "Q8_0"
    size = model_with_data.stat().st_size
    assert local.header_bytes < range_server.bytes_sent < size / 4
    assert 1 <= len(range_server.requests) <= 6  # grown chunks, not one request per value


def test_remote_split_set(range_server: RangeServer, tmp_path: Path) -> None:
    parts = _write_split(tmp_path)
    folder = range_server.repo_dir("me/split") / "Q4"
    folder.mkdir()
    for part in parts:
        shutil.copy(part, folder / part.name)
    info = read_gguf_hub("me/split", "Q4/model-00001-of-00002.gguf")
    assert info.split_count == 2 and len(info.tensors) == 4 and info.context_length == 1024


def test_remote_errors(range_server: RangeServer, model_with_data: Path) -> None:
    with pytest.raises(NotFoundError, match="404"):
        read_gguf_hub("me/none", "x.gguf")
    folder = range_server.repo_dir("me/cut")
    (folder / "cut.gguf").write_bytes(model_with_data.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="truncated"):
        read_gguf_hub("me/cut", "cut.gguf")
    range_server.token = "secret"
    shutil.copy(model_with_data, range_server.repo_dir("me/gated") / "m.gguf")
    with pytest.raises(AuthError):
        read_gguf_hub("me/gated", "m.gguf")
    assert read_gguf_hub("me/gated", "m.gguf", token="secret").vocab_size == 20_000


def test_server_that_ignores_range_still_works(range_server: RangeServer, tiny_gguf: Path) -> None:
    range_server.honour_range = False
    shutil.copy(tiny_gguf, range_server.repo_dir("me/plain") / "m.gguf")
    assert read_gguf_hub("me/plain", "m.gguf").tensors == read_gguf(tiny_gguf).tensors


def test_huge_file_without_range_support_is_not_downloaded(range_server: RangeServer, tmp_path: Path) -> None:
    from core.devkit.modelgen import LLAMA_8B_SHAPE, write_sparse_gguf

    stub = write_sparse_gguf(range_server.repo_dir("me/big") / "llama-8b-Q4_K.gguf", LLAMA_8B_SHAPE)
    assert stub.stat().st_size > 4 * 2**30
    info = read_gguf_hub("me/big", stub.name)
    assert info.parameter_count > 8e9 and range_server.bytes_sent < 20 * 2**20  # Range: the header only
    range_server.honour_range = False
    range_server.bytes_sent = 0
    info = read_gguf_hub("me/big", stub.name)  # a plain server: we stop reading once the header is in
    assert info.file_size == stub.stat().st_size
    assert range_server.bytes_sent < 200 * 2**20


def test_header_past_the_no_range_cap_is_refused(
    range_server: RangeServer, model_with_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.gguf.source as source

    monkeypatch.setattr(source, "MAX_NO_RANGE_BYTES", 100_000)  # the real cap is 64 MiB; this header is 490 kB
    range_server.honour_range = False
    shutil.copy(model_with_data, range_server.repo_dir("me/plain-big") / "m.gguf")
    with pytest.raises(NetworkError, match="does not support partial downloads"):
        read_gguf_hub("me/plain-big", "m.gguf")
