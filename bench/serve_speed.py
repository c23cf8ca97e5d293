"""Serve speed: streamed decode through Hangar's HTTP server against the engine host directly, the extra time to
first token the server adds, and 8 clients at once.

    python bench/serve_speed.py [--tokens N] [--rounds N] [--clients N] [--json]

On a shared, loaded machine whole-run figures swing by several times between rounds, so each run is also
normalised by the engine's own figures for that very run (its decode tokens/s and its time to first token, measured
inside the engine process): "what the client saw / what the engine did" is compared between the two sides, which
cancels the machine's load. Both raw (paired median and best) and normalised figures are printed.

Both sides run the same generated model (random weights, n_embd 768, 6 layers, 8k vocabulary: a token costs
milliseconds, as with real models) with the same load options, greedy, end-of-sequence suppressed, so every run
writes exactly N tokens. The server side is what an HTTP client sees: a raw SSE reader on 127.0.0.1 (no client
library's own parsing cost), TTFT from sending the request to the first content chunk, decode from the first chunk
to the last. Rounds are interleaved so machine load hits both alike. Targets: ratio >= 0.95, extra TTFT <= 20 ms;
8 concurrent clients all answered, none failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.devkit.modelgen import TinyModelConfig  # noqa: E402
from core.engine.host import ChatMessage, EngineHost, GenerationParams  # noqa: E402

CONFIG = TinyModelConfig(n_vocab=8192, n_embd=768, n_layer=6, n_head=12, n_head_kv=4, n_ff=2048, name="bench")
PROMPT = "Write a long story about a lighthouse keeper and the sea."
CONTEXT = 2048


Run = tuple[float, float, int, float, float]  # client TTFT ms, client decode tok/s, tokens, engine TTFT, engine tok/s


def direct_run(host: EngineHost, tokens: int, prompt: str) -> Run:
    arrivals: list[float] = []
    params = GenerationParams(max_tokens=tokens, temperature=0.0, ignore_eos=True, repeat_penalty=1.0)
    started = time.perf_counter()
    stats = host.generate_blocking(
        [ChatMessage("user", prompt)], params, on_chunk=lambda _t: arrivals.append(time.perf_counter())
    )
    first, last = arrivals[0], arrivals[-1]
    decode = (stats.completion_tokens - 1) / (last - first)
    return (
        (first - started) * 1000,
        decode,
        stats.completion_tokens,
        stats.time_to_first_token_ms,
        stats.tokens_per_second,
    )


def server_run(base_url: str, model: str, tokens: int, prompt: str) -> tuple[float, float, int]:
    """One streamed chat completion read as raw SSE: (TTFT ms, decode tok/s, completion tokens)."""
    parts = urlsplit(base_url)
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": tokens,
            "temperature": 0,
            "repeat_penalty": 1.0,
            "ignore_eos": True,
            "stream": True,
        }
    )
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    started = time.perf_counter()
    connection.request("POST", parts.path + "/chat/completions", body, {"content-type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:200]!r}")
    first = last = None
    completion = 0
    for raw in response:
        line = raw.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if "error" in chunk:
            raise RuntimeError(chunk["error"]["message"])
        if chunk.get("usage"):
            completion = chunk["usage"]["completion_tokens"]
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            now = time.perf_counter()
            first = first or now
            last = now
    connection.close()
    assert first is not None and last is not None
    return (first - started) * 1000, (completion - 1) / (last - first), completion


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from backends.worker import serve
    from core.app import AppContext
    from core.chat.models import load_options, spec_for
    from core.devkit.modelgen import write_tiny_gguf
    from core.models.types import ImportMode
    from core.paths import AppPaths
    from core.serve.defaults import ModelDefaults

    with tempfile.TemporaryDirectory(prefix="hangar-serve-bench-") as tmp:
        folder = Path(tmp)
        path = write_tiny_gguf(folder / "bench.gguf", CONFIG)
        app = AppContext.create(AppPaths.under(folder / "data"), worker_entry=serve)
        library = app.library
        entry = library.import_paths([path], ImportMode.LINK).imported[0]
        service = app.serve
        endpoint = service.start(port=0)
        assert service.pool is not None
        service.pool.defaults.set(entry.id, ModelDefaults(context_length=CONTEXT, gpu_layers="0"))
        server_run(endpoint.base_url, entry.name, 16, PROMPT)  # loads the model (JIT) and warms up
        options = service.pool._models[entry.id].options  # the very options the server loaded with
        model = next(iter(service.pool._models.values())).model
        host = app.new_engine_host("bench-direct")
        host.load_blocking(spec_for(model, options))
        direct_run(host, 16, PROMPT)
        assert options == load_options(app.settings.current, context_length=CONTEXT, gpu_layers="0")

        direct: list[Run] = []
        served: list[Run] = []
        for i in range(args.rounds):
            prompt = f"Round {i}. {PROMPT}"
            direct.append(direct_run(host, args.tokens, prompt))
            ttft, decode, count = server_run(endpoint.base_url, entry.name, args.tokens, prompt)
            record = service.log[-1]
            served.append((ttft, decode, count, record.engine_time_to_first_token_ms, record.tokens_per_second))
            print(
                f"  round {i}: decode {served[-1][1]:6.1f} (server) vs {direct[-1][1]:6.1f} (host) tok/s, "
                f"TTFT {served[-1][0]:6.1f} vs {direct[-1][0]:6.1f} ms",
                file=sys.stderr,
                flush=True,
            )
        host.shutdown()

        results: list[tuple[float, float, int] | Exception] = []
        lock = threading.Lock()

        def client(index: int) -> None:
            try:
                result: tuple[float, float, int] | Exception = server_run(
                    endpoint.base_url, entry.name, args.tokens // 2, f"Client {index}. {PROMPT}"
                )
            except Exception as exc:  # counted as a failure below
                result = exc
            with lock:
                results.append(result)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        ok = [r for r in results if not isinstance(r, Exception)]
        failed = [r for r in results if isinstance(r, Exception)]
        service.stop()
        app.close()

    summary = {
        "tokens": args.tokens,
        "rounds": args.rounds,
        "decode_ratio_paired_median": round(
            statistics.median(s[1] / d[1] for s, d in zip(served, direct, strict=True)), 3
        ),
        "decode_ratio_best": round(max(s[1] for s in served) / max(d[1] for d in direct), 3),
        "server_tokens_per_second_best": round(max(s[1] for s in served), 1),
        "host_tokens_per_second_best": round(max(d[1] for d in direct), 1),
        "extra_ttft_ms_paired_median": round(
            statistics.median(s[0] - d[0] for s, d in zip(served, direct, strict=True)), 1
        ),
        "extra_ttft_ms_best": round(min(s[0] for s in served) - min(d[0] for d in direct), 1),
        # normalised by the engine's own figures of each run (robust to machine load)
        "decode_ratio_normalised": round(
            statistics.median(s[1] / s[4] for s in served) / statistics.median(d[1] / d[4] for d in direct), 3
        ),
        "extra_ttft_ms_normalised": round(
            statistics.median(s[0] - s[3] for s in served) - statistics.median(d[0] - d[3] for d in direct), 1
        ),
        "server_ttft_overhead_ms_median": round(statistics.median(s[0] - s[3] for s in served), 1),
        "host_ttft_overhead_ms_median": round(statistics.median(d[0] - d[3] for d in direct), 1),
        "concurrent_clients": args.clients,
        "concurrent_answered": len(ok),
        "concurrent_failed": len(failed),
        "concurrent_total_tokens_per_second": round(sum(r[2] for r in ok) / wall, 1),
        "concurrent_wall_seconds": round(wall, 2),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:38s} {value}")
    return 0 if not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
