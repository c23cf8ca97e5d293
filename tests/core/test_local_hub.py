"""The local Hub itself speaks the Hub protocol as huggingface_hub expects: checked through the library."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.support.hub import LocalHub
from tests.support.hub.catalog import GATED_REPO, GATED_TOKEN, GGUF_REPO, MLX_REPO, UNGRANTED_TOKEN

Q4 = "tiny-llama-Q4_0.gguf"


def test_lfs_metadata_comes_from_the_redirect(hub: LocalHub) -> None:
    hub_file = hub.repos[GGUF_REPO].file(Q4)
    meta = get_hf_file_metadata(hf_hub_url(GGUF_REPO, Q4, endpoint=hub.url), token=False)
    assert (meta.size, meta.etag, meta.commit_hash) == (hub_file.size, hub_file.sha256, hub.repos[GGUF_REPO].commit)
    assert meta.location.startswith(hub.cdn_url)  # a different origin, like the Hub's CDN


def test_small_files_are_served_directly_with_their_git_oid(hub: LocalHub) -> None:
    meta = get_hf_file_metadata(hf_hub_url(MLX_REPO, "config.json", endpoint=hub.url), token=False)
    assert meta.etag == hub.repos[MLX_REPO].file("config.json").blob_id


def test_ranges(hub: LocalHub) -> None:
    url = f"{hub.cdn_url}/cdn-lfs/x?repo={GGUF_REPO}&file={Q4}"
    data = hub.repos[GGUF_REPO].file(Q4).data
    assert data is not None
    partial = httpx2.get(url, headers={"Range": "bytes=100-199"})
    assert partial.status_code == 206 and partial.content == data[100:200]
    assert partial.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert httpx2.get(url, headers={"Range": f"bytes={len(data)}-"}).status_code == 416


def test_library_download_and_errors(hub: LocalHub, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = hf_hub_download(GGUF_REPO, Q4, cache_dir=tmp_path, endpoint=hub.url, token=False)
    assert Path(path).read_bytes() == hub.repos[GGUF_REPO].file(Q4).data
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(GGUF_REPO, "missing.gguf", cache_dir=tmp_path, endpoint=hub.url, token=False)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(GGUF_REPO, Q4, revision="0" * 40, cache_dir=tmp_path, endpoint=hub.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url).model_info("nobody/nothing", token=False)


def test_gated_answers(hub: LocalHub, tmp_path) -> None:  # type: ignore[no-untyped-def]
    name = "tiny-gated-Q4_0.gguf"
    for token, status in ((False, 401), (UNGRANTED_TOKEN, 403)):
        with pytest.raises(GatedRepoError) as caught:
            hf_hub_download(GATED_REPO, name, cache_dir=tmp_path, endpoint=hub.url, token=token)
        assert caught.value.response.status_code == status
    assert hf_hub_download(GATED_REPO, name, cache_dir=tmp_path, endpoint=hub.url, token=GATED_TOKEN)
    info = HfApi(endpoint=hub.url).model_info(GATED_REPO, token=False)
    assert info.gated == "manual"


def test_tree_and_whoami(hub: LocalHub) -> None:
    api = HfApi(endpoint=hub.url)
    top = {entry.path for entry in api.list_repo_tree(GGUF_REPO, token=False)}
    assert "F32" in top and Q4 in top
    deep = {entry.path for entry in api.list_repo_tree(GGUF_REPO, recursive=True, token=False)}
    assert "F32/tiny-llama-F32-00001-of-00002.gguf" in deep
    assert api.whoami(token=GATED_TOKEN)["name"] == "alice"
