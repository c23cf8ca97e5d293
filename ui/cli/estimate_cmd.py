"""``hangar estimate TARGET``: memory, verdict, largest context and speed for a local or Hub model, before
loading or downloading it (a Hub target reads only the header through HTTP Range)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from core.errors import UsageError
from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext
    from core.estimate.llama import Estimate


def _layers(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use a number of layers, -1 for all, or 'auto'") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="a .gguf file, a model folder, or REPO[:FILE] on the Hub")
    parser.add_argument("--ctx", type=int, default=4096, help="context length (0: the model's own)")
    parser.add_argument(
        "--gpu-layers",
        type=_layers,
        default=None,
        metavar="N|auto",
        help="layers to put on the GPU (-1: all; default: auto)",
    )
    parser.add_argument("--kv-type", default="f16", help="KV cache type: f16 (default), q8_0, q4_0, ...")
    parser.add_argument("--flash-attn", action="store_true", help="use flash attention")
    parser.add_argument("--revision", help="Hub branch, tag or commit")
    parser.add_argument(
        "--rpc",
        metavar="HOST:PORT,...",
        help="plan the model spread over these llama.cpp RPC workers (each is asked for its free memory)",
    )


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MiB"


def run(app: AppContext, args: argparse.Namespace) -> int:
    # imported here, not at the top: every command module is imported to build ``--help``
    from core.estimate.fitting import estimate_header, read_target
    from core.estimate.llama import EngineSettings
    from core.estimate.mlx import MlxEstimate

    if args.ctx < 0:
        raise UsageError("--ctx must be 0 or more.")
    settings = EngineSettings(
        context_length=args.ctx, gpu_layers=args.gpu_layers, kv_cache_type=args.kv_type, flash_attention=args.flash_attn
    )
    header = read_target(args.target, revision=args.revision)
    hardware = app.hardware()
    names: list[str] = []
    workers = []
    if args.rpc:
        from dataclasses import replace

        from core.remote.rpc import parse_endpoints, require_workers
        from core.remote.split import with_workers

        workers = require_workers(parse_endpoints(args.rpc))
        hardware, names = with_workers(hardware, workers)
        if settings.gpu_layers is None:
            settings = replace(settings, gpu_layers=-1)  # as `chat --rpc` loads: every layer on the workers
    estimate = estimate_header(header, settings, hardware)
    if workers and not isinstance(estimate, MlxEstimate):
        from core.remote.split import name_devices, split_of

        estimate = name_devices(estimate, names)
    data = estimate.as_dict()
    data["target"] = args.target
    if workers:
        if isinstance(estimate, MlxEstimate):
            raise UsageError("RPC workers take GGUF models (llama.cpp) only.")
        data["rpc"] = [
            {"endpoint": w.endpoint, "free_bytes": w.free_bytes, "devices": len(w.devices), "protocol": w.protocol}
            for w in workers
        ]
        data["split"] = split_of(estimate)
        fits = all(d.fits for d in estimate.devices)
        data["fits"] = fits
        data["verdict_text"] = (
            "Fits: every device holds its share" if fits else "Does not fit: a device is over its budget"
        )
    if args.json:
        emit_json(data)
        return 0
    if isinstance(estimate, MlxEstimate):
        print(
            f"{args.target} (MLX): {_mib(estimate.total_bytes)} of {_mib(estimate.budget)}; "
            f"{'fits' if estimate.fits else 'does not fit'}; largest context {estimate.max_context}"
        )
        return 0
    _print_llama(args.target, estimate, workers=bool(workers))
    return 0


def _print_llama(target: str, estimate: Estimate, *, workers: bool = False) -> None:
    where = "the RPC workers and GPUs" if workers else "GPU"
    print(f"{target}: context {estimate.n_ctx}, {estimate.gpu_layers}/{estimate.n_layer + 1} layers on {where}")
    width = max(8, *(len(d.device) for d in estimate.devices))
    print(
        f"{'device':<{width}} {'weights':>11} {'KV':>11} {'compute':>11} {'output':>9} {'overhead':>10} "
        f"{'total':>11} {'budget':>11}"
    )
    for d in estimate.devices:
        print(
            f"{d.device:<{width}} {_mib(d.weights + d.repack):>11} {_mib(d.kv):>11} {_mib(d.compute):>11} "
            f"{_mib(d.output):>9} {_mib(d.overhead):>10} {_mib(d.total):>11} {_mib(d.budget):>11}"
        )
    verdict = estimate.verdict_text
    if workers:
        fits = all(d.fits for d in estimate.devices)
        verdict = "Fits: every device holds its share" if fits else "Does not fit: a device is over its budget"
    print(f"verdict  {verdict}")
    print(f"largest context that fits: {estimate.max_context}")
    if estimate.tokens_per_second:
        print(f"expected decode speed: ~{estimate.tokens_per_second:.0f} tokens/s")
    for note in estimate.notes:
        print(f"note     {note}")
