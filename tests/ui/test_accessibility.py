"""Every control a person can reach has a tooltip, and every control without visible text has an accessible name
(what a screen reader says). Walks the real window, the welcome dialog and the import dialog."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QHeaderView,
    QLineEdit,
    QPlainTextEdit,
    QSlider,
    QTextEdit,
    QToolButton,
    QWidget,
)

from ui.app import create_window

#: Pages not checked yet. The chat page is being finished in another branch; empty this set once it lands.
PAGES_NOT_YET_CHECKED: frozenset[str] = frozenset()

INTERACTIVE = (
    QAbstractButton,
    QLineEdit,
    QComboBox,
    QAbstractSpinBox,
    QSlider,
    QAbstractItemView,
    QPlainTextEdit,
    QTextEdit,
)


def _is_qt_internal(widget: QWidget) -> bool:
    """Children Qt builds inside its own widgets: they take their names from their owner."""
    if widget.objectName().startswith("qt_") or isinstance(widget, QHeaderView):
        return True
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QComboBox):  # the popup view and its container
            return True
        if isinstance(parent, QAbstractSpinBox) and isinstance(widget, QLineEdit):
            return True
        if isinstance(parent, QLineEdit) and isinstance(widget, QToolButton):  # the clear button
            return True
        parent = parent.parentWidget()
    return widget.metaObject().className() == "QTableCornerButton"


def _has_visible_text(widget: QWidget) -> bool:
    return isinstance(widget, QAbstractButton) and bool(widget.text().replace("&", "").strip())


def _owner(widget: QWidget) -> str:
    """The nearest Hangar widget class around ``widget`` (``EstimatePanel``, ``InlineMessage``…), to find it."""
    parent = widget.parentWidget()
    while parent is not None:
        if type(parent).__module__.startswith("ui."):
            return type(parent).__name__
        parent = parent.parentWidget()
    return "?"


def _describe(widget: QWidget, where: str) -> str:
    text = widget.text() if isinstance(widget, (QAbstractButton, QLineEdit)) else ""
    if isinstance(widget, QLineEdit) and not text:
        text = widget.placeholderText()
    elif isinstance(widget, QComboBox):
        text = widget.currentText()
    name = f" #{widget.objectName()}" if widget.objectName() else ""
    return f"{widget.metaObject().className()}{name} in {_owner(widget)} on {where}, text={text!r}"


def controls(root: QWidget) -> list[QWidget]:
    """The controls under ``root`` a person can reach, in any state of the page (hidden panes included)."""
    return [w for w in root.findChildren(QWidget) if isinstance(w, INTERACTIVE) and not _is_qt_internal(w)]


def offenders(root: QWidget, where: str) -> list[str]:
    """Descriptions of the controls under ``root`` that lack a tooltip or (without visible text) an accessible name."""
    problems: list[str] = []
    for widget in controls(root):
        missing = []
        if not widget.toolTip().strip():
            missing.append("tooltip")
        if not _has_visible_text(widget) and not widget.accessibleName().strip():
            missing.append("accessible name")
        if missing:
            problems.append(f"{_describe(widget, where)}: no {' and no '.join(missing)}")
    return problems


@pytest.fixture
def window(qtbot, app):  # type: ignore[no-untyped-def]
    win = create_window(app)
    qtbot.addWidget(win)
    win.show()
    return win


def test_every_control_on_every_page_has_a_tooltip_and_a_name(window) -> None:  # type: ignore[no-untyped-def]
    problems: list[str] = []
    checked = 0
    for key, page in window.pages.items():
        if key in PAGES_NOT_YET_CHECKED:
            continue
        window.show_page(key)
        assert controls(page), f"page {key!r} has no controls: is the walk broken?"
        checked += 1
        problems += offenders(page, f"page {key!r}")
    assert checked == len(window.pages) - len(PAGES_NOT_YET_CHECKED & window.pages.keys())
    assert not problems, f"{len(problems)} controls need work:\n" + "\n".join(problems)


def test_the_sidebar_is_named_and_its_items_name_their_shortcuts(window) -> None:  # type: ignore[no-untyped-def]
    assert window.nav.accessibleName()
    for row in range(window.nav.count()):
        assert "(Ctrl+" in window.nav.item(row).toolTip(), window.nav.item(row).text()


def test_the_welcome_dialog_controls_are_described(qtbot, app, window) -> None:  # type: ignore[no-untyped-def]
    from core.estimate.fitting import FitLevel
    from core.hub.suggestions import CATALOGUE, RankedSuggestion
    from ui.welcome import WelcomeDialog

    picks = [RankedSuggestion(CATALOGUE[0], FitLevel.FITS, 20.0), RankedSuggestion(CATALOGUE[1], FitLevel.PARTIAL, 5.0)]
    dialog = WelcomeDialog(app, window.bridge, app.hardware(), picks, parent=window)
    qtbot.addWidget(dialog)
    assert len(controls(dialog)) == 3  # two Download buttons and Open Hangar
    problems = offenders(dialog, "the welcome dialog")
    assert not problems, "\n".join(problems)


def test_the_import_dialog_controls_are_described(qtbot, app, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.devkit.modelgen import write_tiny_gguf
    from ui.widgets.import_dialog import ImportDialog

    library = app.library
    model = write_tiny_gguf(tmp_path / "m.gguf")
    preview = library.preview_import([model, tmp_path / "missing.gguf"])
    dialog = ImportDialog(preview, window)
    qtbot.addWidget(dialog)
    assert len(controls(dialog)) >= 6  # the list, three modes, Import and Cancel
    problems = offenders(dialog, "the import dialog")
    assert not problems, "\n".join(problems)


def test_the_delete_dialog_controls_are_described(qtbot, app, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.devkit.modelgen import write_tiny_gguf
    from core.models.types import ImportMode
    from ui.widgets.delete_dialog import DeleteDialog

    library = app.library
    library.import_paths([write_tiny_gguf(tmp_path / "m.gguf")], ImportMode.LINK)
    (entry,) = library.list()
    dialog = DeleteDialog(entry, library.space_freed_by_delete(entry.id), window)
    qtbot.addWidget(dialog)
    assert len(controls(dialog)) == 3  # also delete the files, Remove, Cancel
    problems = offenders(dialog, "the delete dialog")
    assert not problems, "\n".join(problems)


def test_the_checker_catches_an_undescribed_control(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QPushButton, QVBoxLayout

    root = QWidget()
    qtbot.addWidget(root)
    layout = QVBoxLayout(root)
    bare_input = QLineEdit()
    icon_button = QPushButton()
    icon_button.setToolTip("Delete")
    described = QPushButton("Go")
    described.setToolTip("Start")
    search = QLineEdit()
    search.setClearButtonEnabled(True)
    search.setToolTip("Search")
    search.setAccessibleName("Search")
    combo = QComboBox()
    combo.setToolTip("Pick")
    combo.setAccessibleName("Pick")
    for widget in (bare_input, icon_button, described, search, combo):
        layout.addWidget(widget)
    problems = offenders(root, "test")
    assert len(problems) == 2
    assert problems[0].startswith("QLineEdit in ? on test") and "no tooltip and no accessible name" in problems[0]
    assert problems[1].startswith("QPushButton in ? on test") and problems[1].endswith(": no accessible name")
