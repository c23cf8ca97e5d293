"""A vision repository on the local Hub: a pull of a quant fetches the repository's projector too (checked by its
header, not its name), the library lists one vision model, and the estimate counts the projector as its own line,
for a local file and for a Hub file read remotely."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import main
from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.devkit.visiongen import TinyProjectorConfig, write_tiny_mmproj, write_tiny_vision_model
from core.hub.files import GroupKind, RemoteFile, group_files, projector_for, with_projector
from tests.support.hub import LocalHub
from tests.support.hub.model import HubFile, HubRepo

VISION_REPO = "hangar-test/tiny-vision-GGUF"
NAMED_ONLY_REPO = "hangar-test/named-mmproj-GGUF"  # its "mmproj" file is a text model: never paired


@pytest.fixture(scope="module")
def vision_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    folder = tmp_path_factory.mktemp("vision-hub")
    model, projector = write_tiny_vision_model(folder / "f16")
    q8 = write_tiny_gguf(folder / "q8" / "tiny-vision-Q8_0.gguf", TinyModelConfig(weight_type="Q8_0"))
    projector_q8 = write_tiny_mmproj(folder / "q8" / "mmproj-tiny-vision-Q8_0.gguf", TinyProjectorConfig(seed=3))
    hub = LocalHub()
    hub.add(
        HubRepo(
            VISION_REPO,
            files=[
                HubFile("README.md", b"# tiny vision\n"),
                HubFile(model.name, model.read_bytes()),
                HubFile(q8.name, q8.read_bytes()),
                HubFile(projector.name, projector.read_bytes()),
                HubFile(projector_q8.name, projector_q8.read_bytes()),
            ],
            tags=["gguf", "llama", "image-text-to-text"],
            library_name="gguf",
        )
    )
    hub.add(
        HubRepo(
            NAMED_ONLY_REPO,
            files=[
                HubFile("text-Q8_0.gguf", q8.read_bytes()),
                HubFile("mmproj-text-F16.gguf", model.read_bytes()),
            ],
            tags=["gguf", "llama"],
            library_name="gguf",
        )
    )
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture
def endpoint(vision_hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> LocalHub:
    monkeypatch.setenv("HF_ENDPOINT", vision_hub.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return vision_hub


def _remote(*paths: str) -> list[RemoteFile]:
    return [RemoteFile(p, 100) for p in paths]


def test_each_quant_is_paired_with_the_preferred_projector_in_its_folder() -> None:
    groups = group_files(
        _remote(
            "vl-Q4_K_M.gguf",
            "vl-Q8_0.gguf",
            "mmproj-vl-Q8_0.gguf",
            "mmproj-vl-F16.gguf",
            "sub/vl-Q2_K.gguf",
            "README.md",
        )
    )
    quants = {g.key: g for g in groups if g.kind == GroupKind.QUANT}
    paired = projector_for(groups, quants["vl-Q4_K_M.gguf"])
    assert paired is not None and paired.path == "mmproj-vl-F16.gguf"  # unquantized first
    assert projector_for(groups, quants["sub/vl-Q2_K.gguf"]) is None  # would not land next to it
    with_it = with_projector(groups, quants["vl-Q8_0.gguf"])
    assert [f.path for f in with_it.files] == ["vl-Q8_0.gguf", "mmproj-vl-F16.gguf"]
    assert "with its vision projector mmproj-vl-F16.gguf" in with_it.note
    refused = with_projector(groups, quants["vl-Q8_0.gguf"], accept=lambda f: "Q8_0" in f.path)
    assert [f.path for f in refused.files] == ["vl-Q8_0.gguf", "mmproj-vl-Q8_0.gguf"]
    companion = next(g for g in groups if g.kind == GroupKind.COMPANION)
    assert with_projector(groups, companion) == companion


def test_pull_of_a_vision_quant_fetches_its_projector_and_lists_one_model(
    endpoint: LocalHub, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main.main(["pull", f"{VISION_REPO}:tiny-vision-Q8_0.gguf", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    names = sorted(Path(p).name for p in result["paths"])
    assert names == ["mmproj-tiny-vision-F16.gguf", "tiny-vision-Q8_0.gguf"]
    assert result["library"] == ["tiny-vision-Q8_0"]
    assert main.main(["ls", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["capabilities"] == ["vision"] and Path(row["projector"]).name == "mmproj-tiny-vision-F16.gguf"
    assert Path(row["projector"]).parent == Path(row["path"]).parent


def test_a_file_only_named_mmproj_is_not_fetched(
    endpoint: LocalHub, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main.main(["pull", NAMED_ONLY_REPO, "--file", "text-Q8_0.gguf", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [Path(p).name for p in result["paths"]] == ["text-Q8_0.gguf"]


def test_estimate_counts_the_projector_on_its_own_line(
    endpoint: LocalHub, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, projector = write_tiny_vision_model(tmp_path / "local")
    assert main.main(["estimate", str(model), "--ctx", "512", "--no-fit", "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    line = local["breakdown"]["projector"]
    assert line["weights"] > 50_000 and line["compute"] > 10_000 and line["image_size"] == 32
    assert local["total_bytes"] == sum(d["total"] for d in local["breakdown"].values())
    assert any("vision projector" in note for note in local["notes"])

    assert main.main(["estimate", f"{VISION_REPO}:tiny-vision-F16.gguf", "--ctx", "512", "--no-fit", "--json"]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert remote["breakdown"]["projector"]["weights"] == line["weights"]

    text_only = write_tiny_gguf(tmp_path / "text" / "plain.gguf")
    assert main.main(["estimate", str(text_only), "--ctx", "512", "--no-fit", "--json"]) == 0
    assert "projector" not in json.loads(capsys.readouterr().out)["breakdown"]
    assert projector.exists()
