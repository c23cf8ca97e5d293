"""``hangar convert HF_FOLDER --out PATH``: a Hugging Face safetensors llama-family model (for example a merged
fine-tune) to a GGUF llama.cpp loads; the result joins the library with its lineage."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ui.cli import emit_json
from ui.cli.eval_cmd import progress_printer

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="HF_FOLDER", help="a folder with config.json, *.safetensors, tokenizer.json")
    parser.add_argument("--out", required=True, metavar="PATH", help="the .gguf file to write")
    parser.add_argument("--outtype", choices=("F16", "F32"), default="F16", help="weight type (F16)")


def run(app: AppContext, args: argparse.Namespace) -> int:
    service = app.workshop
    job_id = service.start_convert(args.folder, args.out, weight_type=args.outtype)
    result = service.run_job(job_id, progress_printer(bool(args.json)))
    if args.json:
        emit_json({"job_id": job_id, **result})
        return 0
    print(f"Wrote {result['path']} ({result['size_bytes'] / (1024 * 1024):.1f} MiB), made from {result['made_from']}.")
    return 0
