"""``hangar compare MODEL… --text FILE``: several models or quants side by side — file size, memory at a context,
prompt and generation speed on this machine, perplexity and KL divergence on one text. What the records lack is
measured first (one job); ``--fresh`` measures everything again."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from core.workshop.types import BenchRequest
from ui.cli import emit_json
from ui.cli.eval_cmd import progress_printer, resolve_gguf

if TYPE_CHECKING:
    from core.app import AppContext

MIB = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", metavar="MODEL", nargs="+", help="two or more library names, ids or .gguf paths")
    parser.add_argument("--text", required=True, metavar="FILE", help="the UTF-8 text every model is measured on")
    parser.add_argument("--ctx", type=int, default=512, help="perplexity chunk size (512)")
    parser.add_argument("--chunks", type=int, default=None, help="evaluate only the first N chunks")
    parser.add_argument("--reference", metavar="MODEL", help="KL divergence against this model (default: the largest)")
    parser.add_argument("--memory-ctx", type=int, default=4096, help="context the memory column is estimated at")
    parser.add_argument("--n-prompt", type=int, default=512, help="prompt tokens of the speed test (512)")
    parser.add_argument("--n-gen", type=int, default=128, help="generated tokens of the speed test (128)")
    parser.add_argument("--no-bench", action="store_true", help="skip the speed test")
    parser.add_argument("--fresh", action="store_true", help="measure again even where results are stored")


def run(app: AppContext, args: argparse.Namespace) -> int:
    service = app.workshop
    models = [resolve_gguf(app, m) for m in args.models]
    reference = resolve_gguf(app, args.reference) if args.reference else None
    bench = None if args.no_bench else BenchRequest("", args.n_prompt, args.n_gen, (0,), 1)
    job_id = service.start_compare(
        list(models),
        args.text,
        ctx=args.ctx,
        chunks=args.chunks,
        reference=reference,
        bench=bench,
        memory_ctx=args.memory_ctx,
        fresh=args.fresh,
    )
    result = service.run_job(job_id, progress_printer(bool(args.json)))
    if args.json:
        emit_json({"job_id": job_id, **result})
        return 0
    print(format_table(result["rows"], result["reference"]))
    return 0


def _num(value: Any, pattern: str) -> str:
    return "—" if value is None else format(value, pattern)


def format_table(rows: list[dict[str, Any]], reference: str) -> str:
    header = ("model", "quant", "size MiB", "memory MiB", "pp tok/s", "tg tok/s", "PPL", "KLD", "same top")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r["model"] + (" (ref)" if r["path"] == reference else ""),
                r["quant"],
                f"{r['file_size'] / MIB:.1f}",
                _num(r["memory_bytes"] and r["memory_bytes"] / MIB, ".0f"),
                _num(r["pp_tokens_per_second"], ".1f"),
                _num(r["tg_tokens_per_second"], ".1f"),
                _num(r["perplexity"], ".4f"),
                _num(r["kl_divergence"], ".6f"),
                _num(r["same_top_p"] and 100 * r["same_top_p"], ".1f") + ("" if r["same_top_p"] is None else " %"),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
        for line in lines
    )
