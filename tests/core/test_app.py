"""The one owner of the services (``core.app.AppContext``): one library and one download manager per app, a
finished download enters the library with no page open, and the models folder has one owner that the chat model
picker and the download manager read when they need it (after "Move models" included)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from core.app import AppContext
from core.downloads.manager import DownloadState
from core.models.types import ImportMode, Origin
from tests.support.downloads import make_app
from tests.support.fixtures_library import write_gguf
from tests.support.hub import LocalHub
from tests.support.hub.catalog import BIGGER_REPO, GGUF_REPO


@pytest.fixture
def own_app(tmp_path: Path):  # -> Iterator[AppContext]
    context = make_app(tmp_path / "data")
    yield context
    context.close()


def test_every_service_has_one_owner_and_no_module_level_locator(own_app: AppContext) -> None:
    assert own_app.library is own_app.library
    assert own_app.downloads is own_app.downloads
    assert own_app.finetune.jobs is own_app.jobs
    for module, name in (("core.library.service", "Library"), ("core.downloads.manager", None)):
        loaded = importlib.import_module(module)
        owner = getattr(loaded, name) if name else loaded
        assert not hasattr(owner, "for_app"), module
    assert "_download_manager" not in own_app.__dict__


def test_two_threads_asking_at_once_get_one_service(tmp_path: Path) -> None:
    import threading

    for trial in range(3):
        context = make_app(tmp_path / f"data{trial}")
        barrier = threading.Barrier(4)
        got: list[object] = []

        def ask(context: AppContext = context, barrier: threading.Barrier = barrier, got: list[object] = got) -> None:
            barrier.wait()
            got.append(context.downloads)

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 4 and all(g is got[0] for g in got)
        context.close()


def test_a_finished_download_enters_the_library_with_no_page_open(own_app: AppContext, hub: LocalHub) -> None:
    item = own_app.downloads.wait(own_app.downloads.enqueue(GGUF_REPO, quant="Q8_0").id, 30)
    assert item.state == DownloadState.DONE
    (entry,) = own_app.library.list()
    assert entry.origin == Origin.DOWNLOADED and entry.repo_id == GGUF_REPO and entry.root == item.paths[0]


def test_the_models_folder_has_one_owner_that_follows_settings(own_app: AppContext, tmp_path: Path) -> None:
    assert own_app.models_dir == own_app.paths.models_dir == own_app.library.models_dir
    elsewhere = tmp_path / "elsewhere"
    own_app.settings.update(models_dir=str(elsewhere))
    assert own_app.models_dir == elsewhere == own_app.library.models_dir == own_app.downloads.models_dir


def test_the_chat_model_picker_looks_in_the_models_folder_set_in_settings(own_app: AppContext, tmp_path: Path) -> None:
    moved = tmp_path / "moved-models"
    model = write_gguf(moved / "org" / "repo" / "picked.gguf")
    own_app.settings.update(models_dir=str(moved))
    paths = {choice.path for choice in own_app.chat.choices()}
    assert model in paths


def test_a_paused_download_resumed_after_moving_the_models_folder_installs_in_the_new_one(
    own_app: AppContext, hub: LocalHub, tmp_path: Path
) -> None:
    write_gguf(tmp_path / "src" / "keep.gguf")
    own_app.library.import_paths([tmp_path / "src" / "keep.gguf"], ImportMode.COPY)
    manager = own_app.downloads
    hub.faults.throttle_bps = 3_000_000
    item = manager.enqueue(BIGGER_REPO)
    assert hub.faults.wait_until_sent(f"{BIGGER_REPO}/small-llama-F32.gguf", 1_000_000)
    manager.pause(item.id)
    assert manager.wait(item.id, 10).state == DownloadState.PAUSED
    hub.faults.throttle_bps = None

    new_dir = tmp_path / "new-models"
    own_app.move_models(new_dir)
    manager.resume(item.id)
    done = manager.wait(item.id, 30)
    assert done.state == DownloadState.DONE
    assert all(p.is_relative_to(new_dir.resolve()) and p.exists() for p in done.paths), done.paths
    assert not (own_app.paths.models_dir / BIGGER_REPO).exists()
    assert {e.name for e in own_app.library.list()} >= {"keep", "small-llama-F32"}


def test_rescan_brings_back_hangars_own_models_after_the_database_is_lost(
    tmp_path: Path, hub: LocalHub, fake_apps: object
) -> None:
    data = tmp_path / "data"
    first = make_app(data)
    downloaded = first.downloads.wait(first.downloads.enqueue(GGUF_REPO, quant="Q8_0").id, 30)
    write_gguf(tmp_path / "src" / "copied.gguf", seed=3)
    first.library.import_paths([tmp_path / "src" / "copied.gguf"], ImportMode.COPY)
    before = {e.name: e for e in first.library.list()}
    first.close()
    database = first.paths.database_file
    for leftover in database.parent.glob(database.name + "*"):
        leftover.unlink()

    second = make_app(data)
    try:
        assert second.library.list() == []
        report = second.library.rescan(fake_apps.roots())  # type: ignore[attr-defined]
        after = {e.name: e for e in second.library.list()}
        assert after.keys() == before.keys() and report.added == 2
        q8 = after[downloaded.paths[0].stem]
        assert q8.origin == Origin.DOWNLOADED and q8.repo_id == GGUF_REPO and q8.root == downloaded.paths[0]
        assert after["copied"].origin == Origin.IMPORTED and after["copied"].root == before["copied"].root
        assert second.library.rescan(fake_apps.roots()).added == 0  # type: ignore[attr-defined]
    finally:
        second.close()


ROOT = Path(__file__).resolve().parents[2]
#: Private attributes a module sets on objects it made itself (a log handler's mark, argparse's chosen command).
_OWN_MARKS = {"_hangar", "_module"}


def _modules(*bases: str) -> list[Path]:
    found: list[Path] = []
    for base in bases:
        path = ROOT / base
        found += [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))
    return found


def test_no_private_names_cross_modules() -> None:
    import ast

    crossings = []
    for path in _modules("core", "ui/cli", "main.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                crossings += [f"{path.name}: import {a.name}" for a in node.names if _private(a.name)]
            elif isinstance(node, ast.Attribute) and _private(node.attr) and not _own(node):
                crossings.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert crossings == []


def _own(node: object) -> bool:
    import ast

    assert isinstance(node, ast.Attribute)
    mine = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
    return mine or node.attr in _OWN_MARKS


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_the_library_does_not_import_the_app_and_scanning_does_not_import_the_library() -> None:
    import ast

    def imports(module: str) -> set[str]:
        tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
        names: set[str] = set()
        for node in ast.walk(tree):  # every import, TYPE_CHECKING ones included: a cycle is a cycle
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names

    assert not {"core.app", "core.library.service"} & imports("core.library.scan")
    for module in ("core.library.service", "core.library.move", "core.library.downloads", "core.downloads.manager"):
        assert "core.app" not in imports(module), module


def test_a_model_removed_with_its_files_kept_stays_removed_after_a_rescan(
    own_app: AppContext, tmp_path: Path, fake_apps: object
) -> None:
    source = write_gguf(tmp_path / "src" / "kept.gguf")
    (entry,) = own_app.library.import_paths([source], ImportMode.COPY).imported
    own_app.library.remove(entry.id, delete_files=False)
    assert entry.root.exists()
    assert own_app.library.rescan(fake_apps.roots()).added == 0  # type: ignore[attr-defined]
    assert own_app.library.list() == []
    (again,) = own_app.library.import_paths([entry.root], ImportMode.LINK).imported  # chosen again: back
    assert again.root == entry.root
