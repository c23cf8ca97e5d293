"""Hangar's window: every PySide6 import lives in this package (and nowhere in core/ or backends/)."""
