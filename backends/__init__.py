"""Engines behind one interface (``core.engine.host.Engine``). No Qt here.

Engines are imported lazily, inside the engine child process, so the app starts without loading any of them.
"""

from __future__ import annotations

import importlib
import importlib.util

from core.engine.protocol import Engine
from core.errors import UnsupportedModelError

#: engine name -> (module, class, the Python package it needs, the extra that installs it)
ENGINES: dict[str, tuple[str, str, str, str]] = {
    "llama": ("backends.llama", "LlamaEngine", "llama_cpp", "llama"),
    "mlx": ("backends.mlx", "MlxEngine", "mlx_lm", "mlx"),
    # Plain HTTP to an OpenAI-compatible server; needs nothing beyond Hangar itself.
    "remote": ("backends.remote", "RemoteEngine", "json", ""),
}


def available_engines() -> dict[str, bool]:
    """Which engines are installed, without importing them."""
    return {name: importlib.util.find_spec(pkg) is not None for name, (_, _, pkg, _) in ENGINES.items()}


def create_engine(name: str) -> Engine:
    try:
        module_name, class_name, package, extra = ENGINES[name]
    except KeyError:
        raise UnsupportedModelError(f"Hangar has no engine called {name!r}.") from None
    if importlib.util.find_spec(package) is None:
        raise UnsupportedModelError(
            f"The {name} engine is not installed.", hint=f"Install Hangar with the '{extra}' extra."
        )
    module = importlib.import_module(module_name)
    engine: Engine = getattr(module, class_name)()
    return engine
