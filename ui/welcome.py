"""The first-run welcome: the machine in plain words and a few starter models that fit it, each one click from
downloading. Shown once, before the normal window is used."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.hardware import Hardware
from core.hub.suggestions import RankedSuggestion, describe_hardware, suggest
from ui.icons import app_icon
from ui.operations import run_in_background
from ui.units import format_bytes, format_speed
from ui.widgets.fit_badge import FitBadge

if TYPE_CHECKING:
    from core.app import AppContext
    from ui.bridge import Bridge

logger = logging.getLogger(__name__)


BUTTON_TEXTS = ("Download", "Queuing…", "Queued ✓", "Downloaded ✓", "Try again")


class SuggestionCard(QFrame):
    def __init__(self, ranked: RankedSuggestion, on_download, parent: QWidget | None = None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(parent)
        self.setObjectName("Card")
        self.ranked = ranked
        s = ranked.suggestion
        title = QLabel(f"<b>{s.title}</b>")
        facts = QLabel(f"{s.params} parameters · {s.quant} · {format_bytes(s.size_bytes)} download")
        facts.setObjectName("Muted")
        blurb = QLabel(s.blurb)
        blurb.setWordWrap(True)
        self.badge = FitBadge()
        self.badge.set_level(ranked.fit, "A quick check from the file size; Discover reads the real header.")
        speed = QLabel(format_speed(ranked.tokens_per_second) if ranked.tokens_per_second else "")
        speed.setObjectName("Muted")
        self.button = QPushButton("Download")
        # Wide enough for every state's text ("Downloading…", "Try again"): a button never shrinks to an outline.
        metrics = self.button.fontMetrics()
        self.button.setMinimumWidth(max(metrics.horizontalAdvance(t) for t in BUTTON_TEXTS) + 32)
        #: The download this card started, once queued (it is followed to its end).
        self.download_id: str | None = None
        self.button.setToolTip(f"Download {s.repo_id}{' / ' + s.file if s.file else ''}")
        self.button.setAccessibleName(f"Download {s.title}")
        self.button.clicked.connect(lambda: on_download(self))
        self.error = QLabel()
        self.error.setObjectName("ErrorText")
        self.error.setWordWrap(True)
        self.error.hide()

        grid = QGridLayout(self)
        grid.setContentsMargins(14, 10, 14, 10)
        grid.addWidget(title, 0, 0)
        grid.addWidget(self.badge, 0, 1, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(facts, 1, 0)
        grid.addWidget(speed, 1, 1, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(blurb, 2, 0)
        grid.addWidget(self.button, 2, 1, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.error, 3, 0, 1, 2)
        grid.setColumnStretch(0, 1)

    def set_queued(self) -> None:
        self.button.setText("Queued ✓")
        self.button.setEnabled(False)
        self.error.hide()
        self._fit()

    def set_done(self) -> None:
        self.button.setText("Downloaded ✓")
        self.button.setEnabled(False)
        self.error.hide()
        self._fit()

    def set_failed(self, message: str) -> None:
        self.button.setText("Try again")
        self.button.setEnabled(True)
        self.error.setText(message)
        self.error.show()
        self._fit()

    def _fit(self) -> None:
        """Grow the dialog for a message that appeared (a fixed-size dialog clipped it)."""
        window = self.window()
        if window is self or not window.isVisible() or window.layout() is None:
            return
        # The message's lines at the dialog's own width (adjustSize measured the label before it wrapped and grew
        # the dialog by one line: a two-line message and the button were cut).
        layout = window.layout()
        layout.invalidate()
        layout.activate()
        width = window.width()
        needed = layout.totalHeightForWidth(width) if layout.hasHeightForWidth() else layout.totalSizeHint().height()
        if needed > window.height():
            window.resize(width, needed)


class WelcomeDialog(QDialog):
    def __init__(
        self,
        app: AppContext,
        bridge: Bridge,
        hardware: Hardware,
        suggestions: list[RankedSuggestion] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.app = app
        self.bridge = bridge
        self.queued: list[str] = []
        self._stop_following: Callable[[], None] | None = None
        self.setWindowTitle("Welcome to Hangar")
        self.setMinimumWidth(620)

        logo = QLabel()
        logo.setPixmap(app_icon().pixmap(56, 56))
        heading = QLabel("Welcome to Hangar")
        heading.setObjectName("PageTitle")
        intro = QLabel("Run language models on this machine. Nothing you type leaves it.")
        intro.setObjectName("PageSubtitle")
        head_text = QVBoxLayout()
        head_text.addWidget(heading)
        head_text.addWidget(intro)
        head = QHBoxLayout()
        head.addWidget(logo)
        head.addSpacing(8)
        head.addLayout(head_text, 1)

        self.hardware_label = QLabel(f"<b>This machine:</b> {describe_hardware(hardware)}")
        self.hardware_label.setWordWrap(True)
        self.hardware_label.setAccessibleName("Detected hardware")

        picks = suggestions if suggestions is not None else suggest(hardware)
        lead = QLabel(
            "Models that fit, to get started:" if picks else "None of the starter models fits this machine's memory."
        )
        lead.setObjectName("Muted")
        self.cards = [SuggestionCard(r, self._download) for r in picks]

        self.continue_button = QPushButton("Open Hangar")
        self.continue_button.setObjectName("Primary")
        self.continue_button.setDefault(True)
        self.continue_button.setToolTip("Close this welcome; you can search for any model in Discover (Ctrl+1)")
        self.continue_button.clicked.connect(self.accept)
        buttons = QHBoxLayout()
        hint = QLabel("Downloads continue in the background; see them on the Downloads page.")
        hint.setObjectName("Muted")
        buttons.addWidget(hint, 1)
        buttons.addWidget(self.continue_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 18)
        layout.setSpacing(10)
        layout.addLayout(head)
        layout.addSpacing(6)
        layout.addWidget(self.hardware_label)
        layout.addSpacing(6)
        layout.addWidget(lead)
        for card in self.cards:
            layout.addWidget(card)
        layout.addSpacing(6)
        layout.addLayout(buttons)
        self.finished.connect(self._remember)

    def _download(self, card: SuggestionCard) -> None:

        s = card.ranked.suggestion
        card.button.setEnabled(False)
        card.button.setText("Queuing…")
        manager = self.app.downloads
        if self._stop_following is None:
            self._stop_following = self.bridge.connect_hook(manager.changed, self._on_download_changed)
        if card.download_id is not None:  # "Try again" after the download itself failed: resume it
            download_id = card.download_id
            run_in_background(
                lambda: manager.retry_download(download_id),
                on_success=lambda _r: card.set_queued(),
                on_failure=lambda error: card.set_failed(str(error)),
            )
            return

        def queued(item: Any) -> None:
            self.queued.append(s.repo_id)
            card.download_id = item.id
            card.set_queued()
            self.bridge.status_message.emit(f"Downloading {s.title}", 4000)

        run_in_background(
            lambda: manager.enqueue(s.repo_id, file=s.file),
            on_success=queued,
            on_failure=lambda error: card.set_failed(str(error)),
        )

    def _on_download_changed(self, item: Any) -> None:
        """Follow the starter downloads to their end: a failure later on (the network, a damaged file) shows on
        the card with "Try again", not as a card that still says "Queued"."""
        from core.downloads.items import DownloadState

        if not shiboken6.isValid(self):
            return
        for card in self.cards:
            if card.download_id == item.id:
                if item.state == DownloadState.DONE:
                    card.set_done()
                elif item.state == DownloadState.FAILED:
                    card.set_failed(item.message or "The download failed.")

    def _remember(self, _result: int) -> None:
        if self._stop_following is not None:
            self._stop_following()
            self._stop_following = None
        self.app.settings.update(first_run_done=True)
        if self.queued:
            self.bridge.navigate_requested.emit("downloads", None)
