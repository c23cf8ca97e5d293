"""The server's API key: in the OS keyring (like the Hugging Face token), or for this session only where the OS
has no secure store. The key never goes to settings, logs or the request log."""

from __future__ import annotations

import hmac
import logging
import secrets
import threading

import keyring
import keyring.errors

from core.secrets import SERVICE, backend_is_secure

logger = logging.getLogger(__name__)

ACCOUNT = "serve-api-key"


class ApiKeyStore:
    def __init__(self) -> None:
        self._session: str | None = None
        self._lock = threading.Lock()

    @property
    def secure(self) -> bool:
        return backend_is_secure(keyring.get_keyring())

    def get(self) -> str | None:
        with self._lock:
            if self._session:
                return self._session
        if not self.secure:
            return None
        try:
            return keyring.get_password(SERVICE, ACCOUNT) or None
        except keyring.errors.KeyringError as exc:
            logger.warning("could not read the server key from the keyring: %s", type(exc).__name__)
            return None

    def set(self, key: str) -> bool:
        """Keep ``key``; True when it went to the keyring, False when it is kept for this session only."""
        key = key.strip()
        with self._lock:
            self._session = None
        if self.secure:
            try:
                keyring.set_password(SERVICE, ACCOUNT, key)
                return True
            except keyring.errors.KeyringError as exc:
                reason = type(exc).__name__
                logger.warning("the keyring refused the server key (%s); keeping it for this session", reason)
        with self._lock:
            self._session = key
        return False

    def clear(self) -> None:
        with self._lock:
            self._session = None
        if self.secure:
            try:
                keyring.delete_password(SERVICE, ACCOUNT)
            except keyring.errors.KeyringError:
                pass


def new_key() -> str:
    return "hk-" + secrets.token_urlsafe(24)


def key_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
