"""Text from files and the network made safe to show: one helper for the command line and the window.

A model's header is written by whoever made the file; its strings (architecture, name, license) can hold terminal
escape sequences or bidirectional overrides that would repaint a terminal or disguise a name.
"""

from __future__ import annotations

import re

# C0 and C1 control characters, DEL, and the bidirectional embedding, override and isolate characters.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]+")


def printable(text: str) -> str:
    """``text`` with every control character (escape sequences' ESC included) replaced by a space."""
    return _UNSAFE.sub(" ", text).strip() if _UNSAFE.search(text) else text


def printable_or_none(text: str | None) -> str | None:
    return None if text is None else printable(text)
