"""The one generation-parameter type: what a conversation saves as its settings and what an engine is asked to do.

Its defaults are the app's defaults everywhere (chat page, CLI, server, benchmarks). Conversions happen at the edges
only: ``to_json``/``from_json`` for the store, ``schema()`` for an engine building a grammar.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

from core.errors import UsageError

logger = logging.getLogger(__name__)

#: Fields that belong to one request, not to a conversation's saved settings.
PER_REQUEST = ("continue_last", "ignore_eos", "logprobs", "top_logprobs")


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    #: "text", "json" (any JSON object) or "json_schema" (with ``json_schema``).
    response_format: str = "text"
    #: A JSON Schema as JSON text (a dict passed here is turned into text, so the value stays hashable).
    json_schema: str = ""
    #: Continue the last assistant message instead of starting a new one.
    continue_last: bool = False
    #: Keep generating past end-of-sequence tokens (benchmarks and tests).
    ignore_eos: bool = False
    #: OpenAI-style penalties (0 = off), applied by engines that have them.
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    #: Report each token's log-probability (``TokenLogprob`` events) with this many alternatives (engines that can).
    logprobs: bool = False
    top_logprobs: int = 0

    def __post_init__(self) -> None:
        schema: Any = self.json_schema
        if schema is None:
            object.__setattr__(self, "json_schema", "")
        elif not isinstance(schema, str):
            object.__setattr__(self, "json_schema", json.dumps(schema))
        if not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))

    def validated(self) -> GenerationParams:
        if not 0.0 <= self.temperature <= 5.0:
            raise UsageError("Temperature must be between 0 and 5.")
        if not 0.0 < self.top_p <= 1.0:
            raise UsageError("Top-p must be greater than 0 and at most 1.")
        if self.top_k < 0 or not 0.0 <= self.min_p <= 1.0:
            raise UsageError("Top-k must be 0 or more and min-p between 0 and 1.")
        if not 0.5 <= self.repeat_penalty <= 2.5:
            raise UsageError("The repeat penalty must be between 0.5 and 2.5.")
        if self.max_tokens < 1:
            raise UsageError("Max tokens must be at least 1.")
        if self.response_format not in ("text", "json", "json_schema"):
            raise UsageError("The response format must be text, json or json_schema.")
        if self.response_format == "json_schema":
            self.schema()
        return self

    def schema(self) -> dict[str, Any] | None:
        """The JSON Schema as a dict (None unless the format is ``json_schema``)."""
        if self.response_format != "json_schema":
            return None
        if not self.json_schema.strip():
            raise UsageError("JSON-schema mode needs a schema.")
        try:
            schema = json.loads(self.json_schema)
        except json.JSONDecodeError as exc:
            raise UsageError(f"The JSON schema is not valid JSON: {exc}") from exc
        if not isinstance(schema, dict):
            raise UsageError("The JSON schema must be a JSON object.")
        return schema

    def to_json(self) -> str:
        """The saved form (a conversation's settings): the per-request fields are left out."""
        values = asdict(self)
        for name in PER_REQUEST:
            values.pop(name)
        return json.dumps(values)

    @classmethod
    def from_json(cls, text: str) -> GenerationParams:
        try:
            raw = json.loads(text or "{}")
        except json.JSONDecodeError:
            logger.warning("damaged generation settings %r; using defaults", text[:80])
            return cls()
        if not isinstance(raw, dict):
            return cls()
        known = {f.name for f in fields(cls)} - set(PER_REQUEST)
        values: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items() if k in known}
        try:
            return cls(**values)
        except TypeError:
            return cls()
