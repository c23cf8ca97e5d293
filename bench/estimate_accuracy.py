"""How close Hangar's memory estimate is to what its llama.cpp engine really allocates.

    python bench/estimate_accuracy.py [--only NAME] [--out results.md]

Generates the zoo (``core.devkit.modelgen.ZOO``: GQA, one KV head with a 256k vocabulary, gemma-style sliding-window
layers, MoE, several quant types), loads each model through Hangar's own engine path (``EngineHost`` +
``backends.worker.serve`` + ``backends/llama.py``) at several context sizes, and prints estimate vs actual per
component from llama.cpp's logged buffer sizes. Target: total within 3% for every case; exits 1 otherwise.
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


def main(argv: list[str] | None = None) -> int:
    from backends.probe import probe_engines
    from backends.worker import serve
    from core.devkit.modelgen import ZOO, write_tiny_gguf
    from core.engine.host import EngineHost
    from core.engine.protocol import LoadOptions, ModelSpec
    from core.estimate.llama import EngineSettings, estimate_llama
    from core.estimate.records import COMPONENTS, compare
    from core.gguf import read_gguf
    from core.hardware import detect_hardware

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="run only this zoo model (repeatable)")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args(argv)
    hardware = detect_hardware(probe_engines)
    header = (
        "| model | quant | ctx | KV | FA | "
        + " | ".join(f"{c} est/act MiB" for c in COMPONENTS)
        + " | total est/act MiB | error |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    worst = 0.0
    failures = 0
    speed_notes: list[str] = []
    host = EngineHost(serve, name="bench")
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="hangar-zoo-") as tmp:
            for name, config in ZOO.items():
                if args.only and name not in args.only:
                    continue
                path = write_tiny_gguf(Path(tmp) / f"{name}.gguf", config)
                info = read_gguf(path)
                if config.n_vocab >= 200_000:
                    speed_notes.append(_header_speed(path, info.header_bytes))
                for ctx, kv, flash in CASES:
                    settings = EngineSettings(context_length=ctx, kv_cache_type=kv, flash_attention=flash, gpu_layers=0)
                    estimate = estimate_llama(info, settings, hardware)
                    loaded = host.load_blocking(
                        ModelSpec(
                            "llama",
                            str(path),
                            LoadOptions(context_length=ctx, kv_cache_type=kv, flash_attention=flash, gpu_layers=0),
                        )
                    )
                    result = compare(estimate, loaded.allocated)
                    error = result.error_pct
                    worst = max(worst, abs(error))
                    failures += abs(error) > TARGET_PCT
                    cells = " | ".join(f"{_mib(result.estimated[c])} / {_mib(result.actual[c])}" for c in COMPONENTS)
                    lines.append(
                        f"| {name} | {info.quant_type} | {ctx} | {kv} | {'on' if flash else 'off'} | "
                        f"{cells} | {_mib(result.estimated_total)} / {_mib(result.actual_total)} | "
                        f"{error:+.2f}% |"
                    )
                    print(lines[-1], flush=True)
                host.unload()
    finally:
        host.shutdown()
    lines.append("")
    lines.extend(speed_notes)
    lines.append(
        f"worst total error {worst:.2f}% (target {TARGET_PCT}%), {failures} case(s) over target; "
        f"{time.perf_counter() - started:.0f} s on {hardware.cpu_name} "
        f"({hardware.cpu_family}, CPU backend of llama-cpp-python)"
    )
    table = "\n".join(lines)
    print()
    print(table)
    if args.out:
        args.out.write_text(table + "\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
