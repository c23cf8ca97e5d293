"""The Workshop against llama.cpp's own ``llama-perplexity`` on the largest generated model that is practical here,
and the quants of it side by side (size, perplexity, KL divergence, same-top-token share).

    python bench/workshop_llama_tools.py     # once: builds llama-perplexity in ~/.cache/hangar
    python bench/workshop_accuracy.py [--embd 1024 --layers 8 --vocab 32000 --ctx 512 --chunks 8]

The model has random weights (there is no real model on this machine and no Hub access): its perplexity is near
its vocabulary size and says nothing about language; what the numbers show is that Hangar computes exactly what
llama.cpp computes, and how much each quant moves the output distribution.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.workshop_llama_tools import perplexity_tool
from core.devkit.modelgen import _WORDS, TinyModelConfig, write_tiny_gguf


def tool_run(tool: Path, *args: str) -> str:
    # llama.cpp logs from a worker thread; now and then the last lines are lost at exit: run again then
    for _ in range(3):
        done = subprocess.run([str(tool), *args], capture_output=True, text=True, check=True)
        output = done.stdout + done.stderr
        if "Final estimate" in output or ("Mean PPL(Q)" in output and "Same top p:" in output):
            break
    return output


def tool_numbers(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    patterns = {
        "perplexity": r"Final estimate: PPL = ([\d.]+)",
        "ppl_q": r"Mean PPL\(Q\)\s*:\s*([\d.]+)",
        "kl_divergence": r"Mean\s+KLD:\s*([\d.eE+-]+)",
        "same_top_p": r"Same top p:\s*([\d.]+)",
    }
    for key, pattern in patterns.items():
        match = re.search(pattern, text)
        if match:
            found[key] = float(match.group(1))
    if "same_top_p" in found:
        found["same_top_p"] /= 100
    if "ppl_q" in found:
        found.setdefault("perplexity", found.pop("ppl_q"))
    return found


def hangar(*argv: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "main.py", *argv, "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embd", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--types", default="Q8_0,Q6_K,Q4_K_M")
    args = parser.parse_args()
    tool = perplexity_tool()
    if tool is None:
        raise SystemExit("llama-perplexity is not built: run python bench/workshop_llama_tools.py first.")
    work = Path(tempfile.mkdtemp(prefix="hangar-workshop-"))
    config = TinyModelConfig(
        n_embd=args.embd,
        n_head=args.embd // 64,
        n_head_kv=max(1, args.embd // 256),
        n_ff=args.embd * 4,
        n_layer=args.layers,
        n_vocab=args.vocab,
        name="generated-llama",
    )
    started = time.monotonic()
    f16 = write_tiny_gguf(work / "generated-llama-F16.gguf", config)
    print(
        f"model: {f16.stat().st_size / 2**20:.0f} MiB F16, {args.embd} wide, {args.layers} layers, vocab {args.vocab}"
    )
    rnd = random.Random(0)
    text = work / "text.txt"
    text.write_text(" ".join(rnd.choice(_WORDS) for _ in range(args.ctx * (args.chunks + 1))), encoding="utf-8")
    data = ["--data-dir", str(work / "data")]
    common = ["-f", str(text), "-c", str(args.ctx), "-b", str(args.ctx), "--chunks", str(args.chunks)]
    base = work / "base.kld"
    reference = tool_numbers(tool_run(tool, "-m", str(f16), *common, "--kl-divergence-base", str(base)))
    ours = hangar("eval", str(f16), "--text", str(text), "--ctx", str(args.ctx), "--chunks", str(args.chunks), *data)
    rows = [("F16", f16.stat().st_size, ours, reference)]
    for qtype in args.types.split(","):
        out = work / f"generated-llama-{qtype}.gguf"
        hangar("quantize", str(f16), "--type", qtype, "--out", str(out), *data)
        theirs = tool_numbers(
            tool_run(tool, "-m", str(out), *common, "--kl-divergence-base", str(base), "--kl-divergence")
        )
        mine = hangar(
            "eval",
            str(out),
            "--text",
            str(text),
            "--ctx",
            str(args.ctx),
            "--chunks",
            str(args.chunks),
            "--reference",
            str(f16),
            *data,
        )
        rows.append((qtype, out.stat().st_size, mine, theirs))
    print(
        f"{'type':<8} {'MiB':>7} {'size':>6} {'PPL hangar':>12} {'PPL llama':>12} {'Δ %':>7} {'KLD hangar':>11} "
        f"{'KLD llama':>11} {'top hangar':>10} {'top llama':>10}"
    )
    for name, size, mine, theirs in rows:
        delta = 100 * (float(mine["perplexity"]) / theirs["perplexity"] - 1)
        kld_mine = mine.get("kl_divergence")
        top_mine = mine.get("same_top_p")
        print(
            f"{name:<8} {size / 2**20:>7.1f} {size / rows[0][1]:>6.3f} {float(mine['perplexity']):>12.4f} "
            f"{theirs['perplexity']:>12.4f} {delta:>7.3f} "
            f"{'—' if kld_mine is None else format(float(kld_mine), '.6f'):>11} "
            f"{theirs.get('kl_divergence', float('nan')):>11.6f} "
            f"{'—' if top_mine is None else format(float(top_mine), '.4f'):>10} "
            f"{theirs.get('same_top_p', float('nan')):>10.4f}"
        )
    print(f"({time.monotonic() - started:.0f} s; files in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
