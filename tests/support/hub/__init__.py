"""A local Hugging Face Hub for tests and demos: a real HTTP server on 127.0.0.1 (see ``server``)."""

from tests.support.hub.model import Faults, HubFile, HubRepo
from tests.support.hub.server import LocalHub

__all__ = ["Faults", "HubFile", "HubRepo", "LocalHub"]
