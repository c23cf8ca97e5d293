"""The one bridge between core and Qt: core hooks fire on any thread; the bridge re-delivers them on the GUI
thread as a queued signal, so widgets are only ever touched from the thread that owns them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from core.events import EventHook
from ui.qtfix import emit


class Bridge(QObject):
    #: Internal: (callable, args) to run on the GUI thread.
    _deliver = Signal(object, tuple)
    #: A page asks the window to show another page: (page key, payload such as a model id).
    navigate_requested = Signal(str, object)
    #: Short messages for the status bar: (text, milliseconds to show, 0 = until replaced).
    status_message = Signal(str, int)
    #: An error a page could not show in place (rare: most errors are shown inline).
    error_raised = Signal(str, str)  # (message, details)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._disconnects: list[Callable[[], None]] = []
        self._deliver.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def connect_hook(self, hook: EventHook[Any], slot: Callable[..., object]) -> Callable[[], None]:
        """Call ``slot`` on the GUI thread each time ``hook`` fires (from any thread)."""
        disconnect = hook.connect(lambda *args: emit(self._deliver, slot, args))
        self._disconnects.append(disconnect)
        return disconnect

    def call_soon(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the GUI thread (safe to call from any thread)."""
        emit(self._deliver, fn, args)

    def disconnect_all(self) -> None:
        while self._disconnects:
            self._disconnects.pop()()

    @Slot(object, tuple)
    def _run(self, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        fn(*args)
