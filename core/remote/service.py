"""Saved remote servers (SQLite) and how a chat names one: ``NAME`` (the server's default model) or
``NAME:MODEL``. Probing happens here, off any GUI thread; every failure is one line that names the server."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from core.errors import NetworkError, NotFoundError, UsageError
from core.events import EventHook
from core.remote.http import normalise_url
from core.remote.probe import probe
from core.remote.types import ProbeResult, RemoteServer, RemoteTarget
from core.store import Store

logger = logging.getLogger(__name__)

MIGRATIONS = [
    """
    CREATE TABLE remotes (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        api_key_env TEXT,
        key_in_keyring INTEGER NOT NULL DEFAULT 0,
        timeout REAL NOT NULL DEFAULT 30,
        created_at REAL NOT NULL
    );
    """
]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


@dataclass(frozen=True)
class RemoteStatus:
    server: RemoteServer
    probe: ProbeResult


class KeyStore:
    """Where API keys of remote servers are kept: the OS keyring (``core.secrets``' service name), never settings."""

    def __init__(self, get: Callable[[str], str | None], put: Callable[[str, str], None], drop: Callable[[str], None]):
        self.get, self.put, self.drop = get, put, drop


def keyring_keys() -> KeyStore | None:
    """API keys in the OS keyring under Hangar's service name; None where the system has no secure keyring."""
    import keyring
    import keyring.errors

    from core.secrets import SERVICE, backend_is_secure

    if not backend_is_secure(keyring.get_keyring()):
        return None

    def drop(name: str) -> None:
        try:
            keyring.delete_password(SERVICE, name)
        except keyring.errors.KeyringError:
            logger.warning("could not delete a remote server's key from the keyring")

    return KeyStore(
        lambda name: keyring.get_password(SERVICE, name), lambda n, v: keyring.set_password(SERVICE, n, v), drop
    )


class RemoteService:
    def __init__(self, store: Store, keys: KeyStore | None = None) -> None:
        self._store = store
        self._keys = keys
        self._lock = threading.Lock()
        store.migrate("remotes", MIGRATIONS)
        #: A server was added or removed.
        self.changed: EventHook[[]] = EventHook()

    # -- saved servers ------------------------------------------------------------------------------------------
    def saved(self) -> list[RemoteServer]:
        rows = self._store.query("SELECT * FROM remotes ORDER BY name COLLATE NOCASE")
        return [_server(row) for row in rows]

    def get(self, name: str) -> RemoteServer:
        row = self._store.query_one("SELECT * FROM remotes WHERE name = ? COLLATE NOCASE", (name,))
        if row is None:
            known = ", ".join(s.name for s in self.saved()) or "none yet"
            raise NotFoundError(
                f"No remote server called {name!r} (saved: {known}).", hint="Add one: remote add NAME URL"
            )
        return _server(row)

    def find(self, name: str) -> RemoteServer | None:
        try:
            return self.get(name)
        except NotFoundError:
            return None

    def add(
        self,
        name: str,
        url: str,
        *,
        api_key_env: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        check: bool = True,
    ) -> RemoteStatus:
        """Save a server after checking that it answers (unless ``check`` is False)."""
        if not _NAME.match(name or ""):
            raise UsageError(
                f"{name!r} is not a usable name: use up to 40 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit."
            )
        if api_key_env is not None and not _ENV.match(api_key_env):
            raise UsageError(f"{api_key_env!r} is not an environment variable name.")
        if api_key and self._keys is None:
            raise UsageError("No key store is available to keep an API key; use --api-key-env instead.")
        if not 1 <= timeout <= 3600:
            raise UsageError("The timeout must be between 1 and 3600 seconds.")
        base = normalise_url(url)
        server = RemoteServer(name, base, api_key_env=api_key_env, key_in_keyring=bool(api_key), timeout=timeout)
        key = api_key or server.api_key()
        if api_key_env and not key:
            logger.info("remote %s: $%s is not set in this environment", name, api_key_env)
        result = probe(base, api_key=key, timeout=min(timeout, 15.0), label=f"{name} ({base})")
        if check and not result.answered:
            raise NetworkError(f"Not added: {result.error}")
        with self._lock:
            if self.find(name) is not None:
                raise UsageError(f"A remote server called {name!r} exists already; remove it first.")
            if api_key and self._keys is not None:
                self._keys.put(_key_name(name), api_key)
            self._store.execute(
                "INSERT INTO remotes (name, url, api_key_env, key_in_keyring, timeout, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, base, api_key_env, int(bool(api_key)), float(timeout), time.time()),
            )
        self.changed.emit()
        return RemoteStatus(server, result)

    def remove(self, name: str) -> RemoteServer:
        server = self.get(name)
        self._store.execute("DELETE FROM remotes WHERE name = ?", (server.name,))
        if server.key_in_keyring and self._keys is not None:
            self._keys.drop(_key_name(server.name))
        self.changed.emit()
        return server

    # -- what they offer ----------------------------------------------------------------------------------------
    def key_of(self, server: RemoteServer) -> str | None:
        return server.api_key(lambda name: self._keys.get(_key_name(name)) if self._keys else None)

    def probe(self, server: RemoteServer, *, timeout: float | None = None) -> ProbeResult:
        return probe(
            server.url,
            api_key=self.key_of(server),
            timeout=min(timeout or server.timeout, server.timeout),
            label=f"{server.name} ({server.url})",
        )

    def statuses(self, *, timeout: float | None = None) -> list[RemoteStatus]:
        """Every saved server with what it answered, probed in parallel (the slowest bounds the wait)."""
        servers = self.saved()
        if not servers:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(servers)), thread_name_prefix="remote-probe") as pool:
            results = list(pool.map(lambda s: self.probe(s, timeout=timeout), servers))
        return [RemoteStatus(s, r) for s, r in zip(servers, results, strict=True)]

    # -- chat targets -------------------------------------------------------------------------------------------
    def split_name(self, text: str) -> tuple[RemoteServer, str | None] | None:
        """``NAME`` or ``NAME:MODEL`` naming a saved server → (server, model or None); None if no server matches.

        Model names may contain ':' themselves (Ollama's ``llama3:8b``), so only the first ':' separates."""
        name, _, model = text.partition(":")
        server = self.find(name) if _NAME.match(name) else None
        if server is None:
            return None
        return server, (model or None)

    def target(self, server: RemoteServer, model: str | None) -> RemoteTarget:
        """Where a chat with ``model`` (or the server's default model) on ``server`` runs."""
        if model is None:
            result = self.probe(server)
            if not result.answered:
                raise_for(result)
            model = result.default_model
            if model is None:
                listed = ", ".join(result.models[:10])
                raise UsageError(
                    f"{server.name} offers several models; name one as {server.name}:MODEL ({listed}).",
                )
        return RemoteTarget(server.name, server.url, model, timeout=server.timeout, api_key=self.key_of(server))


def raise_for(result: ProbeResult) -> None:
    raise NetworkError(result.error or f"{result.url} did not answer.")


def _key_name(server_name: str) -> str:
    return f"remote:{server_name}"


def _server(row: object) -> RemoteServer:
    return RemoteServer(
        name=row["name"],  # type: ignore[index]
        url=row["url"],  # type: ignore[index]
        api_key_env=row["api_key_env"],  # type: ignore[index]
        key_in_keyring=bool(row["key_in_keyring"]),  # type: ignore[index]
        timeout=float(row["timeout"]),  # type: ignore[index]
    )
