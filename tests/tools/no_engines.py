"""A pytest plugin that hides the engines and Qt, as a machine without them would: ``tests/core`` must pass so.

    python -m pytest -p no:pytest-qt -p tests.tools.no_engines tests/core

Hidden packages are "not installed" (``importlib.util.find_spec`` returns None, importing them raises
ModuleNotFoundError), so Hangar's own checks for a missing engine run as they would for a user.
"""

from __future__ import annotations

import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

HIDDEN = ("PySide6", "shiboken6", "llama_cpp", "mlx", "mlx_lm", "torch", "peft", "transformers", "pytestqt")


class _Hiding:
    """Wraps the path finder and answers "not found" for the hidden packages."""

    def __init__(self, finder: Any) -> None:
        self._finder = finder

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".", 1)[0] in HIDDEN:
            return None
        spec: importlib.machinery.ModuleSpec | None = self._finder.find_spec(fullname, path, target)
        return spec

    def __getattr__(self, name: str) -> Any:
        return getattr(self._finder, name)


def _hide() -> None:
    loaded = [name for name in sys.modules if name.split(".", 1)[0] in HIDDEN]
    if loaded:
        raise RuntimeError(f"already imported, cannot hide: {sorted(loaded)[:5]}")
    sys.meta_path[:] = [_Hiding(f) if f is importlib.machinery.PathFinder else f for f in sys.meta_path]


_hide()


def pytest_addoption(parser: Any, pluginmanager: Any) -> None:
    """pytest-qt is hidden too (run with ``-p no:pytest-qt``): accept its settings so ``--strict-config`` holds."""
    if pluginmanager.has_plugin("pytestqt.plugin") or pluginmanager.has_plugin("pytest-qt"):
        return
    for name in ("qt_api", "qt_log_level_fail", "qt_log_ignore", "qt_default_raising", "qt_no_exception_capture"):
        parser.addini(name, f"(pytest-qt, hidden by {__name__})", type="linelist" if name == "qt_log_ignore" else None)
