"""The Hugging Face token: keyring storage (through an in-test keyring backend: the OS keyring is the seam that
cannot run here), the real session-only fallback of this box, whoami checks, and that the token never leaks."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import pytest

from core.downloads.manager import DownloadState
from core.errors import AuthError
from core.hub.client import HubClient
from core.secrets import ACCOUNT, NO_KEYRING_WARNING, SERVICE, SecretStore, TokenStorage
from tests.support.downloads import TokenHolder, make_app, make_manager
from tests.support.hub import LocalHub
from tests.support.hub.catalog import GATED_REPO, GATED_TOKEN


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A stand-in for the OS keyring (Secret Service, Keychain, Credential Manager), which this box lacks."""

    #: Off unless a test installs it, so keyring's own backend discovery never picks it.
    installed = False

    @keyring.backend.properties.classproperty
    def priority(cls) -> float:
        if not cls.installed:
            raise RuntimeError("only for tests that install it")
        return 10

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.entries:
            raise keyring.errors.PasswordDeleteError("not set")
        del self.entries[(service, username)]


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    MemoryKeyring.installed = True
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)
    MemoryKeyring.installed = False


def test_this_box_has_no_secure_keyring_so_the_token_is_session_only(hub: LocalHub) -> None:
    assert isinstance(keyring.get_keyring(), keyring.backends.fail.Keyring)  # the real backend here
    store = SecretStore()
    assert not store.secure and store.warning == NO_KEYRING_WARNING
    status = store.set_token(GATED_TOKEN, HubClient())
    assert status.storage == TokenStorage.SESSION and status.user == "alice"
    assert status.warning == NO_KEYRING_WARNING
    assert store.get_token() == GATED_TOKEN
    assert SecretStore().get_token() is None  # a new session does not have it
    store.clear()
    assert store.get_token() is None


def test_keyring_backend_stores_and_clears_the_token(hub: LocalHub, memory_keyring: MemoryKeyring) -> None:
    store = SecretStore()
    assert store.secure and store.warning is None
    status = store.set_token(f"  {GATED_TOKEN}\n", HubClient())
    assert status.storage == TokenStorage.KEYRING and status.user == "alice"
    assert memory_keyring.entries == {(SERVICE, ACCOUNT): GATED_TOKEN}
    assert SecretStore().get_token() == GATED_TOKEN  # survives into the next session
    assert SecretStore().status().storage == TokenStorage.KEYRING
    store.clear()
    assert memory_keyring.entries == {}


def test_a_refused_token_is_not_stored(hub: LocalHub, memory_keyring: MemoryKeyring) -> None:
    bad = "hf_this_token_does_not_exist_42"
    with pytest.raises(AuthError) as caught:
        SecretStore().set_token(bad, HubClient())
    assert bad not in str(caught.value)
    assert memory_keyring.entries == {}


def test_the_token_never_reaches_settings_logs_database_or_errors(
    hub: LocalHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app(tmp_path / "data")
    try:
        from core.logs import setup_logging

        setup_logging(app.paths.log_file, verbose=True, console=False)
        store = SecretStore()
        store.set_token(GATED_TOKEN, HubClient())
        app.settings.update(max_parallel_downloads=3)  # settings are written while a token is set
        # A refused token on a gated download, then the good one (from the store) on retry.
        holder = TokenHolder("hf_wrong_token_for_the_leak_test")
        manager = make_manager(app, holder)
        failed = manager.wait(manager.enqueue(GATED_REPO).id, 30)
        assert failed.state == DownloadState.FAILED and "refused" in failed.message
        holder.token = store.get_token()
        done = manager.wait(manager.enqueue(GATED_REPO).id, 30)
        assert done.state == DownloadState.DONE
        messages = [failed.message, done.message, caplog.text]
    finally:
        app.close()
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_hangar", False)]:
            handler.close()
            root.removeHandler(handler)
    for secret in (GATED_TOKEN, "hf_wrong_token_for_the_leak_test"):
        for text in messages:
            assert secret not in text
        for path in (tmp_path / "data").rglob("*"):
            if path.is_file() and path.suffix != ".gguf":
                assert secret.encode() not in path.read_bytes(), path
        dump = "\n".join(sqlite3.connect(app.paths.database_file).iterdump())
        assert secret not in dump


def test_without_a_keyring_secrets_go_to_a_private_file(hub: LocalHub, tmp_path: Path) -> None:
    path = tmp_path / "data" / "secrets.json"
    store = SecretStore(path)
    assert not store.secure and str(path) in (store.warning or "") and "HF_TOKEN" in (store.warning or "")
    status = store.set_token(GATED_TOKEN, HubClient())
    assert status.storage == TokenStorage.FILE and status.user == "alice" and status.warning == store.warning
    assert path.stat().st_mode & 0o777 == 0o600
    assert SecretStore(path).get_token() == GATED_TOKEN  # the next process has it
    # Any named secret (the Serve feature's API keys use the same store).
    assert store.set("serve-api-key", "sk-local-1") == TokenStorage.FILE
    assert SecretStore(path).get("serve-api-key") == "sk-local-1"
    store.delete("serve-api-key")
    assert SecretStore(path).get("serve-api-key") is None and SecretStore(path).get_token() == GATED_TOKEN
    store.clear()
    assert SecretStore(path).get_token() is None and GATED_TOKEN not in path.read_text()


def test_with_a_keyring_no_file_is_written(hub: LocalHub, tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    path = tmp_path / "secrets.json"
    store = SecretStore(path)
    assert store.set_token(GATED_TOKEN, HubClient()).storage == TokenStorage.KEYRING
    assert not path.exists() and memory_keyring.entries == {(SERVICE, ACCOUNT): GATED_TOKEN}
