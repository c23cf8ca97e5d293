"""Logging: a rotating file under the app's log folder, plus stderr for the command line with ``-v``.

Without ``-v`` the command line prints only its own one-line messages; everything else is in the log file.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s"


def setup_logging(log_file: Path, *, verbose: bool = False, console: bool = False) -> None:
    root = logging.getLogger()
    if any(getattr(h, "_hangar", False) for h in root.handlers):
        return
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    file_handler._hangar = True  # type: ignore[attr-defined]
    root.addHandler(file_handler)
    if console and verbose:
        stream = logging.StreamHandler()
        stream.setLevel(logging.DEBUG)
        stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        stream._hangar = True  # type: ignore[attr-defined]
        root.addHandler(stream)
