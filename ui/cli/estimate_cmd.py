"""``hangar estimate TARGET``: memory, verdict, largest context and speed for a local or Hub model, before
loading or downloading it (a Hub target reads only the header through HTTP Range). For a file on disk llama.cpp's
own fit pass answers (in a child process); the estimate says which estimator answered."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UsageError
from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext
    from core.estimate.llama import Estimate
    from core.gguf import GGUFInfo


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
        "--no-fit", action="store_true", help="skip llama.cpp's own fit pass for a local file (analytic estimate)"
    )
    parser.add_argument(
        "--rpc",
        metavar="HOST:PORT,...",
        help="plan the model spread over these llama.cpp RPC workers (each is asked for its free memory)",
    )


def run(app: AppContext, args: argparse.Namespace) -> int:
    # imported here, not at the top: every command module is imported to build ``--help``
    from core.estimate.calibrate import apply_history
    from core.estimate.exact import refine
    from core.estimate.fitting import estimate_header, read_target
    from core.estimate.llama import EngineSettings, Estimate
    from core.estimate.mlx import MlxEstimate

    if args.ctx < 0:
        raise UsageError("--ctx must be 0 or more.")
    settings = EngineSettings(
        context_length=args.ctx, gpu_layers=args.gpu_layers, kv_cache_type=args.kv_type, flash_attention=args.flash_attn
    )
    header = read_target(args.target, revision=args.revision, token=app.secrets.get_token())
    hardware = app.hardware()
    if args.rpc:
        return _plan_rpc(app, args, header, settings, hardware)
    estimate = estimate_header(header, settings, hardware)
    if isinstance(estimate, Estimate):
        local = _local_gguf(args.target, header)
        if local is not None and not args.no_fit:
            estimate = refine(estimate, local, app.fit_runner)
        elif header.remote and header.gguf is not None and not args.no_fit and app.fit_runner is not None:
            estimate = _refine_remote(estimate, header.target, header.gguf, app, args.revision)
        estimate = apply_history(estimate, app.store, str(local) if local else None, hardware)
        estimate = _with_projector(estimate, local, header, args, app)
    data = estimate.as_dict()
    data["target"] = args.target
    if args.json:
        emit_json(data)
        return 0
    if isinstance(estimate, MlxEstimate):
        from core.estimate.units import format_bytes

        print(
            f"{args.target} (MLX): {format_bytes(estimate.total_bytes)} of {format_bytes(estimate.budget)}; "
            f"{'fits' if estimate.fits else 'does not fit'}; largest context {estimate.max_context}"
        )
        return 0
    _print_llama(args.target, estimate)
    return 0


def _plan_rpc(app: AppContext, args: argparse.Namespace, header: object, settings: object, hardware: object) -> int:
    """The split over RPC workers: each worker's devices join this machine's as offload devices, with llama.cpp's
    buffer names per device; for a file on disk llama.cpp's fit pass sizes them, the workers registered in its
    child (the analytic split stands if it cannot run; ``source`` says which answered)."""
    from dataclasses import replace

    from core.estimate.fitting import estimate_header
    from core.estimate.mlx import MlxEstimate
    from core.remote.rpc import parse_endpoints, require_workers
    from core.remote.split import name_devices, refine_over_workers, split_of, with_workers

    workers = require_workers(parse_endpoints(args.rpc))
    spread, names = with_workers(hardware, workers)  # type: ignore[arg-type]
    if settings.gpu_layers is None:  # type: ignore[attr-defined]
        settings = replace(settings, gpu_layers=-1)  # type: ignore[type-var]  # as `chat --rpc` loads
    estimate = estimate_header(header, settings, spread)  # type: ignore[arg-type]
    if isinstance(estimate, MlxEstimate):
        raise UsageError("RPC workers take GGUF models (llama.cpp) only.")
    estimate = name_devices(estimate, names)
    local = _local_gguf(args.target, header)
    gguf = getattr(header, "gguf", None)
    if local is not None and gguf is not None and not args.no_fit:  # llama.cpp's own pass, workers registered
        endpoints = tuple(w.endpoint for w in workers)
        estimate = refine_over_workers(estimate, local, app.fit_runner, endpoints, gguf.embedding_length)
    fits = all(d.fits for d in estimate.devices)
    verdict = "Fits: every device holds its share" if fits else "Does not fit: a device is over its budget"
    data = estimate.as_dict()
    data.update(
        target=args.target,
        fits=fits,
        verdict_text=verdict,
        rpc=[
            {"endpoint": w.endpoint, "free_bytes": w.free_bytes, "devices": len(w.devices), "protocol": w.protocol}
            for w in workers
        ],
        split=split_of(estimate),
    )
    if args.json:
        emit_json(data)
        return 0
    _print_llama(args.target, estimate, verdict=verdict, where="the RPC workers and GPUs")
    return 0


def _refine_remote(estimate: Estimate, target: str, info: GGUFInfo, app: AppContext, revision: str | None) -> Estimate:
    """The fit pass for a Hub file before download, on a sparse local copy of its header (no tensor data)."""
    import tempfile

    from core.errors import HangarError
    from core.estimate.exact import header_stub, refine
    from core.gguf import hub_file_url
    from core.gguf.source import HttpSource

    repo, _, filename = target.partition(":")
    if not filename:
        return estimate
    with tempfile.TemporaryDirectory(prefix="hangar-stub-") as folder:
        try:
            stub = header_stub(
                HttpSource(hub_file_url(repo, filename, revision)), info, Path(folder) / Path(filename).name
            )
        except (HangarError, OSError):
            return estimate
        return refine(estimate, stub, app.fit_runner) if stub is not None else estimate


def _with_projector(
    estimate: Estimate, local: Path | None, header: Any, args: argparse.Namespace, app: Any
) -> Estimate:
    """A vision model's projector counted as its own line: the mmproj beside a local file, or the one the
    repository pairs with a Hub file."""
    from core.estimate.vision import with_projector
    from core.gguf import read_gguf
    from core.hub.vision import remote_projector_header
    from core.models.projector import find_projector

    info = None
    if local is not None:
        projector = find_projector(local.parent)
        info = read_gguf(projector) if projector else None
    elif header.remote and ":" in header.target:
        repo, _, filename = header.target.partition(":")
        info = remote_projector_header(repo, filename, revision=args.revision, token=app.secrets.get_token())
    return with_projector(estimate, info) if info is not None else estimate


def _local_gguf(target: str, header: object) -> Path | None:
    path = Path(target).expanduser()
    if getattr(header, "remote", False) or not path.exists():
        return None
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        return ggufs[0] if len(ggufs) == 1 else None
    return path


def _print_llama(target: str, estimate: Estimate, *, verdict: str | None = None, where: str = "GPU") -> None:
    from core.estimate.units import format_bytes

    print(f"{target}: context {estimate.n_ctx:,}, {estimate.gpu_layers}/{estimate.n_layer + 1} layers on {where}")
    width = max(8, *(len(d.device) for d in estimate.devices))
    print(
        f"{'device':<{width}} {'weights':>11} {'KV':>11} {'compute':>11} {'output':>10} {'overhead':>10} "
        f"{'total':>11} {'budget':>11}"
    )
    for d in estimate.devices:
        print(
            f"{d.device:<{width}} {format_bytes(d.weights + d.repack):>11} {format_bytes(d.kv):>11} "
            f"{format_bytes(d.compute):>11} {format_bytes(d.output):>10} {format_bytes(d.overhead):>10} "
            f"{format_bytes(d.total):>11} {format_bytes(d.budget):>11}"
        )
    print(f"verdict  {verdict or estimate.verdict_text}")
    print(f"source   {estimate.source}")
    print(f"largest context that fits: {estimate.max_context:,}")
    if estimate.speed is not None:
        speed = estimate.speed
        print(f"expected decode speed: {speed.words}, likely {speed.low:g}-{speed.high:g} ({speed.basis})")
    for note in estimate.notes:
        print(f"note     {note}")
