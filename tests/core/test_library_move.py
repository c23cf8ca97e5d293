"""Moving the models folder: Hangar's copies move, the library follows, linked models stay put."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import main
from core.errors import UsageError
from core.library.move import plan_move
from core.library.service import Library
from core.models.types import ImportMode, Origin
from tests.support.fixtures_library import write_gguf, write_mlx_folder, write_split_set


@pytest.fixture
def library(app) -> Library:  # type: ignore[no-untyped-def]
    return app.library


def test_models_move_and_the_library_follows(app, library: Library, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside"
    single = write_gguf(outside / "single.gguf")
    split = write_split_set(outside / "split")
    mlx = write_mlx_folder(outside / "mlx-model")
    linked = write_gguf(outside / "linked.gguf", seed=9)
    library.import_paths([single, split[0], mlx], ImportMode.COPY)
    library.import_paths([linked], ImportMode.LINK)
    before = {e.name: e for e in library.list()}
    old_dir = library.models_dir
    new_dir = tmp_path / "elsewhere" / "models"

    plan = plan_move(library, new_dir)
    assert {e.name for e in plan.entries} == {n for n, e in before.items() if e.origin != Origin.LINKED}
    report = app.move_models(new_dir)

    assert app.settings.current.models_dir == str(new_dir.resolve())
    assert library.models_dir == new_dir.resolve()
    after = {e.name: e for e in library.list()}
    assert after.keys() == before.keys()
    for name, entry in after.items():
        assert entry.available, name
        if before[name].origin == Origin.LINKED:
            assert entry.root == before[name].root  # linked models stay where they are
        else:
            assert entry.root.is_relative_to(new_dir.resolve())
            assert not before[name].root.exists()
    assert sorted(report.moved) == sorted(e.name for e in plan.entries)
    assert not any(old_dir.iterdir())
    assert linked.exists()


def test_refuses_a_folder_inside_the_old_one(library: Library) -> None:
    with pytest.raises(UsageError, match="inside"):
        plan_move(library, library.models_dir / "sub")
    with pytest.raises(UsageError, match="already"):
        plan_move(library, library.models_dir)


def test_cli_moves_models(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = write_gguf(tmp_path / "in" / "m.gguf")
    assert main.main(["import", str(model), "--copy", "--json"]) == 0
    capsys.readouterr()
    target = tmp_path / "new-models"
    assert main.main(["move-models", str(target), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["models_dir"] == str(target.resolve()) and len(result["moved"]) == 1
    assert main.main(["ls", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert all(Path(p).is_relative_to(target.resolve()) for p in listed[0]["files"])
    assert listed[0]["available"]
    assert main.main(["paths", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"] == str(target.resolve())  # where models are now
