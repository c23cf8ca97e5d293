"""The test settings themselves: under this project's pytest configuration a Qt warning fails a test, an
unexpected pass of an xfail fails, an unknown setting fails, and an exception raised in a ``core.events``
listener fails the test that caused it (the hook itself only logs it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def strict(pytester: pytest.Pytester) -> pytest.Pytester:
    """A scratch project with this project's pytest settings and its listener-failure fixture."""
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    lines = ["[pytest]"]
    for key in ("addopts", "xfail_strict", "qt_api", "qt_log_level_fail", "faulthandler_timeout"):
        value = options[key]
        lines.append(f"{key} = {str(value).lower() if isinstance(value, bool) else value}")
    lines.append("qt_log_ignore =\n" + "\n".join(f"    {pattern}" for pattern in options["qt_log_ignore"]))
    lines.append("markers =\n" + "\n".join(f"    {marker}" for marker in options["markers"]))
    pytester.makeini("\n".join(lines))
    pytester.makeconftest("from tests.conftest import _event_listeners_must_not_fail  # noqa: F401\n")
    return pytester


def test_a_qt_warning_fails_the_test(strict: pytest.Pytester) -> None:
    strict.makepyfile(
        """
        from PySide6.QtCore import qWarning

        def test_warns(qtbot):
            qWarning("something is off")

        def test_quiet(qtbot):
            pass
        """
    )
    result = strict.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*something is off*"])


def test_an_unexpected_pass_fails(strict: pytest.Pytester) -> None:
    strict.makepyfile(
        """
        import pytest

        @pytest.mark.xfail(reason="thought broken")
        def test_works():
            pass
        """
    )
    strict.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(failed=1)


def test_an_unknown_marker_fails(strict: pytest.Pytester) -> None:
    strict.makepyfile(
        """
        import pytest

        @pytest.mark.slwo
        def test_typo():
            pass
        """
    )
    result = strict.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret != 0


def test_a_failing_event_listener_fails_the_test_that_caused_it(
    strict: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict.makepyfile(
        """
        from core.events import EventHook

        def test_listener_raises():
            hook = EventHook()
            hook.connect(lambda: 1 / 0)
            hook.emit()  # the hook logs the error and carries on

        def test_listener_fine():
            hook = EventHook()
            seen = []
            hook.connect(lambda: seen.append(1))
            hook.emit()
            assert seen == [1]
        """
    )
    # In a child process: in this one, the failure it logs would fail this test too.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = strict.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)  # the failing test errors at teardown
    result.stdout.fnmatch_lines(["*an event listener raised*", "*ZeroDivisionError*"])


def test_a_result_for_a_deleted_page_is_dropped(qtbot) -> None:  # type: ignore[no-untyped-def]
    """What the strict settings revealed: a fine-tune memory estimate finishing after its page was closed reached
    deleted widgets (and failed whichever test ran next)."""
    import threading

    import shiboken6
    from PySide6.QtCore import QThreadPool
    from PySide6.QtWidgets import QLabel

    from ui.operations import run_in_background

    label = QLabel()
    release = threading.Event()
    delivered: list[object] = []
    run_in_background(
        lambda: release.wait(5), on_success=lambda r: (delivered.append(r), label.setText("x")), owner=label
    )
    label.deleteLater()
    qtbot.waitUntil(lambda: not shiboken6.isValid(label), timeout=2000)
    release.set()
    QThreadPool.globalInstance().waitForDone(5000)
    qtbot.wait(50)
    assert delivered == []
