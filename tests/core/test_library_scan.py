"""Scanning other apps' folders (fake app folders laid out as those apps do, holding real tiny GGUF files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import UsageError
from core.library.service import Library
from core.models.types import ImportMode, ModelFormat, Origin
from tests.support.fixtures_library import FakeApps, write_gguf, write_mlx_folder, write_split_set


def _populate(apps: FakeApps, tmp_path: Path) -> Path:
    apps.add_hf_file("bartowski/Tiny-GGUF", "Tiny-Q4_K_M.gguf", lambda p: write_gguf(p, seed=1))
    mlx = write_mlx_folder(tmp_path / "mlx-src")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"):
        source = mlx / name
        apps.add_hf_file("mlx-community/Tiny-4bit", name, lambda p, s=source: p.write_bytes(s.read_bytes()))
    apps.add_lmstudio("lmstudio-community", "Tiny-GGUF", "tiny-Q8_0.gguf", seed=2)
    apps.add_lmstudio("old", "Legacy-GGUF", "legacy.gguf", seed=3, legacy=True)
    apps.add_ollama("tinyllama", "latest", seed=4)
    apps.add_gpt4all("gpt4all-tiny.gguf", seed=5)
    mine = tmp_path / "my-models"
    write_split_set(mine / "nested", "mine-split", parts=2)
    return mine


def test_rescan_finds_every_app_without_copying(library: Library, fake_apps: FakeApps, tmp_path: Path) -> None:
    mine = _populate(fake_apps, tmp_path)
    report = library.rescan(fake_apps.roots(extra=(mine,)))
    assert report.found == 7 and report.added == 7 and not report.problems
    by_source = {}
    for e in library.list():
        assert e.origin == Origin.FOUND and e.available
        by_source.setdefault(e.source, []).append(e)
    hf = {e.name: e for e in by_source["huggingface"]}
    assert hf["Tiny-Q4_K_M"].repo_id == "bartowski/Tiny-GGUF" and hf["Tiny-Q4_K_M"].format == ModelFormat.GGUF
    assert hf["Tiny-4bit"].format == ModelFormat.MLX and hf["Tiny-4bit"].repo_id == "mlx-community/Tiny-4bit"
    assert {e.name for e in by_source["lmstudio"]} == {"tiny-Q8_0", "legacy"}
    assert {e.repo_id for e in by_source["lmstudio"]} == {"lmstudio-community/Tiny-GGUF", "old/Legacy-GGUF"}
    (ollama,) = by_source["ollama"]
    assert ollama.name == "tinyllama:latest" and ollama.root.name.startswith("sha256-")
    assert ollama.metadata.architecture == "llama" and ollama.metadata.has_chat_template
    assert [e.name for e in by_source["gpt4all"]] == ["gpt4all-tiny"]
    assert [e.format for e in by_source["folder"]] == [ModelFormat.GGUF_SPLIT]
    assert not library.models_dir.exists() or not any(library.models_dir.iterdir())  # nothing copied


def test_rescan_reads_only_changed_files_and_drops_vanished_ones(
    library: Library, fake_apps: FakeApps, tmp_path: Path
) -> None:
    _populate(fake_apps, tmp_path)
    roots = fake_apps.roots()
    assert library.rescan(roots).headers_read == 6
    again = library.rescan(roots)
    assert again.headers_read == 0 and again.added == 0 and again.removed == 0
    gpt = library.get("gpt4all-tiny")
    write_gguf(gpt.root, seed=5, context_length=4096)  # the app updated the file in place
    gone = fake_apps.add_lmstudio("old", "Legacy-GGUF", "legacy.gguf", seed=3, legacy=True)
    gone.unlink()
    report = library.rescan(roots)
    assert report.headers_read == 1 and report.removed == 1
    assert library.get(gpt.id).metadata.context_length == 4096 and library.get(gpt.id).name == gpt.name


def test_broken_files_in_app_folders_are_reported_not_added(library: Library, fake_apps: FakeApps) -> None:
    good = fake_apps.add_gpt4all("good.gguf")
    bad = good.with_name("half.gguf")
    bad.write_bytes(good.read_bytes()[:3000])
    report = library.rescan(fake_apps.roots())
    assert [e.name for e in library.list()] == ["good"]
    assert len(report.problems) == 1 and "half.gguf is truncated" in report.problems[0].message


def test_unlinking_a_found_model_keeps_it_hidden_and_its_files(library: Library, fake_apps: FakeApps) -> None:
    path = fake_apps.add_gpt4all("keep.gguf")
    library.rescan(fake_apps.roots())
    result = library.remove("keep")
    assert not result.files_deleted and path.exists()
    assert library.rescan(fake_apps.roots()).added == 0 and library.list() == []


def test_ollama_blobs_are_never_deleted_by_hangar(library: Library, fake_apps: FakeApps) -> None:
    blob = fake_apps.add_ollama("tinyllama", "latest")
    library.rescan(fake_apps.roots())
    with pytest.raises(UsageError, match="ollama rm"):
        library.remove("tinyllama:latest", delete_files=True)
    assert blob.exists() and len(library.list()) == 1


def test_importing_a_copy_of_a_found_model_is_a_duplicate(
    library: Library, fake_apps: FakeApps, tmp_path: Path
) -> None:
    found = fake_apps.add_lmstudio("p", "r", "same.gguf", seed=9)
    library.rescan(fake_apps.roots())
    copy = tmp_path / "Downloads" / "same-renamed.gguf"
    copy.parent.mkdir()
    copy.write_bytes(found.read_bytes())
    report = library.import_paths([copy], ImportMode.COPY)
    assert not report.imported and report.duplicates[0][1].name == "same"


def test_missing_app_folders_are_simply_empty(library: Library, tmp_path: Path) -> None:
    roots = FakeApps(tmp_path / "nobody", tmp_path / "no-cache").roots()
    report = library.rescan(roots)
    assert report.found == 0 and not report.problems


def test_default_roots_follow_the_scan_home_override(
    library: Library, fake_apps: FakeApps, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.library.scan import SCAN_HOME_ENV

    monkeypatch.setenv(SCAN_HOME_ENV, str(fake_apps.home))
    fake_apps.add_gpt4all("via-default.gguf")
    hf = fake_apps.home / ".cache" / "huggingface" / "hub"
    FakeApps(fake_apps.home, hf).add_hf_file("me/x", "x.gguf", lambda p: write_gguf(p, seed=11))
    library.rescan()
    assert {e.name for e in library.list()} == {"via-default", "x"}
