"""The Hugging Face token: kept only in the OS keyring (via ``keyring``), checked with ``whoami`` before it is
stored. Where the OS offers no secure store, the token lives in memory for this session only and ``warning`` says
so, for the Settings page to show. The token never goes to settings, logs or error messages.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import keyring
import keyring.errors

from core.errors import AuthError, UsageError

if TYPE_CHECKING:
    from core.hub.client import HubClient

logger = logging.getLogger(__name__)

SERVICE = "Hangar"
ACCOUNT = "huggingface-token"
NO_KEYRING_WARNING = (
    "No secure keyring is available on this system, so your Hugging Face token is kept for this session only "
    "and you will need to enter it again next time."
)


class TokenStorage(enum.StrEnum):
    NONE = "none"
    KEYRING = "keyring"
    SESSION = "session"  # in memory only (no secure backend)
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


class SecretStore:
    _shared: ClassVar[SecretStore | None] = None

    def __init__(self) -> None:
        self._session_token: str | None = None
        self._user: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def shared(cls) -> SecretStore:
        """One per process, so a session-only token is seen by every service of this run."""
        if cls._shared is None:
            cls._shared = SecretStore()
        return cls._shared

    @property
    def secure(self) -> bool:
        return backend_is_secure(keyring.get_keyring())

    @property
    def warning(self) -> str | None:
        return None if self.secure else NO_KEYRING_WARNING

    def get_token(self) -> str | None:
        with self._lock:
            if self._session_token:
                return self._session_token
        if self.secure:
            try:
                token = keyring.get_password(SERVICE, ACCOUNT)
            except keyring.errors.KeyringError as exc:
                logger.warning("could not read the keyring: %s", type(exc).__name__)
                token = None
            if token:
                return token
        return os.environ.get("HF_TOKEN") or None

    def status(self) -> TokenStatus:
        with self._lock:
            if self._session_token:
                return TokenStatus(TokenStorage.SESSION, self._user, self.warning)
        if self.secure and self._keyring_token():
            return TokenStatus(TokenStorage.KEYRING, self._user, None)
        if os.environ.get("HF_TOKEN"):
            return TokenStatus(TokenStorage.ENVIRONMENT, self._user, self.warning)
        return TokenStatus(TokenStorage.NONE, None, self.warning)

    def set_token(self, token: str, hub: HubClient) -> TokenStatus:
        """Check the token with the Hub, then keep it: in the keyring, or for this session without one."""
        token = token.strip()
        if not token or any(c.isspace() for c in token):
            raise UsageError("That does not look like a Hugging Face token (it is empty or has spaces).")
        user = hub.whoami(token)  # AuthError if refused; the token is not in the message
        if self.secure:
            try:
                keyring.set_password(SERVICE, ACCOUNT, token)
                with self._lock:
                    self._session_token, self._user = None, user
                logger.info("Hugging Face token for %s stored in the keyring", user)
                return TokenStatus(TokenStorage.KEYRING, user)
            except keyring.errors.KeyringError as exc:
                logger.warning("the keyring refused the token (%s); keeping it for this session", type(exc).__name__)
        with self._lock:
            self._session_token, self._user = token, user
        logger.info("Hugging Face token for %s kept for this session only (no secure keyring)", user)
        return TokenStatus(TokenStorage.SESSION, user, NO_KEYRING_WARNING)

    def clear(self) -> None:
        with self._lock:
            self._session_token, self._user = None, None
        if self.secure:
            try:
                keyring.delete_password(SERVICE, ACCOUNT)
            except keyring.errors.PasswordDeleteError:
                pass
            except keyring.errors.KeyringError as exc:
                logger.warning("could not delete the token from the keyring: %s", type(exc).__name__)

    def _keyring_token(self) -> str | None:
        try:
            return keyring.get_password(SERVICE, ACCOUNT)
        except keyring.errors.KeyringError:
            return None


__all__ = ["AuthError", "SecretStore", "TokenStatus", "TokenStorage", "backend_is_secure"]
