"""The token box against the local Hub's whoami, with this box's real (absent) keyring: session-only + warning."""

from __future__ import annotations

from core.secrets import NO_KEYRING_WARNING, SecretStore, TokenStorage
from tests.support.hub import LocalHub
from tests.support.hub.catalog import GATED_TOKEN
from ui.widgets.hf_token import HfTokenBox


def test_a_valid_token_is_checked_and_kept_with_a_visible_warning(qtbot, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    store = SecretStore()
    box = HfTokenBox(store)
    qtbot.addWidget(box)
    box.show()
    qtbot.waitUntil(lambda: box.warning.isVisible(), timeout=5_000)
    assert NO_KEYRING_WARNING[:30] in box.warning.text()
    qtbot.keyClicks(box.field, GATED_TOKEN)
    with qtbot.waitSignal(box.token_changed, timeout=10_000) as signal:
        box.save.click()
    assert signal.args[0].storage == TokenStorage.SESSION
    assert "alice" in box.status.text() and box.field.text() == ""
    assert store.get_token() == GATED_TOKEN
    with qtbot.waitSignal(box.token_changed, timeout=5_000):
        box.remove.click()
    assert store.get_token() is None and "No token" in box.status.text()


def test_a_refused_token_shows_why_without_echoing_it(qtbot, hub: LocalHub) -> None:  # type: ignore[no-untyped-def]
    store = SecretStore()
    box = HfTokenBox(store)
    qtbot.addWidget(box)
    bad = "hf_not_a_real_token_123456"
    qtbot.keyClicks(box.field, bad)
    box.save.click()
    qtbot.waitUntil(lambda: "refused" in box.status.text(), timeout=10_000)
    assert bad not in box.status.text()
    assert store.get_token() is None
