"""Fine-tunable models from the Hub (field report item 24): the ``safetensors`` search filter finds full-weight
transformers repos and leaves GGUF and MLX conversions out; such a repo is one downloadable model (config,
tokenizer, every shard and its index) with a fine-tuning fit verdict; ``pull REPO`` fetches the set as one verified
job into the models folder, and My Models lists it as a folder the Fine-tune page can pick. Real HTTP on the local
Hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import main
from core.app import AppContext
from core.downloads.manager import DownloadState
from core.errors import UnsafePathError
from core.estimate.llama import EngineSettings
from core.hardware import cached_hardware
from core.hub.client import FormatFilter, HubClient, SearchQuery
from core.hub.files import GroupKind, RemoteFile, group_files
from core.hub.fit import fit_group
from core.models.types import ModelFormat
from tests.support.downloads import make_app, make_manager, sha256
from tests.support.hub import LocalHub
from tests.support.hub.catalog import GGUF_REPO, HF_REPO, MLX_REPO

SET = {
    "config.json",
    "generation_config.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
}


@pytest.fixture
def app(tmp_path: Path) -> AppContext:
    context = make_app(tmp_path / "data")
    yield context  # type: ignore[misc]
    context.close()


def test_the_safetensors_filter_finds_full_weights_only(hub: LocalHub) -> None:
    ids = [r.repo_id for r in HubClient().search(SearchQuery(format=FormatFilter.SAFETENSORS, task=None)).results]
    assert HF_REPO in ids
    assert MLX_REPO not in ids and GGUF_REPO not in ids  # conversions are for running, not fine-tuning
    found = next(r for r in HubClient().search(SearchQuery("tunable", task=None)).results if r.repo_id == HF_REPO)
    assert found.formats == ("safetensors",) and found.fine_tunable


def test_a_safetensors_repo_is_one_model_row_with_every_shard(hub: LocalHub) -> None:
    detail = HubClient().model_detail(HF_REPO)
    (model,) = [g for g in detail.groups if g.kind == GroupKind.SAFETENSORS]
    assert {f.path for f in model.files} == SET
    assert model.label == "Safetensors model" and "2 weight file(s)" in model.note
    assert model.size == sum(f.size or 0 for f in detail.files if f.path in SET)
    shards = [f for f in model.files if f.path.endswith(".safetensors")]
    assert all(f.sha256 for f in shards)  # LFS files: verified against the Hub's SHA-256
    others = {g.key for g in detail.groups if g.kind == GroupKind.OTHER}
    assert {"README.md", "original/consolidated.pth"} <= others
    mlx = HubClient().model_detail(MLX_REPO)
    assert [g.kind for g in mlx.groups if g.kind in (GroupKind.MLX, GroupKind.SAFETENSORS)] == [GroupKind.MLX]


def test_hostile_names_never_join_the_set() -> None:
    files = [
        RemoteFile("config.json", 10),
        RemoteFile("../config.json", 10),
        RemoteFile("/etc/model.safetensors", 10),
        RemoteFile("model.safetensors", 100, sha256="ab" * 32),
        RemoteFile("tokenizer.json", 10),
    ]
    groups = group_files(files, ("safetensors",))
    (model,) = [g for g in groups if g.kind == GroupKind.SAFETENSORS]
    assert {f.path for f in model.files} == {"config.json", "model.safetensors", "tokenizer.json"}
    refused = {g.key for g in groups if g.kind == GroupKind.REFUSED}
    assert refused == {"../config.json", "/etc/model.safetensors"}


def test_the_fit_column_says_whether_fine_tuning_fits(hub: LocalHub) -> None:
    detail = HubClient().model_detail(HF_REPO)
    (model,) = [g for g in detail.groups if g.kind == GroupKind.SAFETENSORS]
    fit = fit_group(HF_REPO, detail.commit, model, token=None, hardware=cached_hardware(), settings=EngineSettings())
    assert fit.training is not None, fit.error
    assert fit.fits and fit.training.trainable_parameters > 0
    assert 0 < fit.training.total_bytes < 2 * 1024**3  # a tiny model: the framework's overhead dominates


def test_download_fetches_the_set_verified_and_my_models_lists_it(app: AppContext, hub: LocalHub) -> None:
    manager = make_manager(app)
    from core.library.downloads import follow_downloads

    follow_downloads(app.library, manager)
    item = manager.wait(manager.enqueue(HF_REPO).id, 60)
    assert item.state == DownloadState.DONE, item.message
    folder = app.paths.models_dir / HF_REPO
    assert {p.name for p in folder.iterdir() if not p.name.startswith(".")} == SET  # and its manifest
    for remote in hub.repos[HF_REPO].files:
        if remote.path in SET:
            assert sha256(folder / remote.path) == remote.sha256
    assert not any(app.paths.downloads_dir.rglob("*.part"))
    (entry,) = app.library.list(format=ModelFormat.MLX)  # the folder format the Fine-tune page lists
    assert entry.root == folder and entry.repo_id == HF_REPO and entry.available


def test_a_corrupt_shard_fails_the_whole_set(app: AppContext, hub: LocalHub) -> None:
    hub.faults.corrupt.add(f"{HF_REPO}/model-00002-of-00002.safetensors")
    manager = make_manager(app)
    item = manager.wait(manager.enqueue(HF_REPO).id, 60)
    assert item.state == DownloadState.FAILED and item.error_code == "integrity"
    assert not (app.paths.models_dir / HF_REPO / "model-00002-of-00002.safetensors").exists()


def test_a_name_too_long_in_the_set_is_refused_before_downloading(app: AppContext, hub: LocalHub) -> None:
    detail = HubClient().model_detail(HF_REPO)
    (model,) = [g for g in detail.groups if g.kind == GroupKind.SAFETENSORS]
    long = RemoteFile("model-" + "x" * 300 + ".safetensors", 10, sha256="ab" * 32)
    group = type(model)(model.key, model.label, model.kind, (*model.files, long), note=model.note)
    with pytest.raises(UnsafePathError):
        make_manager(app).enqueue(HF_REPO, group=group, detail=detail)
    assert not any(app.paths.downloads_dir.rglob("*.part"))


def test_pull_of_a_safetensors_repo_downloads_the_set(
    hub: LocalHub, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main.main(["pull", HF_REPO, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["state"] == "done" and result["repo_id"] == HF_REPO
    assert {Path(p).name for p in result["paths"]} == SET
    assert result["library"], result  # listed in My Models
    assert main.main(["search", "--format", "safetensors", "--task", "any", "--json"]) == 0
    assert HF_REPO in {r["repo_id"] for r in json.loads(capsys.readouterr().out)}


def test_a_paused_set_resumes_without_fetching_a_finished_file_again(app: AppContext, hub: LocalHub) -> None:
    files = {f.path: f for f in hub.repos[HF_REPO].files}
    first, second = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    hub.faults.throttle_bps = 150_000  # each shard takes about a second
    manager = make_manager(app)
    item = manager.enqueue(HF_REPO)
    assert hub.faults.wait_until_sent(f"{HF_REPO}/{first}", files[first].size, timeout=30)
    assert hub.faults.wait_until_sent(f"{HF_REPO}/{second}", 20_000, timeout=30)
    manager.pause(item.id)
    assert manager.wait(item.id, 30).state == DownloadState.PAUSED
    hub.faults.throttle_bps = None
    manager.resume(item.id)
    done = manager.wait(item.id, 60)
    assert done.state == DownloadState.DONE, done.message
    assert hub.faults.body_bytes[f"{HF_REPO}/{first}"] == files[first].size  # verified once, never fetched again
    assert hub.file_requests(HF_REPO, second)[-1].range not in (None, "bytes=0-")  # resumed, not restarted
    for path in SET:
        assert sha256(app.paths.models_dir / HF_REPO / path) == files[path].sha256
