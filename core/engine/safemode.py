"""Safe mode: what to turn off when the engine crashes natively, and the memory of what worked.

A native crash while loading or generating (llama.cpp's AMX path on some Xeons, say) is data: the host retries with
the risky features off, one more at a time (``safe_steps``), and ``SafeModeBook`` remembers, per model file, machine
and engine version, which step worked — or that none did — so the next load goes straight there and other pages can
badge the model (``known_crash``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, cast

from core.engine.protocol import LoadOptions, ModelSpec
from core.store import Store

logger = logging.getLogger(__name__)

SCHEMA = [
    """
    CREATE TABLE engine_safe_modes (
        file_id TEXT NOT NULL,
        machine TEXT NOT NULL,
        engine TEXT NOT NULL,
        engine_version TEXT NOT NULL,
        path TEXT NOT NULL,
        level INTEGER NOT NULL,
        changes TEXT NOT NULL DEFAULT '[]',
        reason TEXT NOT NULL DEFAULT '',
        runs INTEGER NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (file_id, machine, engine, engine_version)
    );
    """
]

#: The engines safe mode knows switches for (MLX has none of these features).
ENGINES = ("llama",)


def safe_steps(options: LoadOptions) -> list[tuple[LoadOptions, tuple[str, ...]]]:
    """The options to retry with after a crash, each step turning one more risky feature off (steps that would
    change nothing are left out). Step ``n`` of the ladder is ``safe_steps(options)[n - 1]``."""
    threads = options.threads or os.cpu_count() or 2
    fewer = max(1, threads // 2)
    candidates: list[tuple[str, Any, str]] = [
        ("use_extra_bufts", False, "llama.cpp's repacked weight buffers (AMX, CPU_REPACK, KleidiAI) are off"),
        ("flash_attention", False, "flash attention is off"),
        ("use_mmap", False, "the model is read into memory instead of memory-mapped"),
        ("threads", fewer, f"{fewer} CPU thread(s) instead of {threads}"),
    ]
    steps: list[tuple[LoadOptions, tuple[str, ...]]] = []
    current, changes = options, cast(tuple[str, ...], ())
    for name, value, words in candidates:
        if getattr(current, name) == value or (name == "threads" and fewer >= threads):
            continue
        current = replace(current, **{name: value})
        changes = (*changes, words)
        steps.append((current, changes))
    return steps


@dataclass(frozen=True)
class SafeModeRecord:
    """What is known about one model file on this machine with this engine build."""

    path: str
    #: The safe-mode step that works (0: none needed); meaningless when ``runs`` is false.
    level: int
    changes: tuple[str, ...]
    #: The crash that made safe mode necessary, in words.
    reason: str
    #: False: the engine crashed at every step; the model cannot run here.
    runs: bool
    updated_at: float

    def describe(self) -> str:
        if not self.runs:
            return f"Crashes the engine on this machine ({self.reason})"
        return "Runs here in safe mode: " + "; ".join(self.changes)


class SafeModeBook:
    """The records, in the app's SQLite store."""

    def __init__(self, store: Store, machine_reason: Callable[[], str] | None = None) -> None:
        """``machine_reason()``: why every llama.cpp load on this machine starts with the extra buffer types off
        ("" when nothing is known) — the engine probe saw them crash here (``EngineFacts.extra_buffers_crash``)."""
        self._store = store
        self._machine_reason = machine_reason
        store.migrate("engine_safe_mode", SCHEMA)

    def lookup(self, path: str | Path, engine: str = "llama") -> SafeModeRecord | None:
        key = _key(path, engine)
        if key is None:
            return None
        row = self._store.query_one(
            "SELECT * FROM engine_safe_modes WHERE file_id = ? AND machine = ? AND engine = ? AND engine_version = ?",
            key,
        )
        if row is None:
            return None
        try:
            changes = tuple(str(c) for c in json.loads(row["changes"]))
        except (ValueError, TypeError):
            changes = ()
        return SafeModeRecord(
            path=row["path"],
            level=int(row["level"]),
            changes=changes,
            reason=row["reason"],
            runs=bool(row["runs"]),
            updated_at=float(row["updated_at"]),
        )

    def starting_step(self, spec: ModelSpec) -> tuple[int, tuple[str, ...], str]:
        """Where a load of ``spec`` starts: the step known to work here (or, if none did, the safest), with its
        changes and the crash that made it necessary. (0, (), "") when the model runs as asked."""
        if spec.engine not in ENGINES:
            return 0, (), ""
        try:
            record = self.lookup(spec.path, spec.engine)
        except Exception as exc:  # the record is a help, never a reason not to load
            logger.warning("safe-mode record unreadable: %s", exc)
            return 0, (), ""
        steps = safe_steps(spec.options)
        if record is None and steps and spec.options.use_extra_bufts:
            reason = self._machine_wide()
            if reason:
                return 1, steps[0][1], reason
        if record is None or not steps:
            return 0, (), ""
        level = min(len(steps), record.level if record.runs else len(steps))
        if level <= 0:
            return 0, (), ""
        return level, steps[level - 1][1], record.reason

    def _machine_wide(self) -> str:
        if self._machine_reason is None:
            return ""
        try:
            return self._machine_reason()
        except Exception as exc:  # a help, never a reason not to load
            logger.warning("could not read the engine's facts for safe mode: %s", exc)
            return ""

    def known_crash(self, path: str | Path, engine: str = "llama") -> SafeModeRecord | None:
        """The record of a model that crashed the engine on this machine (runs in safe mode, or not at all)."""
        return self.lookup(path, engine)

    def remember(
        self, path: str | Path, engine: str, *, level: int, changes: tuple[str, ...], reason: str, runs: bool
    ) -> None:
        key = _key(path, engine)
        if key is None:
            return
        logger.info(
            "safe mode for %s: %s", Path(path).name, "; ".join(changes) if runs else "the model cannot run here"
        )
        self._store.execute(
            "INSERT INTO engine_safe_modes"
            " (file_id, machine, engine, engine_version, path, level, changes, reason, runs, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(file_id, machine, engine, engine_version) DO UPDATE SET path = excluded.path,"
            " level = excluded.level, changes = excluded.changes, reason = excluded.reason, runs = excluded.runs,"
            " updated_at = excluded.updated_at",
            (*key, str(path), level, json.dumps(list(changes)), reason, int(runs), time.time()),
        )

    def forget(self, path: str | Path, engine: str = "llama") -> None:
        """Drop the record (the user wants to try the model as asked again)."""
        key = _key(path, engine)
        if key is not None:
            self._store.execute(
                "DELETE FROM engine_safe_modes WHERE file_id = ? AND machine = ? AND engine = ? AND engine_version = ?",
                key,
            )


def _key(path: str | Path, engine: str) -> tuple[str, str, str, str] | None:
    file_id = file_identity(Path(path))
    if file_id is None:
        return None
    return file_id, machine_fingerprint(), engine, engine_version(engine)


def file_identity(path: Path) -> str | None:
    """Size plus a hash of the file's first and last 64 KiB: the same file wherever it moves, cheap to compute."""
    try:
        size = path.stat().st_size
        digest = hashlib.blake2b(digest_size=12)
        with path.open("rb") as handle:
            digest.update(handle.read(65536))
            if size > 65536:
                handle.seek(max(65536, size - 65536))
                digest.update(handle.read(65536))
    except OSError:
        return None
    return f"{size}:{digest.hexdigest()}"


@cache
def machine_fingerprint() -> str:
    """This CPU: architecture, model name and a hash of its feature flags (AMX or not, say)."""
    name, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and value.strip():
                name = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = " ".join(sorted(value.split()))
    except OSError:
        pass
    tag = hashlib.blake2b(flags.encode(), digest_size=4).hexdigest()
    return f"{platform.system()}/{platform.machine()}/{name.strip()}/{tag}"


@cache
def engine_version(engine: str) -> str:
    """The installed engine's version, from package metadata (core never imports an engine)."""
    from importlib import metadata

    package = {"llama": "llama-cpp-python", "mlx": "mlx-lm"}.get(engine, engine)
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
