"""Hangar's core: pure Python services shared by the window and the command line (no Qt, no engines)."""

__version__ = "0.1.0"
APP_NAME = "Hangar"
APP_ID = "hangar"
