"""``hangar quantize SRC --type Q4_K_M --out PATH``: quantize an F32/F16/BF16 GGUF (or, with ``--requantize``, a
Q8_0) to any llama.cpp type, optionally with an importance matrix; the result joins the library."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ui.cli import emit_json
from ui.cli.eval_cmd import progress_printer, resolve_gguf

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SRC", help="a library name or id, or a .gguf path")
    parser.add_argument("--type", required=True, dest="qtype", help="Q4_K_M, Q5_K_M, Q6_K, Q8_0, IQ4_XS, …")
    parser.add_argument("--out", required=True, metavar="PATH", help="the .gguf file to write")
    parser.add_argument("--imatrix", metavar="FILE", help="an importance matrix (GGUF, from llama-imatrix)")
    parser.add_argument("--requantize", action="store_true", help="allow an already quantized source (best from Q8_0)")


def run(app: AppContext, args: argparse.Namespace) -> int:
    service = app.workshop
    source = resolve_gguf(app, args.source)
    job_id = service.start_quantize(source, args.out, args.qtype, requantize=args.requantize, imatrix=args.imatrix)
    result = service.run_job(job_id, progress_printer(bool(args.json)))
    if args.json:
        emit_json({"job_id": job_id, "source": str(source), "type": args.qtype.upper(), **result})
        return 0
    size = result["size_bytes"] / (1024 * 1024)
    print(f"Wrote {result['path']} ({size:.1f} MiB), made from {result['made_from']}.")
    return 0
