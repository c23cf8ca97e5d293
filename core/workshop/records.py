"""The Workshop's SQLite tables: evaluations and speed runs kept per model file, and the lineage of the files the
Workshop made ("made from X"). The store is the one ``core.store.Store``; this module owns only its tables."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.store import Store
from core.workshop.types import BenchResult, EvalResult, SpeedPoint

WORKSHOP_SCHEMA = [
    """
    CREATE TABLE workshop_evals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        model_path TEXT NOT NULL,
        text_sha TEXT NOT NULL,
        text_name TEXT NOT NULL,
        ctx INTEGER NOT NULL,
        chunks INTEGER NOT NULL,
        perplexity REAL NOT NULL,
        perplexity_error REAL NOT NULL,
        reference_path TEXT,
        kl_divergence REAL,
        same_top_p REAL,
        result TEXT NOT NULL,
        job_id TEXT,
        at REAL NOT NULL
    );
    CREATE INDEX workshop_evals_by_model ON workshop_evals(model_path, at);
    CREATE TABLE workshop_speed (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        model_path TEXT NOT NULL,
        hardware_id TEXT NOT NULL,
        hardware TEXT NOT NULL,
        threads INTEGER NOT NULL,
        n_prompt INTEGER NOT NULL,
        n_gen INTEGER NOT NULL,
        depth INTEGER NOT NULL,
        pp_tokens_per_second REAL NOT NULL,
        tg_tokens_per_second REAL NOT NULL,
        job_id TEXT,
        at REAL NOT NULL
    );
    CREATE INDEX workshop_speed_by_model ON workshop_speed(model_path, hardware_id, at);
    CREATE TABLE workshop_lineage (
        path TEXT PRIMARY KEY,
        source_path TEXT NOT NULL,
        source_name TEXT NOT NULL,
        operation TEXT NOT NULL,
        detail TEXT NOT NULL,
        at REAL NOT NULL
    );
    """,
]


@dataclass(frozen=True)
class StoredEval:
    model_path: str
    text_sha: str
    text_name: str
    result: EvalResult
    at: float


@dataclass(frozen=True)
class StoredSpeed:
    model_path: str
    hardware_id: str
    threads: int
    n_prompt: int
    n_gen: int
    points: tuple[SpeedPoint, ...]
    at: float


@dataclass(frozen=True)
class Lineage:
    path: str
    source_path: str
    source_name: str
    operation: str  # "quantize" or "convert"
    detail: str  # the target type, or the weight type of a conversion
    at: float

    @property
    def words(self) -> str:
        return f"{self.detail}, made from {self.source_name}"

    @property
    def how(self) -> str:
        """The operation and its detail, as the details pane shows them after the source: "quantize, Q4_K_M"."""
        return f"{self.operation}, {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def model_key(path: str | Path) -> str:
    return str(Path(path).expanduser().absolute())


class WorkshopRecords:
    def __init__(self, store: Store) -> None:
        self._store = store
        store.migrate("workshop", WORKSHOP_SCHEMA)

    # -- evaluations ------------------------------------------------------------------------------------------
    def add_eval(self, model: str, text_sha: str, text_name: str, result: EvalResult, job_id: str | None) -> None:
        self._store.execute(
            "INSERT INTO workshop_evals (model_path, text_sha, text_name, ctx, chunks, perplexity, perplexity_error, "
            "reference_path, kl_divergence, same_top_p, result, job_id, at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                model_key(model),
                text_sha,
                text_name,
                result.ctx,
                result.chunks,
                result.perplexity,
                result.perplexity_error,
                model_key(result.reference) if result.reference else None,
                result.kl_divergence,
                result.same_top_p,
                json.dumps(result.as_dict()),
                job_id,
                time.time(),
            ),
        )

    def evals(
        self, model: str | Path | None = None, *, text_sha: str | None = None, ctx: int | None = None
    ) -> list[StoredEval]:
        """Evaluations, newest first, filtered by model file, text and context when given."""
        sql = "SELECT * FROM workshop_evals WHERE 1=1"
        args: list[Any] = []
        for column, value in (
            ("model_path", model_key(model) if model else None),
            ("text_sha", text_sha),
            ("ctx", ctx),
        ):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        rows = self._store.query(sql + " ORDER BY at DESC, id DESC", args)
        return [
            StoredEval(r["model_path"], r["text_sha"], r["text_name"], EvalResult(**json.loads(r["result"])), r["at"])
            for r in rows
        ]

    # -- speed ------------------------------------------------------------------------------------------------
    def add_speed(
        self, model: str, hardware_id: str, hardware: dict[str, Any], result: BenchResult, job_id: str | None
    ) -> None:
        now = time.time()
        with self._store.transaction() as conn:
            for point in result.points:
                conn.execute(
                    "INSERT INTO workshop_speed (model_path, hardware_id, hardware, threads, n_prompt, n_gen, depth, "
                    "pp_tokens_per_second, tg_tokens_per_second, job_id, at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        model_key(model),
                        hardware_id,
                        json.dumps(hardware, default=str),
                        result.threads,
                        result.n_prompt,
                        result.n_gen,
                        point.depth,
                        point.pp_tokens_per_second,
                        point.tg_tokens_per_second,
                        job_id,
                        now,
                    ),
                )

    def latest_speed(self, model: str | Path, hardware_id: str | None = None) -> StoredSpeed | None:
        """The newest speed run of ``model`` (on the machine ``hardware_id`` when given)."""
        sql = "SELECT * FROM workshop_speed WHERE model_path = ?"
        args: list[Any] = [model_key(model)]
        if hardware_id is not None:
            sql += " AND hardware_id = ?"
            args.append(hardware_id)
        newest = self._store.query_one(sql + " ORDER BY at DESC LIMIT 1", args)
        if newest is None:
            return None
        rows = self._store.query(sql + " AND at = ? ORDER BY depth", [*args, newest["at"]])
        points = tuple(SpeedPoint(r["depth"], r["pp_tokens_per_second"], r["tg_tokens_per_second"]) for r in rows)
        return StoredSpeed(
            newest["model_path"],
            newest["hardware_id"],
            newest["threads"],
            newest["n_prompt"],
            newest["n_gen"],
            points,
            newest["at"],
        )

    # -- lineage ----------------------------------------------------------------------------------------------
    def add_lineage(self, path: str | Path, source: str | Path, operation: str, detail: str) -> Lineage:
        lineage = Lineage(model_key(path), model_key(source), Path(source).name, operation, detail, time.time())
        self._store.execute(
            "INSERT OR REPLACE INTO workshop_lineage (path, source_path, source_name, operation, detail, at) "
            "VALUES (?,?,?,?,?,?)",
            (lineage.path, lineage.source_path, lineage.source_name, lineage.operation, lineage.detail, lineage.at),
        )
        return lineage

    def lineage(self, path: str | Path | Iterable[str | Path]) -> Lineage | None:
        """What made the file at ``path`` (or at any of several paths: a library entry's folder and files)."""
        keys = [model_key(path)] if isinstance(path, str | Path) else [model_key(p) for p in path]
        if not keys:
            return None
        marks = ",".join("?" * len(keys))
        r = self._store.query_one(f"SELECT * FROM workshop_lineage WHERE path IN ({marks}) ORDER BY at DESC", keys)
        return (
            Lineage(r["path"], r["source_path"], r["source_name"], r["operation"], r["detail"], r["at"]) if r else None
        )
