"""Vision models in My Models: an ``mmproj*.gguf`` next to a GGUF model is that model's projector — one entry with
a "vision" capability, imported, rescanned and deleted with it — never a model of its own."""

from __future__ import annotations

import json
from pathlib import Path

import main
from core.chat.models import resolve_model, spec_for
from core.devkit.visiongen import TinyProjectorConfig, write_tiny_mmproj
from core.engine.protocol import LoadOptions
from core.library.service import Library
from core.models.detect import recognise
from core.models.types import ImportMode, ModelFormat
from tests.support.fixtures_library import SMALL, write_gguf, write_split_set

PROJECTOR = TinyProjectorConfig(n_embd_text=SMALL.n_embd)


def _vision_folder(folder: Path, *quants: str) -> tuple[list[Path], Path]:
    models = [write_gguf(folder / f"tiny-vl-{q}.gguf", seed=n) for n, q in enumerate(quants or ("Q8_0",))]
    return models, write_tiny_mmproj(folder / "mmproj-tiny-vl-F16.gguf", PROJECTOR)


def test_a_folder_with_a_model_and_its_projector_is_one_vision_model(tmp_path: Path) -> None:
    (model,), projector = _vision_folder(tmp_path / "vl")
    found = recognise([tmp_path / "vl"])
    assert not found.problems
    (candidate,) = found.candidates
    assert candidate.root == model and candidate.files == (model, projector) and candidate.projector == projector
    assert candidate.size_bytes == model.stat().st_size + projector.stat().st_size
    # the model file named alone finds its projector beside it too
    (alone,) = recognise([model]).candidates
    assert alone.projector == projector


def test_a_projector_alone_is_a_clear_problem_not_a_model(tmp_path: Path) -> None:
    projector = write_tiny_mmproj(tmp_path / "only" / "mmproj-x-F16.gguf", PROJECTOR)
    found = recognise([projector])
    assert not found.candidates
    (problem,) = found.problems
    assert problem.message.startswith("mmproj-x-F16.gguf is a vision projector (mmproj), not a model.")


def test_a_file_named_mmproj_that_is_a_model_stays_a_model(tmp_path: Path) -> None:
    odd = write_gguf(tmp_path / "odd" / "mmproj-but-llama.gguf")
    (candidate,) = recognise([odd]).candidates
    assert candidate.root == odd and candidate.projector is None


def test_import_copies_both_lists_one_entry_and_delete_removes_both(library: Library, tmp_path: Path) -> None:
    _vision_folder(tmp_path / "vl")
    report = library.import_paths([tmp_path / "vl"], ImportMode.COPY)
    assert not report.problems
    (entry,) = report.imported
    assert entry.projector is not None and entry.projector.is_file() and entry.capabilities == ("vision",)
    assert entry.projector.parent == entry.root.parent != tmp_path / "vl"  # copied together, into one folder
    listed = entry.to_json()
    assert listed["capabilities"] == ["vision"] and listed["projector"] == str(entry.projector)
    assert [e.name for e in library.list()] == ["tiny-vl-Q8_0"]  # the projector is not a second model
    result = library.remove(entry.id)
    assert result.files_deleted and not entry.root.exists() and not entry.projector.exists()
    assert not entry.root.parent.exists()  # the folder the pair was imported into goes too


def test_two_quants_share_the_projector_and_deleting_one_keeps_it(library: Library, tmp_path: Path) -> None:
    _, projector = _vision_folder(tmp_path / "vl", "Q4_0", "Q8_0")
    report = library.import_paths([tmp_path / "vl"], ImportMode.LINK)
    assert sorted(e.name for e in report.imported) == ["tiny-vl-Q4_0", "tiny-vl-Q8_0"]
    assert {e.projector for e in report.imported} == {projector}
    first, second = report.imported
    library.remove(first.id, delete_files=True)
    assert not first.root.exists() and projector.exists()  # still the other quant's
    library.remove(second.id, delete_files=True)
    assert not projector.exists()


def test_a_split_set_takes_its_projector(tmp_path: Path) -> None:
    parts = write_split_set(tmp_path / "split")
    projector = write_tiny_mmproj(tmp_path / "split" / "mmproj-model-f16.gguf", PROJECTOR)
    (candidate,) = recognise([tmp_path / "split"]).candidates
    assert candidate.format == ModelFormat.GGUF_SPLIT and candidate.files == (*parts, projector)


def test_rescans_of_the_models_folder_keep_one_entry(library: Library, tmp_path: Path) -> None:
    _vision_folder(tmp_path / "vl", "Q4_0", "Q8_0")
    library.import_paths([tmp_path / "vl"], ImportMode.COPY)
    assert len(library.list()) == 2
    report = library.rescan()
    assert report.added == 0 and report.removed == 0 and len(library.list()) == 2
    assert all(e.projector is not None for e in library.list())


def test_chat_resolves_the_projector_for_the_engine(library: Library, tmp_path: Path) -> None:
    (model,), projector = _vision_folder(tmp_path / "vl")
    entry = library.import_paths([tmp_path / "vl"], ImportMode.LINK).imported[0]
    by_name = resolve_model(entry.name, library)
    assert by_name.projector == projector
    assert spec_for(by_name, LoadOptions()).projector == str(projector)
    by_path = resolve_model(str(model))  # a path, without the library
    assert by_path.projector == projector.resolve()
    plain = write_gguf(tmp_path / "plain" / "text.gguf")
    assert spec_for(resolve_model(str(plain)), LoadOptions()).projector is None


def test_import_and_ls_json_show_the_vision_capability(data_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _vision_folder(tmp_path / "vl")
    assert main.main(["import", str(tmp_path / "vl"), "--json"]) == 0
    (imported,) = json.loads(capsys.readouterr().out)["imported"]
    assert imported["capabilities"] == ["vision"]
    assert main.main(["ls", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["capabilities"] == ["vision"] and row["projector"].endswith("mmproj-tiny-vl-F16.gguf")
