"""One exception tree for Hangar. Every message is written for the person using the app: what went wrong and
what they can do about it. The UI shows ``str(error)``; tracebacks go to the log and "copy details"."""

from __future__ import annotations


class HangarError(Exception):
    """Base of every error Hangar raises on purpose. ``str()`` is a complete, user-facing sentence."""

    #: A short label for the kind of problem, used by the CLI's ``--json`` output and by the UI.
    code = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class UsageError(HangarError):
    """The request itself is wrong (a bad argument, an unknown name)."""

    code = "usage"


class NotFoundError(HangarError):
    """A model, file, repository, job or conversation that was asked for does not exist."""

    code = "not_found"


class SettingsError(HangarError):
    code = "settings"


class StoreError(HangarError):
    """The app's database could not be opened or migrated."""

    code = "store"


class ModelFileError(HangarError):
    """A model file is unreadable, truncated, not a model, or hostile. Raised before a native library sees it."""

    code = "model_file"


class UnsupportedModelError(HangarError):
    """The model is valid but this engine cannot run it (an unknown architecture, say)."""

    code = "unsupported_model"


class InsufficientMemoryError(HangarError):
    code = "insufficient_memory"


class NetworkError(HangarError):
    """The Hub or another server could not be reached, or answered with an error."""

    code = "network"


class AuthError(NetworkError):
    """A gated or private repository needs a token, or the token was refused."""

    code = "auth"


class DiskFullError(HangarError):
    code = "disk_full"


class IntegrityError(HangarError):
    """A downloaded or imported file does not match its expected checksum or size."""

    code = "integrity"


class UnsafePathError(HangarError):
    """A file name from outside (the network, an archive) would escape the folder it belongs in."""

    code = "unsafe_path"


class EngineError(HangarError):
    """The engine failed to load a model or to generate."""

    code = "engine"


class EngineCrashedError(EngineError):
    """The engine's process ended unexpectedly (a native abort, a segfault, or the system killed it)."""

    code = "engine_crashed"


class ContextLengthError(EngineError):
    """The prompt does not fit in the context the model was loaded with; the message says by how much."""

    code = "context_length"


class CancelledError(HangarError):
    """The user cancelled the operation. Not a failure; callers usually show nothing."""

    code = "cancelled"

    def __init__(self, message: str = "Cancelled.") -> None:
        super().__init__(message)


class JobError(HangarError):
    code = "job"


class DatasetError(HangarError):
    """A training dataset is missing, unreadable or has bad rows. ``issues`` lists every bad row and line."""

    code = "dataset"

    def __init__(self, message: str, *, hint: str | None = None, issues: object = ()) -> None:
        super().__init__(message, hint=hint)
        self.issues = list(issues)  # type: ignore[call-overload]


class FinetuneError(HangarError):
    """A fine-tune could not start, failed while training, or its result could not be exported."""

    code = "finetune"


def error_from_code(code: str, message: str) -> HangarError:
    """Rebuild the error a child process reported (by its ``code``) so callers can catch it by type."""
    for cls in _all_subclasses(HangarError):
        if cls.code == code:
            error = cls.__new__(cls)
            HangarError.__init__(error, message)
            return error
    return HangarError(message) if code == HangarError.code else EngineError(message)


def _all_subclasses(cls: type[HangarError]) -> list[type[HangarError]]:
    found: list[type[HangarError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found
