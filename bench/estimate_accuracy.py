"""How close Hangar's memory estimate is to what its llama.cpp engine really allocates, on the machine that runs it.

    python bench/estimate_accuracy.py [--only NAME] [--model PATH] [--gpu-layers 0,-1,half] [--out results.md]
                                      [--json rows.json]

Generates the zoo (``core.devkit.modelgen.ZOO``: GQA, one KV head with a 256k vocabulary, gemma-style sliding-window
layers, MoE, several quant types), plus any ``--model`` files, loads each through Hangar's own engine path
(``EngineHost`` + ``backends.worker.serve`` + ``backends/llama.py``) at several context sizes and GPU-layer settings,
and prints estimate vs actual per component from llama.cpp's logged buffer sizes: the analytic estimate (with
this machine's engine facts: which extra buffers, such as CPU_REPACK, AMX or KLEIDIAI, take which weights) and
llama.cpp's own fit pass. Which extra buffers llama.cpp used is shown, never required: it depends on the CPU.
Target: analytic total within 3% for every case; exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: (context, KV type, flash attention) per model
CASES = ((512, "f16", False), (4096, "f16", False), (16384, "f16", False), (8192, "q8_0", True))
TARGET_PCT = 3.0


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f}"


def _header_speed(path: Path, header_bytes: int) -> str:
    """Hangar's header reader vs gguf-py's GGUFReader (the baseline, which maps and indexes the whole file)."""
    import gguf

    from core.gguf import read_gguf

    def best(fn: object, runs: int = 3) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter() - started)
        return min(times)

    ours = best(lambda: read_gguf(path))
    baseline = best(lambda: gguf.GGUFReader(str(path)), runs=1)  # slow: one run is enough
    return (
        f"header of {path.name} ({header_bytes / 2**20:.1f} MiB, 256k tokens): read in {ours * 1000:.0f} ms, "
        f"{baseline / ours:.1f}x faster than gguf.GGUFReader ({baseline * 1000:.0f} ms) in the same run"
    )


def _layer_settings(spec: str, n_layer: int) -> list[int]:
    """``0,-1,half`` → GPU layers per case (``half``: half of the blocks plus the output layer)."""
    values = []
    for item in spec.split(","):
        item = item.strip()
        values.append((n_layer + 1) // 2 + 1 if item == "half" else int(item))
    return values


def main(argv: list[str] | None = None) -> int:
    import json

    from backends.facts import fit_in_child
    from backends.probe import probe_engines
    from backends.worker import serve
    from core.devkit.modelgen import ZOO, write_tiny_gguf
    from core.engine.host import EngineHost
    from core.engine.protocol import LoadOptions, ModelSpec
    from core.estimate.exact import refine
    from core.estimate.llama import EngineSettings, estimate_llama
    from core.estimate.records import COMPONENTS, compare
    from core.gguf import read_gguf
    from core.hardware import detect_hardware

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="run only this zoo model (repeatable)")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here (bench/gpu_check reads them)")
    parser.add_argument("--model", action="append", type=Path, default=[], help="a real GGUF to add (repeatable)")
    parser.add_argument("--gpu-layers", default="0", help="GPU layers per case: numbers, -1 (all), half")
    parser.add_argument("--quick", action="store_true", help="one context per model (4096)")
    parser.add_argument("--ctx", help="these contexts only (comma-separated; f16 KV, flash attention off)")
    args = parser.parse_args(argv)
    cache = Path(tempfile.mkdtemp(prefix="hangar-facts-"))
    hardware = detect_hardware(lambda: probe_engines(cache), cache_dir=cache)
    facts = hardware.engines.facts
    cases = ((4096, "f16", False),) if args.quick else CASES
    if args.ctx:
        cases = tuple((int(c), "f16", False) for c in args.ctx.split(","))
    header = (
        "| model | quant | ctx | KV | FA | ngl | "
        + " | ".join(f"{c} est/act MiB" for c in COMPONENTS)
        + " | total est/act MiB | error | fit pass error | extra buffers used |"
    )
    rows: list[dict[str, object]] = []
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    worst = 0.0
    failures = 0
    speed_notes: list[str] = []
    host = EngineHost(serve, name="bench")
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="hangar-zoo-") as tmp:
            models: list[tuple[str, Path]] = []
            for name, config in ZOO.items():
                if not args.only or name in args.only:
                    models.append((name, write_tiny_gguf(Path(tmp) / f"{name}.gguf", config)))
            models += [(p.stem, p) for p in args.model]
            for name, path in models:
                info = read_gguf(path)
                if info.vocab_size >= 200_000 and path.parent == Path(tmp):
                    speed_notes.append(_header_speed(path, info.header_bytes))
                for ngl in _layer_settings(args.gpu_layers, info.block_count):
                    for ctx, kv, flash in cases:
                        settings = EngineSettings(
                            context_length=ctx, kv_cache_type=kv, flash_attention=flash, gpu_layers=ngl
                        )
                        estimate = estimate_llama(info, settings, hardware)
                        exact = refine(estimate, path, fit_in_child)
                        options = LoadOptions(  # as the app's engine loads here (extra buffers off if they crash)
                            context_length=ctx,
                            kv_cache_type=kv,
                            flash_attention=flash,
                            gpu_layers=ngl,
                            use_extra_bufts=estimate.settings.extra_buffers,
                        )
                        loaded = host.load_blocking(ModelSpec("llama", str(path), options))
                        result = compare(estimate, loaded.allocated)
                        fit_error = (
                            compare(exact, loaded.allocated).error_pct if exact.source != estimate.source else None
                        )
                        error = result.error_pct
                        worst = max(worst, abs(error))
                        failures += abs(error) > TARGET_PCT
                        extra = sorted(
                            {
                                k.split(":", 1)[1]
                                for k, v in loaded.allocated.items()
                                if k.startswith("model:") and v and k.split(":", 1)[1] not in ("CPU", "CPU_Mapped")
                            }
                        )
                        cells = " | ".join(
                            f"{_mib(result.estimated[c])} / {_mib(result.actual[c])}" for c in COMPONENTS
                        )
                        fit_cell = "-" if fit_error is None else f"{fit_error:+.2f}%"
                        lines.append(
                            f"| {name} | {info.quant_type} | {ctx} | {kv} | {'on' if flash else 'off'} | {ngl} | "
                            f"{cells} | {_mib(result.estimated_total)} / {_mib(result.actual_total)} | "
                            f"{error:+.2f}% | {fit_cell} | {', '.join(extra) or '-'} |"
                        )
                        rows.append(
                            {
                                "model": name,
                                "ctx": ctx,
                                "kv": kv,
                                "flash": flash,
                                "gpu_layers": ngl,
                                "error_pct": round(error, 3),
                                "fit_error_pct": None if fit_error is None else round(fit_error, 3),
                                "extra_buffers": extra,
                            }
                        )
                        print(lines[-1], flush=True)
                        host.unload()
    finally:
        host.shutdown()
    lines.append("")
    lines.extend(speed_notes)
    lines.append(
        f"worst total error {worst:.2f}% (target {TARGET_PCT}%), {failures} case(s) over target; "
        f"{time.perf_counter() - started:.0f} s on {hardware.cpu_name}; llama.cpp's extra buffers here: "
        + (", ".join(f"{b.name} ({'/'.join(sorted(b.types))})" for b in facts.extra_buffers) if facts else "not asked")
        + f"; devices: {', '.join(g.device_name for g in hardware.gpus) or 'CPU only'}"
    )
    table = "\n".join(lines)
    print()
    print(table)
    if args.out:
        args.out.write_text(table + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "worst_pct": worst, "failures": failures}), encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
