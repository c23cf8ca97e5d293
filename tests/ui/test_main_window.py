from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

from ui.app import create_window
from ui.error_dialog import ErrorDialog
from ui.main_window import PAGES


@pytest.fixture
def window(qtbot, app):  # type: ignore[no-untyped-def]
    win = create_window(app)
    qtbot.addWidget(win)
    win.show()
    return win


def test_every_page_is_reachable_from_the_sidebar(window) -> None:  # type: ignore[no-untyped-def]
    for row, (key, label, *_rest) in enumerate(PAGES):
        window.nav.setCurrentRow(row)
        assert window.current_page_key() == key
        assert window.current_page() is window.pages[key] and window.stack.currentWidget().widget() is window.pages[key]
        assert window.nav.item(row).text() == label
        assert window.nav.item(row).toolTip()


def test_navigation_request_from_a_page_switches_pages(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.bridge.navigate_requested.emit("chat", None)
    assert window.current_page_key() == "chat"


def test_window_state_is_restored(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    first = create_window(app)
    qtbot.addWidget(first)
    first.show()
    first.show_page("downloads")
    first.close()
    assert app.paths.window_state_file.exists()
    second = create_window(app)
    qtbot.addWidget(second)
    second.show()
    assert second.current_page_key() == "downloads"
    assert second.saveGeometry().size() > 0


def test_status_bar_counts_running_jobs(window, qtbot, app) -> None:  # type: ignore[no-untyped-def]
    import threading

    release = threading.Event()
    job_id = app.jobs.submit("demo", "Waiting job", lambda ctx: release.wait(10) and None)
    qtbot.waitUntil(lambda: window.jobs_label.text() == "1 job running", timeout=5000)
    release.set()
    app.jobs.wait(job_id, 5)
    qtbot.waitUntil(lambda: window.jobs_label.text() == "No jobs running", timeout=5000)


def test_core_events_from_worker_threads_arrive_on_the_gui_thread(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    import threading

    from PySide6.QtCore import QThread

    from core.events import EventHook

    hook: EventHook[[int]] = EventHook()
    seen: list[tuple[int, bool]] = []
    gui_thread = QThread.currentThread()
    window.bridge.connect_hook(hook, lambda value: seen.append((value, QThread.currentThread() is gui_thread)))
    thread = threading.Thread(target=hook.emit, args=(7,))
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: seen == [(7, True)], timeout=2000)


def test_theme_change_is_saved_and_applied(window, qtbot, app) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QApplication

    settings_page = window.pages["settings"]
    settings_page.theme.setCurrentIndex(settings_page.theme.findData("dark"))
    assert app.settings.current.theme == "dark"
    assert QApplication.instance().palette().window().color().name() == "#1c1d22"
    settings_page.theme.setCurrentIndex(settings_page.theme.findData("light"))
    assert QApplication.instance().palette().window().color().name() == "#f6f7f9"


def test_invalid_setting_is_explained_in_place(window, qtbot, app) -> None:  # type: ignore[no-untyped-def]
    page = window.pages["settings"]
    page.gpu_layers.setCurrentText("lots")
    page.gpu_layers.lineEdit().editingFinished.emit()
    assert page.error.isVisibleTo(page)
    assert "GPU layers" in page.error.text()
    assert app.settings.current.gpu_layers == "auto"


def test_drop_goes_to_the_registered_handler(window, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    received: list[list[Path]] = []
    window.set_drop_handler(lambda paths: all(p.suffix == ".gguf" for p in paths), received.append)
    model = tmp_path / "a.gguf"
    model.write_bytes(b"GGUF")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(model))])
    event = QDropEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    assert received == [[model]]


def test_error_dialog_copies_details(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtGui import QGuiApplication

    dialog = ErrorDialog("The model file is truncated.", "Traceback: boom")
    qtbot.addWidget(dialog)
    dialog.copy_button.click()
    copied = QGuiApplication.clipboard().text()
    assert "The model file is truncated." in copied and "Traceback: boom" in copied
    assert not dialog.details.isVisible()
    dialog.show()
    dialog.toggle_button.click()
    assert dialog.details.isVisible()


def test_uncaught_exception_shows_a_dialog_instead_of_dying(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    import sys

    from PySide6.QtWidgets import QApplication

    try:
        raise RuntimeError("kaboom")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    qtbot.waitUntil(
        lambda: any(
            isinstance(w, ErrorDialog) and "kaboom" in w.message_label.text()
            for w in QApplication.topLevelWidgets()
            if w.isVisible()
        ),
        timeout=3000,
    )
    for w in QApplication.topLevelWidgets():
        if isinstance(w, ErrorDialog):
            w.close()


def test_changing_the_models_folder_moves_hangars_models(window, qtbot, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.devkit.modelgen import write_tiny_gguf
    from core.models.types import ImportMode

    library = app.library
    library.import_paths([write_tiny_gguf(tmp_path / "src" / "m.gguf")], ImportMode.COPY)
    page = window.pages["settings"]
    target = tmp_path / "bigdisk" / "models"
    page.change_models_dir(target, ask=False)
    qtbot.waitUntil(lambda: page.browse.isEnabled(), timeout=20_000)
    assert app.settings.current.models_dir == str(target.resolve())
    assert page.models_dir.text() == str(target.resolve())
    (entry,) = library.list()
    assert entry.available and entry.root.is_relative_to(target.resolve())


def test_a_models_folder_inside_the_old_one_is_refused_in_place(window, app) -> None:  # type: ignore[no-untyped-def]
    page = window.pages["settings"]
    page.change_models_dir(app.paths.models_dir / "inner", ask=False)
    assert page.error.isVisibleTo(page) and "inside" in page.error.text()
