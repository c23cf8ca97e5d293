"""My Models' table follows library changes row by row (insert, remove, dataChanged), never with a reset: the
selection and the sort survive an import or a delete elsewhere. Real library, real files, qtmodeltester."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.models.types import ImportMode
from tests.support.fixtures_library import write_gguf
from ui.app import create_window
from ui.widgets.library_table import COL_NAME, LibraryTableModel


@pytest.fixture
def page(qtbot, app):  # type: ignore[no-untyped-def]
    window = create_window(app)
    qtbot.addWidget(window)
    window.show_page("models")
    return window.pages["models"]


def test_library_changes_move_rows_not_the_whole_table(page, qtbot, qtmodeltester, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    library = page.library
    library.import_paths([write_gguf(tmp_path / "alpha.gguf", seed=1)], ImportMode.LINK)
    library.import_paths([write_gguf(tmp_path / "beta.gguf", seed=2)], ImportMode.LINK)
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=5000)
    qtmodeltester.check(page.model)
    signals: list[str] = []
    page.model.modelReset.connect(lambda: signals.append("reset"))
    page.model.rowsInserted.connect(lambda *_: signals.append("inserted"))
    page.model.rowsRemoved.connect(lambda *_: signals.append("removed"))
    page.table.selectRow(0)
    chosen = page.proxy.index(0, COL_NAME).data()

    library.import_paths([write_gguf(tmp_path / "gamma.gguf", seed=3)], ImportMode.LINK)
    qtbot.waitUntil(lambda: page.model.rowCount() == 3, timeout=5000)
    other = next(e for e in library.list() if e.name not in (chosen, "gamma"))
    library.remove(other.id)
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=5000)

    assert "reset" not in signals
    assert signals.count("inserted") == 1 and signals.count("removed") == 1
    selected = page.table.selectionModel().selectedRows(COL_NAME)
    assert [index.data() for index in selected] == [chosen]  # the selection survived both changes
    qtmodeltester.check(page.model)


def test_a_changed_entry_updates_its_row_in_place(qtbot, qtmodeltester, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    library = app.library
    library.import_paths([write_gguf(tmp_path / "alpha.gguf", seed=1)], ImportMode.LINK)
    model = LibraryTableModel()
    model.set_entries(library.list())
    changed: list[int] = []
    model.dataChanged.connect(lambda top, _bottom, _roles: changed.append(top.row()))
    model.modelReset.connect(lambda: changed.append(-1))
    entry = library.list()[0]
    model.set_entries([replace(entry, name="renamed")])
    assert changed == [0]
    assert model.index(0, COL_NAME).data() == "renamed"
    qtmodeltester.check(model)
