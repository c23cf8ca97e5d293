"""The library index and import: real tiny GGUF files, split sets and MLX folders, real SQLite, real copies."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.errors import CancelledError, NotFoundError, UsageError
from core.jobs import CancelToken, JobState
from core.library.service import Library
from core.models.types import ImportMode, ModelFormat, Origin
from tests.support.fixtures_library import write_adapter_folder, write_gguf, write_mlx_folder, write_split_set


def test_import_copy_indexes_metadata_and_leaves_the_source(library: Library, tmp_path: Path) -> None:
    source = write_gguf(tmp_path / "in" / "tiny-Q8.gguf", weight_type="Q8_0")
    report = library.import_paths([source], ImportMode.COPY)
    assert not report.problems and not report.duplicates
    (entry,) = report.imported
    assert entry.name == "tiny-Q8" and entry.format == ModelFormat.GGUF and entry.origin == Origin.IMPORTED
    assert entry.root.parent == library.models_dir and entry.root.read_bytes() == source.read_bytes()
    meta = entry.metadata
    assert meta.architecture == "llama" and meta.context_length == 2048 and meta.has_chat_template
    assert meta.quant == "Q8_0" and meta.parameter_count and meta.parameter_count > 10_000
    assert entry.size_bytes == source.stat().st_size and source.exists()
    assert entry.engine == "llama" and entry.load_path == entry.root
    assert [e.id for e in library.list()] == [entry.id]
    assert not [p for p in library.models_dir.iterdir() if p.name.startswith(".")]


def test_the_index_survives_a_restart(app, tmp_path: Path) -> None:
    first = Library(app.store, app.paths, app.settings)
    entry = first.import_paths([write_gguf(tmp_path / "a.gguf")], ImportMode.LINK).imported[0]
    second = Library(app.store, app.paths, app.settings)
    assert second.get(entry.id) == entry and second.get("A") == entry  # by id, by name in any case


def test_move_and_link(library: Library, tmp_path: Path) -> None:
    moved_src = write_gguf(tmp_path / "m.gguf", seed=1)
    linked_src = write_gguf(tmp_path / "l.gguf", seed=2)
    moved = library.import_paths([moved_src], ImportMode.MOVE).imported[0]
    linked = library.import_paths([linked_src], ImportMode.LINK).imported[0]
    assert not moved_src.exists() and moved.root.is_file() and moved.origin == Origin.IMPORTED
    assert linked.root == linked_src.absolute() and linked.origin == Origin.LINKED


def test_duplicates_are_not_imported_twice(library: Library, tmp_path: Path) -> None:
    original = write_gguf(tmp_path / "one.gguf", seed=3)
    renamed = tmp_path / "other" / "renamed.gguf"
    renamed.parent.mkdir()
    renamed.write_bytes(original.read_bytes())
    different = write_gguf(tmp_path / "two.gguf", seed=4)  # same size, different weights
    assert different.stat().st_size == original.stat().st_size
    first = library.import_paths([original], ImportMode.LINK).imported[0]
    report = library.import_paths([renamed, different], ImportMode.COPY)
    assert [(p, e.id) for p, e in report.duplicates] == [(renamed, first.id)]
    assert [e.name for e in report.imported] == ["two"]
    assert sorted(p.name for p in library.models_dir.iterdir()) == ["two.gguf"]


def test_split_set_imports_as_one_model_from_any_part(library: Library, tmp_path: Path) -> None:
    parts = write_split_set(tmp_path / "dl", "big-model", parts=3)
    report = library.import_paths([parts[1]], ImportMode.COPY)
    (entry,) = report.imported
    assert entry.format == ModelFormat.GGUF_SPLIT and entry.name == "big-model" and len(entry.files) == 3
    assert entry.root.name == "big-model-00001-of-00003.gguf" and all(f.exists() for f in entry.files)
    assert entry.size_bytes == sum(p.stat().st_size for p in parts)
    assert entry.metadata.context_length == 8192 and entry.metadata.license == "apache-2.0"
    assert entry.metadata.quant == "Q8_0" and entry.metadata.has_chat_template


def test_mlx_folder_and_folder_of_several_models(library: Library, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    write_mlx_folder(bundle / "Qwen-mini-4bit")
    write_gguf(bundle / "a.gguf", seed=5)
    write_split_set(bundle / "sub", "s", parts=2)
    (bundle / "notes.txt").write_text("not a model")
    report = library.import_paths([bundle], ImportMode.COPY)
    assert not report.problems
    by_name = {e.name: e for e in report.imported}
    assert set(by_name) == {"Qwen-mini-4bit", "a", "s"}
    mlx = by_name["Qwen-mini-4bit"]
    assert mlx.format == ModelFormat.MLX and mlx.engine == "mlx" and mlx.root.is_dir()
    meta = mlx.metadata
    assert meta.architecture == "qwen2" and meta.quant == "4-bit" and meta.context_length == 32768
    assert meta.parameter_count == 128 * 64 + 64 and meta.license == "mit" and meta.has_chat_template


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: _truncate(write_gguf(d / "cut.gguf"), 0.6), "cut.gguf is truncated"),
        (lambda d: _write(d / "fake.gguf", b"PK\x03\x04" + b"x" * 200), "not a GGUF model, although it is named .gguf"),
        (
            lambda d: _write(d / "ptr.gguf", b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n"),
            "Git LFS pointer",
        ),
        (lambda d: _write(d / "empty.gguf", b""), "is empty"),
        (lambda d: _drop_part(write_split_set(d, "set", parts=3), 2), "part 2 of 3 is missing"),
        (lambda d: write_mlx_folder(d / "noweights", weights=False), "has a config.json but no .safetensors weights"),
        (lambda d: write_mlx_folder(d / "notok", tokenizer=False), "has no tokenizer"),
        (lambda d: _write(d / "weights.safetensors", b"\0" * 16), "drop the whole folder"),
    ],
    ids=[
        "truncated",
        "renamed-zip",
        "lfs-pointer",
        "empty",
        "split-missing-part",
        "mlx-no-weights",
        "mlx-no-tokenizer",
        "lone-safetensors",
    ],
)
def test_validation_messages_and_nothing_is_left_behind(library: Library, tmp_path: Path, make, expected: str) -> None:
    target = make(tmp_path / "src")
    report = library.import_paths([target], ImportMode.COPY)
    assert not report.imported and len(report.problems) == 1
    assert expected in report.problems[0].message
    assert library.list() == []
    assert not library.models_dir.exists() or not any(library.models_dir.iterdir())


def test_cancelled_copy_leaves_nothing(library: Library, tmp_path: Path) -> None:
    source = write_gguf(tmp_path / "c.gguf", n_vocab=20_000, n_embd=256)  # several 8 MiB chunks
    assert source.stat().st_size > 16 * 1024 * 1024
    token = CancelToken()
    seen: list[int] = []

    def progress(done: int, total: int, message: str) -> None:
        seen.append(done)
        token.cancel()  # after the first chunk

    with pytest.raises(CancelledError):
        library.import_paths([source], ImportMode.COPY, progress=progress, token=token)
    assert len(seen) == 1 and library.list() == [] and list(library.models_dir.iterdir()) == []


def test_background_import_job_reports_progress(app, library: Library, tmp_path: Path) -> None:
    source = write_gguf(tmp_path / "bg.gguf", n_vocab=20_000, n_embd=256)
    progress: list[float] = []
    done = threading.Event()

    def on_change(job) -> None:
        if job.kind == "import" and job.progress is not None:
            progress.append(job.progress)
        if job.state.finished:
            done.set()

    app.jobs.changed.connect(on_change)
    job_id = library.submit_import(app.jobs, [source], ImportMode.COPY)
    job = app.jobs.wait(job_id, timeout=60)
    assert job.state == JobState.SUCCEEDED and job.kind == "import"
    assert job.result and job.result["imported"][0]["name"] == "bg"
    assert len(progress) >= 3 and progress == sorted(progress)
    assert library.get("bg").origin == Origin.IMPORTED


def test_remove_deletes_owned_files_and_unlinks_linked_ones(library: Library, tmp_path: Path) -> None:
    copied = library.import_paths([write_gguf(tmp_path / "own.gguf", seed=6)], ImportMode.COPY).imported[0]
    linked_src = write_gguf(tmp_path / "theirs.gguf", seed=7)
    library.import_paths([linked_src], ImportMode.LINK)
    freed = library.space_freed_by_delete("own")
    result = library.remove("own")
    assert result.files_deleted and result.freed_bytes == freed > 0 and not copied.root.exists()
    result = library.remove("theirs")
    assert not result.files_deleted and linked_src.exists()
    assert library.list() == []
    with pytest.raises(NotFoundError):
        library.get("own")


def test_resolve_by_name_path_or_prefix(library: Library, tmp_path: Path) -> None:
    a = library.import_paths([write_gguf(tmp_path / "alpha-7b.gguf", seed=8)], ImportMode.LINK).imported[0]
    library.import_paths([write_gguf(tmp_path / "alpha-13b.gguf", seed=9)], ImportMode.LINK)
    assert library.resolve("alpha-7b") == a and library.resolve(str(a.root)) == a
    with pytest.raises(UsageError, match="matches several models"):
        library.resolve("alpha")
    loose = write_gguf(tmp_path / "elsewhere" / "loose.gguf", seed=10)
    transient = library.resolve(str(loose))
    assert transient.id == "" and transient.root == loose.absolute() and len(library.list()) == 2


def test_adapters_link_to_their_base(library: Library, tmp_path: Path) -> None:
    base = library.import_paths([write_gguf(tmp_path / "tiny-llama.gguf")], ImportMode.LINK).imported[0]
    adapter = library.register_adapter(write_adapter_folder(tmp_path / "my-lora"), base.id)
    assert adapter.format == ModelFormat.LORA and adapter.base_model_id == base.id
    assert adapter.metadata.base_model == "tiny-llama" and adapter.metadata.parameter_count == 256
    assert library.adapters_of(base.id) == [adapter]
    library.remove(base.id)
    assert library.get(adapter.id).base_model_id is None


def test_add_downloaded_records_the_repo(library: Library, tmp_path: Path) -> None:
    path = write_gguf(library.models_dir / "dl.gguf")
    entry = library.add_downloaded([path], repo_id="me/tiny-GGUF")
    assert entry.origin == Origin.DOWNLOADED and entry.repo_id == "me/tiny-GGUF"
    assert library.add_downloaded([path], repo_id="me/tiny-GGUF") == entry  # idempotent


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def _drop_part(parts: list[Path], number: int) -> Path:
    parts[number - 1].unlink()
    return parts[0].parent


def test_preview_sorts_new_duplicates_and_problems_without_copying(library: Library, tmp_path: Path) -> None:
    known = write_gguf(tmp_path / "known.gguf", seed=12)
    library.import_paths([known], ImportMode.LINK)
    fresh = write_gguf(tmp_path / "fresh.gguf", seed=13)
    bad = _write(tmp_path / "bad.gguf", b"nope")
    preview = library.preview_import([known, fresh, bad])
    assert [c.name for c in preview.new] == ["fresh"] and preview.total_bytes == fresh.stat().st_size
    assert [(c.name, e.name) for c, e in preview.duplicates] == [("known", "known")]
    assert len(preview.problems) == 1 and "bad.gguf is not a GGUF model" in preview.problems[0].message
    assert len(library.list()) == 1


def test_add_downloaded_split_sets_and_mlx_files(library: Library) -> None:
    parts = write_split_set(library.models_dir / "org--repo", "big", parts=2)
    split = library.add_downloaded(parts, repo_id="org/repo-GGUF")
    assert split.format == ModelFormat.GGUF_SPLIT and split.files == tuple(parts)
    folder = write_mlx_folder(library.models_dir / "mlx-community--tiny")
    mlx = library.add_downloaded(sorted(folder.iterdir()), repo_id="mlx-community/tiny")
    assert mlx.format == ModelFormat.MLX and mlx.root == folder and mlx.repo_id == "mlx-community/tiny"


def test_move_of_folders_and_split_sets(library: Library, tmp_path: Path) -> None:
    folder = write_mlx_folder(tmp_path / "src" / "mlx-move")
    parts = write_split_set(tmp_path / "src" / "parts", "moved-set", parts=2)
    report = library.import_paths([folder, parts[0]], ImportMode.MOVE)
    assert not report.problems
    by_name = {e.name: e for e in report.imported}
    assert not folder.exists() and by_name["mlx-move"].root == library.models_dir / "mlx-move"
    assert all(not p.exists() for p in parts) and all(f.exists() for f in by_name["moved-set"].files)
    assert by_name["moved-set"].root.parent == library.models_dir / "moved-set"


def test_leftovers_of_a_crashed_import_are_cleaned_but_live_copies_are_not(library: Library) -> None:
    import os
    import time

    from core.library.importing import TEMP_PREFIX, clean_leftovers

    library.models_dir.mkdir(parents=True, exist_ok=True)
    crashed = library.models_dir / f"{TEMP_PREFIX}dead-model.gguf"
    crashed.write_bytes(b"GGUF half")
    old = time.time() - 3600
    os.utime(crashed, (old, old))
    copying = library.models_dir / f"{TEMP_PREFIX}live-model.gguf"
    copying.write_bytes(b"GGUF growing")
    assert clean_leftovers(library.models_dir) == 1
    assert not crashed.exists() and copying.exists()


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "read-write"])
def test_copies_are_exact_with_either_copy_path(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: bool
) -> None:
    import os

    if not kernel_copy:
        monkeypatch.delattr(os, "copy_file_range", raising=False)  # as on macOS and Windows
    source = write_gguf(tmp_path / "exact.gguf", n_vocab=20_000, n_embd=256)
    progress: list[int] = []
    entry = library.import_paths([source], progress=lambda done, total, _m: progress.append(done)).imported[0]
    assert entry.root.read_bytes() == source.read_bytes()
    assert len(progress) >= 3 and progress[-1] == source.stat().st_size
