"""Per-model defaults (context, GPU layers, sampling), set in the window and honoured by API loads too.

Stored in SQLite by library id. A request's own fields (``temperature``, ``max_tokens``, ...) override the
sampling defaults; load options apply when the server loads the model.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from core.chat.store import ChatSettings
from core.store import Store

logger = logging.getLogger(__name__)

SCHEMA = [
    """
    CREATE TABLE model_defaults (
        model_id TEXT PRIMARY KEY,
        context_length INTEGER,
        gpu_layers TEXT,
        sampling TEXT NOT NULL DEFAULT '{}',
        updated_at REAL NOT NULL
    );
    """
]


@dataclass(frozen=True)
class ModelDefaults:
    context_length: int | None = None
    #: "auto", "-1" (all) or a number; None: the app's setting.
    gpu_layers: str | None = None
    sampling: ChatSettings = field(default_factory=ChatSettings)


class ModelDefaultsStore:
    def __init__(self, store: Store) -> None:
        self._store = store
        store.migrate("model_defaults", SCHEMA)

    def get(self, model_id: str) -> ModelDefaults:
        row = self._store.query_one("SELECT * FROM model_defaults WHERE model_id = ?", (model_id,))
        if row is None:
            return ModelDefaults()
        return ModelDefaults(row["context_length"], row["gpu_layers"], ChatSettings.from_json(row["sampling"]))

    def set(self, model_id: str, defaults: ModelDefaults) -> None:
        defaults.sampling.validated()
        self._store.execute(
            "INSERT INTO model_defaults (model_id, context_length, gpu_layers, sampling, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(model_id) DO UPDATE SET context_length = excluded.context_length, "
            "gpu_layers = excluded.gpu_layers, sampling = excluded.sampling, updated_at = excluded.updated_at",
            (model_id, defaults.context_length, defaults.gpu_layers, defaults.sampling.to_json(), time.time()),
        )

    def clear(self, model_id: str) -> None:
        self._store.execute("DELETE FROM model_defaults WHERE model_id = ?", (model_id,))
