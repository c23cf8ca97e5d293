"""PySide6 6.12 on Python 3.11 drops a reference to True/False on every ``Signal.emit()`` from Python; after a few
hundred streamed tokens through the bridge the interpreter aborts. ``ui.qtfix.emit`` repays it; the bridge and
background operations use it."""

from __future__ import annotations

import sys
import threading

from PySide6.QtCore import QObject, Signal

from core.events import EventHook
from ui.bridge import Bridge
from ui.qtfix import emit


class _Source(QObject):
    fired = Signal(object)


def _bools() -> int:
    return sys.getrefcount(True) + sys.getrefcount(False)


def test_emit_keeps_the_bools_alive(qtbot) -> None:  # type: ignore[no-untyped-def]
    source = _Source()
    seen: list[int] = []
    source.fired.connect(seen.append)
    before = _bools()
    for i in range(300):
        emit(source.fired, i)
    assert seen == list(range(300))
    assert abs(_bools() - before) < 10  # without the repayment: 300 references fewer


def test_bridge_streams_thousands_of_events(qtbot) -> None:  # type: ignore[no-untyped-def]
    bridge = Bridge()
    hook: EventHook[[int]] = EventHook()
    seen: list[int] = []
    bridge.connect_hook(hook, seen.append)
    before = _bools()
    worker = threading.Thread(target=lambda: [hook.emit(i) for i in range(300)])
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: len(seen) == 300, timeout=5000)
    assert seen == list(range(300))
    assert abs(_bools() - before) < 10
