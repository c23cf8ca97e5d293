"""``hangar eval MODEL --text FILE``: perplexity of a model on a text, by llama.cpp's ``llama-perplexity`` method,
and with ``--reference`` the KL divergence and top-token agreement against the F16 or Q8_0 of the same model."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UsageError
from core.jobs import Job
from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a library name or id, or a .gguf path")
    parser.add_argument("--text", required=True, metavar="FILE", help="a UTF-8 text file (e.g. wiki.test.raw)")
    parser.add_argument("--ctx", type=int, default=512, help="tokens per chunk, as llama-perplexity's -c (512)")
    parser.add_argument("--chunks", type=int, default=None, help="evaluate only the first N chunks")
    parser.add_argument("--reference", metavar="MODEL", help="measure KL divergence against this model (F16/Q8_0)")


def run(app: AppContext, args: argparse.Namespace) -> int:
    service = app.workshop
    model = resolve_gguf(app, args.model)
    reference = resolve_gguf(app, args.reference) if args.reference else None
    job_id = service.start_eval(model, args.text, ctx=args.ctx, chunks=args.chunks, reference=reference)
    result = service.run_job(job_id, progress_printer(bool(args.json)))
    if args.json:
        emit_json({"job_id": job_id, "model": str(model), **result})
        return 0
    print(f"Perplexity: {result['perplexity']:.4f} ± {result['perplexity_error']:.4f}")
    print(f"  {result['chunks']} chunks of {result['ctx']} tokens, {result['tokens_scored']} tokens scored")
    if result.get("kl_divergence") is not None:
        print(f"Reference perplexity: {result['reference_perplexity']:.4f}")
        print(f"KL divergence: {result['kl_divergence']:.6f} ± {result['kl_divergence_error']:.6f}")
        print(f"Same top token: {100 * result['same_top_p']:.2f} %   RMS Δp: {100 * result['rms_delta_p']:.3f} %")
    return 0


def resolve_gguf(app: AppContext, name: str) -> Path:
    """A path as given, or the GGUF file of a library entry."""
    path = Path(name).expanduser()
    if path.exists():
        return path.absolute()
    from core.models.types import ModelFormat

    entry = app.library.get(name)
    if entry.format not in (ModelFormat.GGUF, ModelFormat.GGUF_SPLIT):
        raise UsageError(f"{entry.name} is a {entry.format} model; the Workshop measures GGUF files.")
    return entry.files[0]


def progress_printer(as_json: bool) -> Callable[[Job], None]:
    """Progress to stderr (stdout stays clean for ``--json``), at most one line per distinct message."""
    last = [""]

    def show(job: Job) -> None:
        if as_json or not job.message or job.message == last[0]:
            return
        last[0] = job.message
        share = f"{100 * job.progress:5.1f} % " if job.progress is not None else ""
        print(f"{share}{job.message}", file=sys.stderr, flush=True)

    return show
