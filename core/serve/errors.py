"""API errors in OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``) or Anthropic's
(``{"type": "error", "error": {"type", "message"}}``), from Hangar's error tree."""

from __future__ import annotations

from typing import Any

from core.errors import (
    CancelledError,
    ContextLengthError,
    EngineCrashedError,
    HangarError,
    InsufficientMemoryError,
    ModelFileError,
    NotFoundError,
    UnsupportedModelError,
    UsageError,
)


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param


_STATUS = (
    (ContextLengthError, 400, "invalid_request_error"),
    (NotFoundError, 404, "not_found_error"),
    (UsageError, 400, "invalid_request_error"),
    (UnsupportedModelError, 400, "invalid_request_error"),
    (ModelFileError, 500, "server_error"),
    (InsufficientMemoryError, 503, "server_error"),
    (CancelledError, 499, "cancelled"),
    (EngineCrashedError, 500, "server_error"),
)


def from_hangar(error: HangarError) -> ApiError:
    for cls, status, kind in _STATUS:
        if isinstance(error, cls):
            return ApiError(status, str(error), kind=kind)
    return ApiError(500, str(error), kind="server_error")


_ANTHROPIC_KINDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "request_too_large",
    500: "api_error",
    503: "overloaded_error",
}


def body_for(error: ApiError, *, anthropic: bool) -> dict[str, Any]:
    if anthropic:
        kind = _ANTHROPIC_KINDS.get(error.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": error.message}}
    code = {401: "invalid_api_key", 404: "model_not_found", 413: "request_too_large"}.get(error.status)
    if "context" in error.message and error.status == 400:
        code = "context_length_exceeded"
    return {"error": {"message": error.message, "type": error.kind, "param": error.param, "code": code}}
