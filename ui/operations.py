"""Background work for the UI (after Anki's operations): a widget never runs slow work itself; it starts a task
with success and failure handlers, which run back on the GUI thread."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ui.qtfix import emit

logger = logging.getLogger(__name__)

_live: set[_Relay] = set()  # keep relays alive until their task reports


class _Relay(QObject):
    succeeded = Signal(object)
    failed = Signal(object, str)


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self._fn = fn
        self._relay = relay

    def run(self) -> None:
        try:
            result = self._fn()
        except Exception as exc:
            emit(self._relay.failed, exc, traceback.format_exc())
        else:
            emit(self._relay.succeeded, result)


def run_in_background(
    fn: Callable[[], Any],
    *,
    on_success: Callable[[Any], object] | None = None,
    on_failure: Callable[[Exception], object] | None = None,
    pool: QThreadPool | None = None,
    owner: QObject | None = None,
) -> None:
    """Run ``fn()`` on a worker thread; then ``on_success(result)`` or ``on_failure(error)`` on the GUI thread.

    Without ``on_failure``, the error is logged and shown by the global error hook. When ``owner`` (by default the
    object a bound-method callback belongs to) is deleted before the task ends — a page closed while its estimate
    ran — the result is dropped instead of reaching deleted widgets.
    """
    if owner is None:
        bound = getattr(on_success, "__self__", None)
        owner = bound if isinstance(bound, QObject) else None
    relay = _Relay()
    _live.add(relay)

    def gone() -> bool:
        return owner is not None and not shiboken6.isValid(owner)

    def done_ok(result: object) -> None:
        _live.discard(relay)
        if on_success is not None and not gone():
            on_success(result)

    def done_failed(error: Exception, details: str) -> None:
        _live.discard(relay)
        if gone():
            logger.debug("dropped the failure of a task whose owner is gone: %s", error)
        elif on_failure is not None:
            on_failure(error)
        else:
            logger.error("background task failed:\n%s", details)
            from ui.error_dialog import report_error

            report_error(str(error), details)

    relay.succeeded.connect(done_ok)
    relay.failed.connect(done_failed)
    (pool or QThreadPool.globalInstance()).start(_Task(fn, relay))
