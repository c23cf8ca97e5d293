"""``hangar bench MODEL``: prompt processing and generation speed on this machine, as ``llama-bench`` measures
them, at a few context depths; kept with the machine's hardware fingerprint."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ui.cli import emit_json
from ui.cli.eval_cmd import progress_printer, resolve_gguf

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a library name or id, or a .gguf path")
    parser.add_argument("-p", "--n-prompt", type=int, default=512, help="prompt tokens per test (512)")
    parser.add_argument("-n", "--n-gen", type=int, default=128, help="generated tokens per test (128)")
    parser.add_argument(
        "-d", "--depths", default="0,1024", help="tokens already in the context, comma-separated (0,1024)"
    )
    parser.add_argument("-r", "--repetitions", type=int, default=2, help="runs per test, averaged (2)")


def run(app: AppContext, args: argparse.Namespace) -> int:
    from core.errors import UsageError

    try:
        depths = tuple(int(d) for d in str(args.depths).split(",") if d.strip())
    except ValueError:
        raise UsageError(f"--depths takes numbers separated by commas, not {args.depths!r}.") from None
    service = app.workshop
    model = resolve_gguf(app, args.model)
    job_id = service.start_bench(
        model, n_prompt=args.n_prompt, n_gen=args.n_gen, depths=depths, repetitions=args.repetitions
    )
    result = service.run_job(job_id, progress_printer(bool(args.json)))
    if args.json:
        emit_json({"job_id": job_id, "model": str(model), **result})
        return 0
    print(f"{model.name} · {result['threads']} threads · machine {result['hardware_id']}")
    print(
        f"{'depth':>8}  {'pp' + str(result['n_prompt']) + ' tok/s':>14}  {'tg' + str(result['n_gen']) + ' tok/s':>14}"
    )
    for point in result["points"]:
        print(f"{point['depth']:>8}  {point['pp_tokens_per_second']:>14.2f}  {point['tg_tokens_per_second']:>14.2f}")
    return 0
