"""Search, filters, sort, paging and model details against the local Hub over real HTTP."""

from __future__ import annotations

import pytest
from huggingface_hub import get_hf_file_metadata, hf_hub_url

from core.errors import NetworkError, NotFoundError
from core.hub.client import FormatFilter, HubClient, SearchQuery, SearchSort
from core.hub.files import GroupKind, quant_of
from tests.support.hub import LocalHub
from tests.support.hub.catalog import GGUF_REPO, HOSTILE_REPO, MLX_REPO


def _all_pages(client: HubClient, query: SearchQuery) -> list[str]:
    page = client.search(query)
    seen = [r.repo_id for r in page.results]
    while page.next_url:
        page = client.search(query, page.next_url)
        seen.extend(r.repo_id for r in page.results)
    return seen


def test_search_matches_text_and_fills_every_field(hub: LocalHub) -> None:
    page = HubClient().search(SearchQuery("tiny-llama", task=None))
    ids = {r.repo_id for r in page.results}
    assert ids == {GGUF_REPO, MLX_REPO}
    gguf = next(r for r in page.results if r.repo_id == GGUF_REPO)
    assert (gguf.author, gguf.downloads, gguf.likes) == ("hangar-test", 5000, 40)
    assert gguf.updated is not None and gguf.updated.year == 2025
    assert "gguf" in gguf.tags and gguf.formats == ("gguf",)
    assert gguf.gated is False and gguf.licence == "apache-2.0"


@pytest.mark.parametrize("fmt", [FormatFilter.GGUF, FormatFilter.MLX])
def test_format_filter(hub: LocalHub, fmt: FormatFilter) -> None:
    results = HubClient().search(SearchQuery("chatter", format=fmt, limit=100)).results
    assert results
    assert all(fmt.value in r.formats for r in results)
    expected = sum(
        1
        for repo in hub.repos.values()
        if "chatter" in repo.repo_id and fmt.value in repo.tags and repo.pipeline_tag == "text-generation"
    )
    assert len(results) == expected


@pytest.mark.parametrize(
    ("sort", "attribute"),
    [
        (SearchSort.DOWNLOADS, "downloads"),
        (SearchSort.LIKES, "likes"),
        (SearchSort.TRENDING, "trending_score"),
        (SearchSort.UPDATED, "last_modified"),
    ],
)
def test_sort_orders_descending(hub: LocalHub, sort: SearchSort, attribute: str) -> None:
    results = HubClient().search(SearchQuery("chatter", sort=sort, limit=100)).results
    values = [getattr(hub.repos[r.repo_id], attribute) for r in results]
    assert len(values) > 5
    assert values == sorted(values, reverse=True)


def test_paging_follows_link_headers_without_gaps_or_repeats(hub: LocalHub) -> None:
    client = HubClient()
    paged = _all_pages(client, SearchQuery("chatter", limit=4, task=None))
    whole = [r.repo_id for r in client.search(SearchQuery("chatter", limit=100, task=None)).results]
    assert len(paged) == len(set(paged)) == len(whole) == 25
    assert paged == whole


def test_task_and_parameter_range(hub: LocalHub) -> None:
    results = HubClient().search(SearchQuery("chatter", min_params_b=5, max_params_b=10, limit=100)).results
    assert results
    for r in results:
        assert r.parameters is not None and 5e9 <= r.parameters <= 10e9
        assert r.pipeline_tag == "text-generation"


def test_unreachable_hub_is_a_clear_network_error(hub: LocalHub) -> None:
    with pytest.raises(NetworkError, match="Could not reach the Hugging Face Hub"):
        HubClient(endpoint="http://127.0.0.1:9", timeout=2).search(SearchQuery("x"))


def test_a_next_page_link_to_another_host_is_not_followed(hub: LocalHub) -> None:
    with pytest.raises(NetworkError, match="another server"):
        HubClient(lambda: "hf_secret").search(SearchQuery("x"), "http://127.0.0.2:9/api/models?cursor=5")


def test_detail_groups_quants_split_sets_and_companions(hub: LocalHub) -> None:
    detail = HubClient().model_detail(GGUF_REPO)
    assert detail.commit == hub.repos[GGUF_REPO].commit
    assert {f.path for f in detail.files} == {f.path for f in hub.repos[GGUF_REPO].files}  # the complete list
    quants = [g for g in detail.groups if g.kind == GroupKind.QUANT]
    assert [g.quant for g in quants] == ["Q4_0", "Q8_0", "F16", "F32"]  # smallest first
    split = quants[-1]
    assert split.is_split and len(split.files) == 2 and "2-part split" in split.note
    assert split.size == sum(f.size for f in hub.repos[GGUF_REPO].files if "F32" in f.path)
    mmproj = [g for g in detail.groups if g.kind == GroupKind.COMPANION]
    assert [g.label for g in mmproj] == ["mmproj-tiny-llama-F16.gguf"]
    q4 = quants[0].files[0]
    assert q4.sha256 == hub.repos[GGUF_REPO].file("tiny-llama-Q4_0.gguf").sha256
    assert detail.gguf["architecture"] == "llama"
    assert detail.licence == "apache-2.0"


def test_detail_card_is_markdown_without_metadata(hub: LocalHub) -> None:
    card = HubClient().model_detail(GGUF_REPO).card_markdown
    assert card.startswith("# Tiny Llama GGUF")
    assert "license:" not in card


def test_mlx_detail_groups_the_needed_files(hub: LocalHub) -> None:
    detail = HubClient().model_detail(MLX_REPO)
    mlx = next(g for g in detail.groups if g.kind == GroupKind.MLX)
    assert {f.path for f in mlx.files} == {
        "config.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    others = {g.key for g in detail.groups if g.kind == GroupKind.OTHER}
    assert others == {".gitattributes", "README.md", "images/banner.png"}


def test_hostile_names_are_listed_but_refused(hub: LocalHub) -> None:
    detail = HubClient().model_detail(HOSTILE_REPO)
    refused = {g.key for g in detail.groups if g.kind == GroupKind.REFUSED}
    assert refused == {"../../escape-Q4_0.gguf", "/etc/owned-Q4_0.gguf", "sub/../../../up-Q4_0.gguf"}
    assert [g.key for g in detail.groups if g.downloadable] == ["ok-Q4_0.gguf"]


def test_unknown_repo_is_not_found(hub: LocalHub) -> None:
    with pytest.raises(NotFoundError, match="nobody/nothing"):
        HubClient().model_detail("nobody/nothing")


def test_server_never_advertises_xet(hub: LocalHub) -> None:
    """huggingface_hub uses the Xet transport only when a resolve answer carries X-Xet-Hash; ours never does."""
    url = hf_hub_url(GGUF_REPO, "tiny-llama-Q4_0.gguf", endpoint=hub.url)
    metadata = get_hf_file_metadata(url, token=False)
    assert metadata.xet_file_data is None
    assert metadata.size == hub.repos[GGUF_REPO].file("tiny-llama-Q4_0.gguf").size
    assert metadata.etag == hub.repos[GGUF_REPO].file("tiny-llama-Q4_0.gguf").sha256


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Llama-3-8B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("model.IQ2_XXS.gguf", "IQ2_XXS"),
        ("qwen2.5-7b-instruct-fp16-00001-of-00004.gguf", "FP16"),
        ("sub/model-bf16.gguf", "BF16"),
        ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
        ("model-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"),
        ("mystery.gguf", None),
    ],
)
def test_quant_of(name: str, quant: str | None) -> None:
    assert quant_of(name) == quant
