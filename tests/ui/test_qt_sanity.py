"""Guards against a Qt binding that corrupts Python's reference counts (PySide6 6.12.0 did, on every emit)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    with_value = Signal(int)
    plain = Signal()


def test_emitting_signals_from_python_keeps_reference_counts_intact(qtbot) -> None:  # type: ignore[no-untyped-def]
    emitter = _Emitter()
    received: list[int] = []
    emitter.with_value.connect(received.append)
    emitter.plain.connect(lambda: None)
    before = sys.getrefcount(True) + sys.getrefcount(False)
    for i in range(200):
        emitter.with_value.emit(i)
        emitter.plain.emit()
    after = sys.getrefcount(True) + sys.getrefcount(False)
    assert len(received) == 200
    # A few references may come and go with the interpreter's own work; a leak per emit would lose hundreds.
    assert abs(after - before) < 20, f"True/False lost {before - after} references in 400 emits"
