"""A tool call in the transcript: the tool and its server, the arguments (pretty JSON), the result (collapsible,
collapsed when long), the time it took and its state; while it waits, the user's answer: "Allow once", "Always
allow TOOL" (remembered for the app) or "Deny" (the model is told)."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from core.chat.tools import CallState, ToolCallEntry
from core.tools.loop import Approval
from ui.qtfix import emit
from ui.theme import current_colors
from ui.widgets.responsive import ElidedLabel

#: A result longer than this (characters or lines) starts collapsed.
LONG_RESULT_CHARS = 240
LONG_RESULT_LINES = 4
#: The most characters of arguments or result a card shows (the store keeps everything).
SHOWN_CHARS = 4000

STATE_TEXT = {
    CallState.PENDING: "waiting for your answer",
    CallState.RUNNING: "running…",
    CallState.DONE: "done",
    CallState.DENIED: "denied",
    CallState.FAILED: "failed",
    CallState.TIMED_OUT: "timed out",
}


def pretty_arguments(arguments: object) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, indent=2, ensure_ascii=False)


class ToolCallCard(QFrame):
    """One call; ``answered(call_id, Approval)`` when the user decides."""

    answered = Signal(int, object)

    def __init__(self, entry: ToolCallEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entry = entry
        self.setObjectName("ToolCall")
        colors = current_colors()
        self.setStyleSheet(
            f"QFrame#ToolCall {{ background: {colors.window}; border: 1px solid {colors.border}; border-radius: 6px; }}"
        )
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.title = ElidedLabel()  # one line, cut at the end in a narrow card (the whole name in its tooltip)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.title.setStyleSheet("font-weight: 600;")
        self.state = QLabel()
        self.state.setObjectName("ToolCallState")
        self.seconds = QLabel()
        self.seconds.setStyleSheet(f"color: {colors.muted};")
        self.arguments = QLabel()
        self.arguments.setFont(mono)
        self.arguments.setWordWrap(True)
        self.arguments.setTextFormat(Qt.TextFormat.PlainText)
        self.arguments.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.toggle = QPushButton()
        self.toggle.setFlat(True)
        self.toggle.setToolTip("Show or hide what the tool answered")
        self.toggle.clicked.connect(self._toggle)
        self.toggle.setStyleSheet(
            f"QPushButton {{ border: none; background: transparent; color: {colors.accent}; padding: 0 2px; }}"
        )
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.state)
        header.addWidget(self.seconds)
        header.addWidget(self.toggle)
        self.result = QLabel()
        self.result.setFont(mono)
        self.result.setWordWrap(True)
        self.result.setTextFormat(Qt.TextFormat.PlainText)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.allow_button = QPushButton("Allow once")
        self.allow_button.setObjectName("Primary")
        self.allow_button.setToolTip("Run this call now")
        self.always_button = QPushButton()
        self.deny_button = QPushButton("Deny")
        self.deny_button.setToolTip("Do not run it; the model is told you denied it")
        self.allow_button.clicked.connect(lambda: self._answer(Approval.ONCE))
        self.always_button.clicked.connect(lambda: self._answer(Approval.ALWAYS))
        self.deny_button.clicked.connect(lambda: self._answer(Approval.DENY))
        self.approval = QWidget()
        buttons = QHBoxLayout(self.approval)
        buttons.setContentsMargins(0, 0, 0, 0)
        for button in (self.allow_button, self.always_button, self.deny_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.arguments)
        layout.addWidget(self.approval)
        layout.addWidget(self.result)
        self._expanded: bool | None = None  # None: not chosen by the user yet
        self.set_entry(entry)

    def set_entry(self, entry: ToolCallEntry) -> None:
        self.entry = entry
        colors = current_colors()
        self.title.setText(f"Tool: {entry.tool}  ·  {entry.server}")
        color = {
            CallState.DONE: colors.good,
            CallState.PENDING: colors.warn,
            CallState.RUNNING: colors.muted,
        }.get(entry.state, colors.bad)
        self.state.setText(STATE_TEXT[entry.state])
        self.state.setStyleSheet(f"color: {color};")
        self.seconds.setText(f"{entry.seconds:.2f} s" if entry.seconds is not None else "")
        self.arguments.setText(_cut(pretty_arguments(entry.arguments)))
        self.always_button.setText(f"Always allow {entry.tool}")
        self.always_button.setToolTip(f"Run {entry.tool} now and from now on without asking")
        self.approval.setVisible(entry.state == CallState.PENDING)
        self.approval.setEnabled(entry.state == CallState.PENDING)
        has_result = bool(entry.result)
        self.result.setText(_cut(entry.result))
        self.toggle.setVisible(has_result)
        expanded = self._expanded if self._expanded is not None else not self.is_long()
        self._show_result(has_result and expanded)

    def is_long(self) -> bool:
        text = self.entry.result
        return len(text) > LONG_RESULT_CHARS or text.count("\n") >= LONG_RESULT_LINES

    @property
    def expanded(self) -> bool:
        return not self.result.isHidden()

    def _toggle(self) -> None:
        self._expanded = not self.expanded
        self._show_result(self._expanded)

    def _show_result(self, on: bool) -> None:
        self.result.setVisible(on)
        lines = self.entry.result.count("\n") + 1
        self.toggle.setText("Hide result" if on else "Show result")
        self.toggle.setToolTip(
            f"{'Hide' if on else 'Show'} what the tool answered ({lines} line{'s' if lines != 1 else ''})"
        )

    def _answer(self, decision: Approval) -> None:
        self.approval.setEnabled(False)  # one answer per call
        emit(self.answered, self.entry.id, decision)


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + f"\n… ({len(text):,} characters in all)"
