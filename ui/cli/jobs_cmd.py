"""``hangar jobs``: the history of background jobs (downloads, imports, fine-tunes)."""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import TYPE_CHECKING

from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", help="only jobs of this kind (download, import, finetune)")
    parser.add_argument("--limit", type=int, default=50, help="at most this many (newest first)")


def run(app: AppContext, args: argparse.Namespace) -> int:
    jobs = app.jobs.list(args.kind, limit=args.limit)
    if args.json:
        emit_json([dataclasses.asdict(job) for job in jobs])
        return 0
    if not jobs:
        print("No jobs yet.")
        return 0
    for job in jobs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.created_at))
        progress = f"{job.progress * 100:5.1f}%" if job.progress is not None else "      "
        detail = job.error or job.message
        print(f"{job.id}  {when}  {job.kind:<9} {job.state:<10} {progress}  {job.title}  {detail}".rstrip())
    return 0
