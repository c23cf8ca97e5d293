"""Secrets (the Hugging Face token, API keys of served models): kept in the OS keyring (via ``keyring``), each
under its own name. Where the OS offers no secure store, they go to a file readable only by this user
(``secrets.json``, mode 0600, in the app's data folder), and ``warning`` says so plainly for the Settings page and
``hangar token`` to show. Without a data folder (a bare ``SecretStore()``), they live in memory for the session.

The Hugging Face token is checked with ``whoami`` before it is stored; ``HF_TOKEN`` in the environment is used
when nothing is stored. Secrets never go to settings, logs or error messages.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import keyring
import keyring.errors

from core.errors import AuthError, UsageError

if TYPE_CHECKING:
    from core.hub.client import HubClient

logger = logging.getLogger(__name__)

SERVICE = "Hangar"
ACCOUNT = "huggingface-token"
#: The file of the fallback store, in the app's data folder.
SECRETS_FILE = "secrets.json"
NO_KEYRING_WARNING = (
    "No secure keyring is available on this system, so your Hugging Face token is kept for this session only "
    "and you will need to enter it again next time."
)


def file_warning(path: Path) -> str:
    return (
        f"No secure keyring is available on this system, so secrets such as your Hugging Face token are kept in "
        f"{path}, readable only by your user account (permissions 0600) but not encrypted. To keep the token out "
        "of files, set the HF_TOKEN environment variable instead, or install a keyring (GNOME Keyring, KWallet)."
    )


class TokenStorage(enum.StrEnum):
    NONE = "none"
    KEYRING = "keyring"
    FILE = "file"  # the 0600 file in the data folder (no secure backend)
    SESSION = "session"  # in memory only (no secure backend, no data folder)
    ENVIRONMENT = "environment"  # HF_TOKEN in this process's environment, never stored


@dataclass(frozen=True)
class TokenStatus:
    storage: TokenStorage
    user: str | None = None
    warning: str | None = None

    @property
    def has_token(self) -> bool:
        return self.storage != TokenStorage.NONE


def backend_is_secure(backend: Any) -> bool:
    """False for keyring's fail/null backends and anything with no positive priority."""
    module = type(backend).__module__
    if module.startswith(("keyring.backends.fail", "keyring.backends.null")):
        return False
    if module.startswith("keyring.backends.chainer") and not getattr(backend, "backends", None):
        return False
    try:
        return float(getattr(backend, "priority", 0)) > 0
    except Exception:
        return False


class SecretFile:
    """Name → value in a JSON file only its owner can read or write, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("the secrets file %s could not be read (%s)", self.path, type(exc).__name__)
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def write(self, values: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_name(f".{self.path.name}.tmp")
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, even briefly
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(values, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, self.path)
        os.chmod(self.path, 0o600)


class SecretStore:
    _shared: ClassVar[SecretStore | None] = None

    def __init__(self, file: Path | None = None) -> None:
        self._file = SecretFile(file) if file is not None else None
        self._session: dict[str, str] = {}
        self._user: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, file: Path | None = None) -> SecretStore:
        """One per process, so every service of this run sees the same secrets. ``file`` (the app passes its data
        folder's) is where secrets go without a keyring; the app that passes it last is the one in use."""
        if cls._shared is None:
            cls._shared = SecretStore(file)
        elif file is not None:
            cls._shared.use_file(file)
        return cls._shared

    def use_file(self, file: Path) -> None:
        """Keep secrets in ``file`` from now on, where there is no keyring."""
        self._file = SecretFile(file)

    @property
    def secure(self) -> bool:
        return backend_is_secure(keyring.get_keyring())

    @property
    def warning(self) -> str | None:
        if self.secure:
            return None
        return file_warning(self._file.path) if self._file is not None else NO_KEYRING_WARNING

    # -- any secret, by name --------------------------------------------------------------------------------------
    def get(self, name: str) -> str | None:
        with self._lock:
            if name in self._session:
                return self._session[name]
        if self.secure:
            try:
                value = keyring.get_password(SERVICE, name)
            except keyring.errors.KeyringError as exc:
                logger.warning("could not read the keyring: %s", type(exc).__name__)
                value = None
            if value:
                return value
        if self._file is not None:
            return self._file.read().get(name) or None
        return None

    def set(self, name: str, value: str) -> TokenStorage:
        """Keep ``value`` under ``name``: in the keyring, else in the 0600 file, else for this session."""
        if self.secure:
            try:
                keyring.set_password(SERVICE, name, value)
                with self._lock:
                    self._session.pop(name, None)
                return TokenStorage.KEYRING
            except keyring.errors.KeyringError as exc:
                logger.warning("the keyring refused secret %r (%s)", name, type(exc).__name__)
        if self._file is not None:
            with self._lock:
                values = self._file.read()
                values[name] = value
                self._file.write(values)
                self._session.pop(name, None)
            logger.info("secret %r kept in %s (no secure keyring)", name, self._file.path)
            return TokenStorage.FILE
        with self._lock:
            self._session[name] = value
        return TokenStorage.SESSION

    def delete(self, name: str) -> None:
        with self._lock:
            self._session.pop(name, None)
            if self._file is not None:
                values = self._file.read()
                if values.pop(name, None) is not None:
                    self._file.write(values)
        if self.secure:
            try:
                keyring.delete_password(SERVICE, name)
            except keyring.errors.PasswordDeleteError:
                pass
            except keyring.errors.KeyringError as exc:
                logger.warning("could not delete secret %r from the keyring: %s", name, type(exc).__name__)

    def where(self, name: str) -> TokenStorage:
        with self._lock:
            if name in self._session:
                return TokenStorage.SESSION
        if self.secure and self._keyring_value(name):
            return TokenStorage.KEYRING
        if self._file is not None and self._file.read().get(name):
            return TokenStorage.FILE
        return TokenStorage.NONE

    # -- the Hugging Face token -------------------------------------------------------------------------------------
    def get_token(self) -> str | None:
        return self.get(ACCOUNT) or os.environ.get("HF_TOKEN") or None

    def status(self) -> TokenStatus:
        storage = self.where(ACCOUNT)
        if storage == TokenStorage.NONE and os.environ.get("HF_TOKEN"):
            storage = TokenStorage.ENVIRONMENT
        user = self._user if storage != TokenStorage.NONE else None
        return TokenStatus(storage, user, None if storage == TokenStorage.KEYRING else self.warning)

    def set_token(self, token: str, hub: HubClient) -> TokenStatus:
        """Check the token with the Hub, then keep it (see ``set``)."""
        token = token.strip()
        if not token or any(c.isspace() for c in token):
            raise UsageError("That does not look like a Hugging Face token (it is empty or has spaces).")
        user = hub.whoami(token)  # AuthError if refused; the token is not in the message
        storage = self.set(ACCOUNT, token)
        self._user = user
        logger.info("Hugging Face token for %s stored (%s)", user, storage)
        return TokenStatus(storage, user, None if storage == TokenStorage.KEYRING else self.warning)

    def clear(self) -> None:
        self.delete(ACCOUNT)
        self._user = None

    def _keyring_value(self, name: str) -> str | None:
        try:
            return keyring.get_password(SERVICE, name)
        except keyring.errors.KeyringError:
            return None


__all__ = ["AuthError", "SecretStore", "TokenStatus", "TokenStorage", "backend_is_secure"]
