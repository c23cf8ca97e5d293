"""My Models on the real window: drag and drop of real files, the import dialog, background copies with
progress and cancel, the table (qtmodeltester), filters, details, actions, delete and rescan."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from core.jobs import JobState
from core.library.service import Library
from core.models.types import ImportMode, Origin
from tests.support.fixtures_library import FakeApps, write_gguf, write_mlx_folder
from ui.app import create_window
from ui.widgets.library_table import COL_NAME, COL_SIZE, LibraryFilterProxy, LibraryTableModel


@pytest.fixture
def window(qtbot, app):  # type: ignore[no-untyped-def]
    win = create_window(app)
    qtbot.addWidget(win)
    win.show()
    page = win.pages["models"]
    qtbot.waitUntil(lambda: page.attached, timeout=5000)
    return win


def _mime(paths: list[Path]) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def _drag_enter(window, mime: QMimeData) -> QDragEnterEvent:  # type: ignore[no-untyped-def]
    event = QDragEnterEvent(
        QPoint(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(window, event)
    return event


def _drop(window, mime: QMimeData) -> QDropEvent:  # type: ignore[no-untyped-def]
    event = QDropEvent(
        QPointF(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(window, event)
    return event


def _open_dialog_by_drop(qtbot, window, paths: list[Path]):  # type: ignore[no-untyped-def]
    page = window.pages["models"]
    mime = _mime(paths)
    with qtbot.waitSignal(page.import_dialog_opened, timeout=10_000) as opened:
        _drag_enter(window, mime)
        _drop(window, mime)
    return opened.args[0]


def test_drag_shows_the_drop_indicator_and_leaving_hides_it(window, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = window.pages["models"]
    model = write_gguf(tmp_path / "x.gguf")
    enter = _drag_enter(window, _mime([model]))
    assert enter.isAccepted()
    assert page.overlay.isVisible() and page.overlay.geometry() == window.rect()
    assert "Drop 1 item" in page.overlay.text
    QApplication.sendEvent(window, QDragLeaveEvent())
    assert not page.overlay.isVisible()


def test_dropping_real_files_imports_them_in_the_background(window, qtbot, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = window.pages["models"]
    window.show_page("discover")
    gguf = write_gguf(tmp_path / "drop" / "tiny-chat.gguf")
    mlx = write_mlx_folder(tmp_path / "drop" / "Qwen-mlx")
    junk = tmp_path / "drop" / "notes.gguf"
    junk.write_text("just some text")
    dialog = _open_dialog_by_drop(qtbot, window, [gguf, mlx, junk])
    assert window.current_page_key() == "models" and not page.overlay.isVisible()
    statuses = dict(dialog.statuses())
    assert statuses["tiny-chat"] == "New" and statuses["Qwen-mlx"] == "New"
    assert statuses["notes.gguf"] == "Not a usable model"
    assert dialog.import_button.text() == "Import 2" and dialog.mode() == ImportMode.COPY
    with qtbot.waitSignal(page.import_finished, timeout=30_000) as finished:
        dialog.import_button.click()
    job = finished.args[0]
    assert job.state == JobState.SUCCEEDED and job.kind == "import"
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=5000)
    assert "Imported 2 models" in page.message.text()
    names = {page.model.entry(r).name: page.model.entry(r) for r in range(2)}
    assert names["tiny-chat"].origin == Origin.IMPORTED and names["tiny-chat"].root.parent == app.paths.models_dir
    assert gguf.exists() and not page.progress_box.isVisible()


def test_dropping_a_model_already_in_the_library(window, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = window.pages["models"]
    original = write_gguf(tmp_path / "orig.gguf", seed=3)
    page.library.import_paths([original], ImportMode.LINK)
    copy = tmp_path / "copy" / "again.gguf"
    copy.parent.mkdir()
    copy.write_bytes(original.read_bytes())
    dialog = _open_dialog_by_drop(qtbot, window, [copy])
    assert dialog.statuses() == [("again", "Already in your library as orig")]
    assert not dialog.import_button.isEnabled()
    dialog.reject()


def test_link_mode_from_the_dialog(window, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = window.pages["models"]
    gguf = write_gguf(tmp_path / "keep-here.gguf", seed=4)
    dialog = _open_dialog_by_drop(qtbot, window, [gguf])
    dialog.findChild(type(dialog.modes.buttons()[0]), "mode-link").click()
    assert dialog.mode() == ImportMode.LINK and "Nothing is copied" in dialog.mode_hint.text()
    with qtbot.waitSignal(page.import_finished, timeout=30_000):
        dialog.import_button.click()
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=5000)
    entry = page.model.entry(0)
    assert entry.origin == Origin.LINKED and entry.root == gguf


def test_cancelling_a_background_copy_leaves_nothing(window, qtbot, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = window.pages["models"]
    big = write_gguf(tmp_path / "big.gguf", n_vocab=20_000, n_embd=256)
    dialog = _open_dialog_by_drop(qtbot, window, [big])

    def cancel_on_first_progress(job) -> None:  # type: ignore[no-untyped-def]
        # Runs on the job's thread between two chunks, like a user's click that lands mid-copy.
        if job.kind == "import" and job.state == JobState.RUNNING and job.progress:
            app.jobs.cancel(job.id)

    app.jobs.changed.connect(cancel_on_first_progress)
    with qtbot.waitSignal(page.import_finished, timeout=30_000) as finished:
        dialog.import_button.click()
        assert page.progress_box.isVisibleTo(page)
    assert finished.args[0].state == JobState.CANCELLED
    assert "nothing was left behind" in page.message.text()
    assert page.model.rowCount() == 0 and list(app.paths.models_dir.iterdir()) == []


def _fill(page, tmp_path: Path) -> dict[str, object]:  # type: ignore[no-untyped-def]
    lib: Library = page.library
    small = write_gguf(tmp_path / "small-llama.gguf", seed=1)
    bigger = write_gguf(tmp_path / "bigger-llama.gguf", seed=2, n_vocab=3000)
    mlx = write_mlx_folder(tmp_path / "qwen-mlx")
    report = lib.import_paths([small, bigger, mlx], ImportMode.LINK)
    return {e.name: e for e in report.imported}


def test_table_model_and_proxy_pass_qtmodeltester(window, qtbot, qtmodeltester, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = window.pages["models"]
    _fill(page, tmp_path)
    qtbot.waitUntil(lambda: page.model.rowCount() == 3, timeout=5000)
    qtmodeltester.check(page.model)
    qtmodeltester.check(page.proxy)
    fresh = LibraryTableModel()
    fresh.set_entries(page.library.list())
    qtmodeltester.check(fresh)
    proxy = LibraryFilterProxy()
    proxy.setSourceModel(fresh)
    proxy.set_text("llama")
    qtmodeltester.check(proxy)


def test_filter_sort_and_details(window, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = window.pages["models"]
    entries = _fill(page, tmp_path)
    qtbot.waitUntil(lambda: page.model.rowCount() == 3, timeout=5000)
    names = lambda: [page.proxy.index(r, COL_NAME).data() for r in range(page.proxy.rowCount())]  # noqa: E731
    assert names() == ["bigger-llama", "qwen-mlx", "small-llama"]
    page.table.sortByColumn(COL_SIZE, Qt.SortOrder.AscendingOrder)
    sizes = [page.proxy.index(r, COL_SIZE).data(page.proxy.sortRole()) for r in range(3)]
    assert sizes == sorted(sizes)
    page.search.setText("llama")
    assert sorted(names()) == ["bigger-llama", "small-llama"]
    page.search.setText("")
    page.format_filter.setCurrentIndex(page.format_filter.findData("mlx"))
    assert names() == ["qwen-mlx"]
    page.format_filter.setCurrentIndex(0)

    assert page.select(entries["qwen-mlx"].id)
    values = {k: v.text() for k, v in page.details.values.items()}
    assert values["Architecture"] == "qwen2" and values["Quantization"] == "4-bit"
    assert values["Context length"] == "32,768 tokens" and values["Licence"] == "mit"
    assert values["Chat template"] == "yes" and values["Origin"] == "Linked in place"
    assert page.finetune_button.isEnabled() and page.chat_button.isEnabled()
    assert page.reveal_target() == entries["qwen-mlx"].root

    assert page.select(entries["small-llama"].id)
    assert page.details.title.text() == "small-llama" and not page.finetune_button.isEnabled()
    assert page.reveal_target() == tmp_path
    with qtbot.waitSignal(page.chat_requested) as chat:
        page.chat_button.click()
    assert chat.args == [entries["small-llama"].id] and window.current_page_key() == "chat"


def test_delete_confirms_with_space_freed(window, qtbot, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = window.pages["models"]
    copied = page.library.import_paths([write_gguf(tmp_path / "gone.gguf", seed=7)], ImportMode.COPY).imported[0]
    linked = page.library.import_paths([write_gguf(tmp_path / "stays.gguf", seed=8)], ImportMode.LINK).imported[0]
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=5000)

    page.select(copied.id)
    page.delete_button.click()
    dialog = page.delete_dialog
    assert "freeing" in dialog.message.text() and not dialog.also_delete.isVisibleTo(dialog)
    dialog.confirm_button.click()
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=5000)
    assert not copied.root.exists() and "freed" in page.message.text()

    page.select(linked.id)
    page.delete_button.click()
    dialog = page.delete_dialog
    assert "stay where they are" in dialog.message.text() and dialog.also_delete.isVisibleTo(dialog)
    dialog.confirm_button.click()
    qtbot.waitUntil(lambda: page.model.rowCount() == 0, timeout=5000)
    assert linked.root.exists() and page.content.currentWidget() is page.empty


def test_rescan_shows_other_apps_models(window, qtbot, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from core.library.scan import SCAN_HOME_ENV

    page = window.pages["models"]
    apps = FakeApps(tmp_path / "home", tmp_path / "home" / ".cache" / "huggingface" / "hub")
    apps.add_lmstudio("pub", "Repo-GGUF", "found-it.gguf")
    apps.add_ollama("tinyllama", "latest", seed=2)
    monkeypatch.setenv(SCAN_HOME_ENV, str(apps.home))
    with qtbot.waitSignal(page.scan_finished, timeout=10_000):
        page.rescan_button.click()
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=5000)
    origins = sorted(page.model.index(r, 7).data() for r in range(2))
    assert origins == ["LM Studio", "Ollama"]
    assert "Found in LM Studio" in page.proxy.index(0, 0).data(Qt.ItemDataRole.ToolTipRole)


def test_open_with_payload_imports(window, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = window.pages["models"]
    gguf = write_gguf(tmp_path / "opened.gguf", seed=9)
    with qtbot.waitSignal(page.import_dialog_opened, timeout=10_000) as opened:
        window.show_page("models", [str(gguf)])
    assert opened.args[0].statuses() == [("opened", "New")]
    opened.args[0].reject()


def test_details_show_the_fit_estimate(window, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = window.pages["models"]
    entry = page.library.import_paths([write_gguf(tmp_path / "est.gguf", seed=12)], ImportMode.LINK).imported[0]
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=5000)
    with qtbot.waitSignal(page.estimate_ready, timeout=20_000) as ready:
        page.select(entry.id)
    assert ready.args == [entry.id] and page.estimate.isVisibleTo(page)
    assert page.estimate.header is not None
    assert page.estimate.verdict.text() != "Choose a model to see whether it fits."


def test_added_scan_folder_is_saved_and_scanned(window, qtbot, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = window.pages["models"]
    folder = tmp_path / "my-stash"
    write_gguf(folder / "stashed.gguf", seed=13)
    with qtbot.waitSignal(page.scan_finished, timeout=10_000):
        page.add_scan_folder(folder)
    assert app.settings.current.scan_folders == (str(folder),)
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=5000)
    entry = page.model.entry(0)
    assert entry.name == "stashed" and entry.origin == Origin.FOUND and entry.source == "folder"


def test_every_validation_case_is_explained_in_the_dialog(window, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.support.fixtures_library import write_split_set

    page = window.pages["models"]
    drop = tmp_path / "bad"
    cut = write_gguf(drop / "cut.gguf")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    renamed = drop / "photo.gguf"
    renamed.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    parts = write_split_set(drop / "set", "half-set", parts=3)
    parts[2].unlink()
    no_weights = write_mlx_folder(drop / "mlx-empty", weights=False)
    dialog = _open_dialog_by_drop(qtbot, window, [cut, renamed, parts[0], no_weights])
    rows = {
        dialog.items.topLevelItem(i).text(0): dialog.items.topLevelItem(i).text(3)
        for i in range(dialog.items.topLevelItemCount())
    }
    assert "cut.gguf is truncated" in rows["cut.gguf"]
    assert "photo.gguf is not a GGUF model" in rows["photo.gguf"]
    assert "part 3 of 3 is missing" in rows["half-set-00001-of-00003.gguf"]
    assert "no .safetensors weights" in rows["mlx-empty"]
    assert not dialog.import_button.isEnabled() and page.library.list() == []
    dialog.reject()


def test_fit_column_judges_each_model_against_this_machine(window, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.devkit.modelgen import LLAMA_8B_SHAPE, write_sparse_gguf
    from ui.widgets.library_table import COL_FIT

    page = window.pages["models"]
    huge = write_sparse_gguf(tmp_path / "huge-70b.gguf", LLAMA_8B_SHAPE.with_(n_layer=32 * 100, name="huge"))
    tiny = write_gguf(tmp_path / "tiny.gguf", seed=14)
    page.library.import_paths([huge, tiny], ImportMode.LINK)
    qtbot.waitUntil(lambda: page.model.rowCount() == 2 and page.model.hardware is not None, timeout=20_000)
    fit = {page.model.entry(r).name: page.model.index(r, COL_FIT).data() for r in range(2)}
    assert fit == {"tiny": "Fits", "huge-70b": "Too large"}


def test_a_finished_download_appears_in_my_models(window, qtbot, app, hub) -> None:  # type: ignore[no-untyped-def]
    from core.downloads.manager import DownloadState
    from tests.support.hub.catalog import GGUF_REPO

    page = window.pages["models"]
    manager = app.downloads
    item = manager.wait(manager.enqueue(GGUF_REPO, quant="Q8_0").id, 30)
    assert item.state == DownloadState.DONE
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=5000)
    entry = page.model.entry(0)
    assert entry.origin == Origin.DOWNLOADED and entry.repo_id == GGUF_REPO and entry.root == item.paths[0]


def test_a_file_opened_from_the_finder_shows_the_import_dialog(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """macOS delivers a double-clicked .gguf as a FileOpen event to the application."""
    from PySide6.QtGui import QFileOpenEvent

    from core.devkit.modelgen import write_tiny_gguf

    model = write_tiny_gguf(tmp_path / "finder.gguf")
    page = window.pages["models"]
    with qtbot.waitSignal(page.import_dialog_opened, timeout=10_000) as opened:
        QApplication.sendEvent(QApplication.instance(), QFileOpenEvent(str(model)))
    assert window.current_page_key() == "models"
    dialog = opened.args[0]
    dialog.reject()
