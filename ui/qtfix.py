"""A work-around for a reference-counting bug of PySide6 6.12 on Python 3.11: ``SignalInstance.emit()`` returns
``True``/``False`` without taking a reference, so every emit from Python drops one reference to that bool.
After a few hundred emits (one per streamed token through the bridge) Python aborts with
"bool_dealloc: deallocating True or False". Python 3.12+ makes the bools immortal, so there the bug is harmless.

``emit(signal, *args)`` emits and gives back the missing reference, only when this PySide build needs it (found
out once by measuring, so a fixed PySide needs no change here).
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal


def _measure_leak() -> bool:
    class _Probe(QObject):
        fired = Signal()

    probe = _Probe()
    probe.fired.connect(lambda: None)
    before = sys.getrefcount(True) + sys.getrefcount(False)
    for _ in range(4):
        probe.fired.emit()
    after = sys.getrefcount(True) + sys.getrefcount(False)
    leaked = before - after
    for _ in range(max(0, leaked)):  # repay what the probe itself took
        _incref(True)
    return leaked >= 4


def _incref(value: object) -> None:
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(value))


_LEAKS = _measure_leak()


def emit(signal: Any, *args: Any) -> None:
    """``signal.emit(*args)``, without the reference leak of affected PySide builds."""
    result = signal.emit(*args)
    if _LEAKS and isinstance(result, bool):
        _incref(result)
