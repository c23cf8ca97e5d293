"""Helpers shared by the download tests: a manager wired to the local Hub, and ways to wait on its events."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

from core.app import AppContext
from core.downloads.manager import DownloadItem, DownloadManager, DownloadState
from core.downloads.transfer import RetryPolicy
from core.hub.client import HubClient
from core.paths import AppPaths

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


class TokenHolder:
    def __init__(self, token: str | None = None) -> None:
        self.token = token

    def __call__(self) -> str | None:
        return self.token


def make_app(root: Path) -> AppContext:
    return AppContext.create(AppPaths.under(root), worker_entry=lambda *a: None)


def make_manager(app: AppContext, token: TokenHolder | None = None, **options: object) -> DownloadManager:
    options.setdefault("retry", FAST_RETRY)
    return DownloadManager(app.jobs, app.store, app.paths, HubClient(token or TokenHolder()), **options)  # type: ignore[arg-type]


def wait_for(manager: DownloadManager, predicate: Callable[[DownloadItem], bool], timeout: float = 30) -> DownloadItem:
    """Block until a change event satisfies ``predicate`` (no polling sleeps)."""
    hit = threading.Event()
    found: list[DownloadItem] = []

    def listener(item: DownloadItem) -> None:
        if predicate(item):
            found.append(item)
            hit.set()

    disconnect = manager.changed.connect(listener)
    try:
        for item in manager.list():  # it may already be true
            if predicate(item):
                return item
        assert hit.wait(timeout), "timed out waiting for a download event"
        return found[0]
    finally:
        disconnect()


def finished(item: DownloadItem) -> bool:
    return item.state not in (DownloadState.QUEUED, DownloadState.RUNNING)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
