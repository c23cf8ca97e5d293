"""A tiny thread-safe observer: core services announce changes without knowing who listens.

The UI's bridge connects to these hooks and re-emits them as Qt signals on the GUI thread; the CLI and tests
connect plain callables.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, ParamSpec

logger = logging.getLogger(__name__)

P = ParamSpec("P")


class EventHook(Generic[P]):
    """Callbacks run on the thread that emits; a failing listener is logged and never breaks the emitter."""

    def __init__(self) -> None:
        self._listeners: list[Callable[P, object]] = []
        self._lock = threading.Lock()

    def connect(self, listener: Callable[P, object]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def disconnect() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return disconnect

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(*args, **kwargs)
            except Exception:
                logger.exception("event listener %r failed", listener)

    def __len__(self) -> int:
        with self._lock:
            return len(self._listeners)
