"""One model over llama.cpp RPC workers on loopback: decode tokens/s and load time with 0 (local), 1, 2 and 3
workers, as ratios to the local run in the same process tree, and the estimate vs what llama.cpp allocated on each
device. Loopback has no network cost, so the ratios show the RPC protocol's own overhead: over a real network the
decode speed is bounded by its latency (each token crosses once per worker).

    python bench/rpc_split.py [--tokens 64] [--layers 8] [--embd 512]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIB = 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--embd", type=int, default=512)
    parser.add_argument("--worker-threads", type=int, default=1)
    args = parser.parse_args()

    from backends.facts import fit_in_child
    from backends.rpc_worker import serve as serve_worker
    from backends.worker import serve
    from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
    from core.engine.host import ChatMessage, EngineHost, GenerationParams, LoadOptions, ModelSpec
    from core.estimate.records import split_by_device
    from core.hardware import detect_hardware
    from core.remote.rpc import WorkerProcess, WorkerRequest
    from core.remote.split import estimate_for_load, refine_over_workers
    from tests.support.servers import free_port

    with tempfile.TemporaryDirectory() as tmp:
        config = TinyModelConfig(
            n_embd=args.embd, n_layer=args.layers, n_ff=args.embd * 4, n_head=8, n_head_kv=4, n_vocab=2048
        )
        model = write_tiny_gguf(Path(tmp) / "bench-llama-F16.gguf", config)
        size = model.stat().st_size
        workers = []
        for _ in range(3):
            worker = WorkerProcess(serve_worker, WorkerRequest("127.0.0.1", free_port(), threads=args.worker_threads))
            worker.start()
            workers.append(worker)
        prompt = [ChatMessage("user", "Write about the sea.")]
        params = GenerationParams(max_tokens=args.tokens, temperature=0.0, ignore_eos=True)
        rows = []
        base_speed = base_load = None
        text0 = None
        try:
            for count in range(0, 4):
                endpoints = tuple(w.endpoint for w in workers[:count])
                host = EngineHost(serve, name=f"bench-{count}")
                started = time.perf_counter()
                info = host.load_blocking(
                    ModelSpec("llama", str(model), LoadOptions(context_length=1024, rpc_servers=endpoints))
                )
                load = time.perf_counter() - started
                host.generate_blocking(prompt, GenerationParams(max_tokens=4))  # warm up
                stats = host.generate_blocking(prompt, params)
                host.shutdown()
                text0 = text0 if text0 is not None else stats.text
                base_speed = base_speed or stats.tokens_per_second
                base_load = base_load or load
                same = "yes" if stats.text == text0 else "NO"
                rows.append((count, stats.tokens_per_second, load, same, info, endpoints))
            print(
                f"model: {args.layers} layers x {args.embd} wide, {size / MIB:.0f} MiB F16; {args.tokens} tokens greedy"
            )
            print(f"{'workers':>7} {'decode tok/s':>13} {'vs local':>9} {'load s':>7} {'vs local':>9}  same text")
            for count, speed, load, same, _, _ in rows:
                print(
                    f"{count:>7} {speed:13.1f} {speed / base_speed:8.2f}x {load:7.2f} {load / base_load:8.2f}x  {same}"
                )
            # estimate vs actual per device, with 2 workers: the analytic split (what a load records, from the free
            # memory the engine saw) and llama.cpp's fit pass with the workers registered in its child
            _, _, _, _, info, endpoints = rows[2]
            spec_options = LoadOptions(context_length=1024, rpc_servers=endpoints)
            analytic = estimate_for_load(model, spec_options, detect_hardware(), info)
            assert analytic is not None
            fit = refine_over_workers(analytic, model, fit_in_child, endpoints, args.embd)
            print(f"\nestimate vs llama.cpp's allocation with 2 workers, MiB (fit: {fit.source})")
            print(
                f"{'device':<24} {'analytic':>9} {'fit':>9} {'actual':>9}  "
                f"{'compute: analytic':>17} {'fit':>6} {'actual':>7}"
            )
            by_device = split_by_device(info.allocated)
            for a, f in zip(analytic.devices, fit.devices, strict=True):
                own = by_device.get(a.device, {})
                actual = sum(own.values())
                actual_compute = sum(v for k, v in own.items() if k.startswith("compute:"))
                print(
                    f"{a.device:<24} {_buffers(a) / MIB:9.1f} {_buffers(f) / MIB:9.1f} {actual / MIB:9.1f}  "
                    f"{a.compute / MIB:17.1f} {f.compute / MIB:6.1f} {actual_compute / MIB:7.1f}"
                )
        finally:
            for worker in workers:
                worker.stop()
    return 0


def _buffers(device: object) -> int:
    """What llama.cpp reports for a device: weights, KV, compute and output (no process overheads)."""
    return sum(getattr(device, part) for part in ("weights", "repack", "kv", "compute", "output"))


if __name__ == "__main__":
    raise SystemExit(main())
