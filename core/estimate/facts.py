"""The per-machine cache of the engine facts (``core.hardware.EngineFacts``: the CPU backend's extra buffer types
and which tensor types each takes, the devices and their memory), keyed by the llama.cpp build and the CPU.
``backends/facts.py`` measures them in a child process; the estimator reads them, never a table of CPU families.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from pathlib import Path

from core.hardware import DeviceFact, EngineFacts, ExtraBuffer

logger = logging.getLogger(__name__)

FACTS_VERSION = 3  # 3: the decode probe at two sizes
FACTS_FILE = "engine-facts.json"


def cpu_key(system_info: str | None = None) -> str:
    """A short key for this CPU as the engine sees it: model name, machine and llama.cpp's feature line."""
    name = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware")):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{platform.machine()}|{name}|{system_info or ''}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_cached(path: Path, llama_version: str, key: str) -> EngineFacts | None:
    """The cached facts if they were measured with this llama.cpp on this CPU, else None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != FACTS_VERSION:
            return None
        facts = EngineFacts.from_dict(data["facts"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        if path.exists():
            logger.info("engine facts cache %s unreadable: %s", path, error)
        return None
    if facts.llama_version != llama_version or facts.cpu_key != key:
        return None
    return facts


def save_cached(path: Path, facts: EngineFacts) -> None:
    """Write atomically (a temp file, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(f".{os.getpid()}.tmp")
    temp.write_text(json.dumps({"version": FACTS_VERSION, "facts": facts.as_dict()}, indent=1), encoding="utf-8")
    os.replace(temp, path)


__all__ = ["FACTS_FILE", "DeviceFact", "EngineFacts", "ExtraBuffer", "cpu_key", "load_cached", "save_cached"]
