"""A request of the engine host from submission to its final event (the host's bookkeeping, one per request)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from core.engine.protocol import EngineEvent, EngineRequest, LoadRequest, ModelSpec
from core.engine.safemode import safe_steps


@dataclass(eq=False)
class PendingRequest:
    """One request from submission to its final event."""

    request: EngineRequest
    done: threading.Event
    outcome: EngineEvent | None = None
    #: Loads: the model as asked, and the safe-mode step this attempt runs at (0: as asked).
    spec: ModelSpec | None = None
    level: int = 0
    changes: tuple[str, ...] = ()
    reason: str = ""
    #: The level was raised by a crash in this session (so the outcome is worth remembering).
    discovered: bool = False
    #: A safe-mode reload the host made to run this generate again.
    retry_of: PendingRequest | None = None

    @property
    def id(self) -> int:
        return self.request.request_id

    def to_send(self) -> EngineRequest:
        if isinstance(self.request, LoadRequest) and self.spec is not None and self.level:
            options = safe_steps(self.spec.options)[self.level - 1][0]
            return LoadRequest(self.id, replace(self.spec, options=options))
        return self.request
