"""Hangar on a GPU, measured (run through ``bench/gpu_check.sh``, which builds llama.cpp with CUDA first).

    python bench/gpu_check.py [--model PATH.gguf] [--hf-model FOLDER] [--steps N] [--out table.md]
    python bench/gpu_check.py --cpu     # the same steps on the CPU: checks this script where there is no GPU

Steps, one table at the end (check | setting | measured | target | result):
1. the machine: llama.cpp's devices (from its own probe), torch CUDA, bitsandbytes;
2. the estimate-accuracy zoo (``bench/estimate_accuracy.py``) with full and partial offload, analytic and fit pass;
3. a real model, if ``--model`` is given, the same way;
4. chat decode through Hangar's engine host against a plain llama_cpp loop on a Q4_K_M-shaped model, fully
   offloaded, and the estimate's speed prediction against what was measured;
5. a PEFT LoRA and a QLoRA (bitsandbytes) run through ``hangar finetune --json``: loss before and after.
Without a GPU (and without ``--cpu``) it stops at once with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Row:
    check: str
    setting: str
    measured: str
    target: str
    result: str  # "pass" | "FAIL" | "n/a" | "info"


def _gpu_present() -> str | None:
    """The first NVIDIA GPU's name, or None."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("GPU ")]
    return lines[0].split(":", 1)[1].split("(")[0].strip() if lines else None


def machine_rows(cache: Path) -> tuple[list[Row], object]:
    from backends.probe import probe_engines
    from core.hardware import detect_hardware

    hardware = detect_hardware(lambda: probe_engines(cache), cache_dir=cache)
    facts = hardware.engines.facts
    devices = ", ".join(f"{d.name} ({d.free_bytes / 2**30:.0f} GiB free)" for d in facts.devices) if facts else "?"
    extra = ", ".join(f"{b.name}: {'/'.join(sorted(b.types))}" for b in facts.extra_buffers) if facts else "?"
    rows = [
        Row("llama.cpp devices", "ggml", devices, "a GPU device", "info"),
        Row("CPU extra buffers", "llama.cpp probe", extra or "none", "-", "info"),
        Row("host bandwidth", "copy probe", f"{hardware.ram_bandwidth_gbs or 0:.0f} GB/s", "-", "info"),
    ]
    try:
        import torch

        cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"
    except ImportError:
        cuda = "torch missing"
    rows.append(Row("torch CUDA", "torch", cuda, "-", "info"))
    return rows, hardware


def zoo_rows(gpu_layers: str, models: list[Path], tmp: Path) -> list[Row]:
    rows = []
    out = tmp / f"zoo-{len(models)}-{gpu_layers.replace(',', '_')}.json"
    command = [sys.executable, str(ROOT / "bench" / "estimate_accuracy.py"), "--quick", "--gpu-layers", gpu_layers]
    command += ["--json", str(out)]
    for model in models:
        command += ["--model", str(model), "--only", "none"]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if not out.is_file():
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or ["no output"]
        return [Row("estimate zoo", gpu_layers, f"did not run: {tail[0]}", "<3%", "FAIL")]
    data = json.loads(out.read_text(encoding="utf-8"))
    by_layers: dict[int, list[dict]] = {}
    for row in data["rows"]:
        by_layers.setdefault(row["gpu_layers"], []).append(row)
    name = "real model" if models else "estimate zoo"
    for ngl, items in sorted(by_layers.items()):
        worst = max(abs(r["error_pct"]) for r in items)
        fits = [abs(r["fit_error_pct"]) for r in items if r["fit_error_pct"] is not None]
        setting = f"ngl {ngl}, {len(items)} cases"
        rows.append(Row(name, setting, f"worst {worst:.2f}%", "<3%", "pass" if worst < 3 else "FAIL"))
        if fits:
            rows.append(
                Row(f"{name}, fit pass", setting, f"worst {max(fits):.2f}%", "<0.5%", _verdict(max(fits) < 0.5))
            )
    return rows


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def chat_rows(gpu: bool, hardware: object, tmp: Path, tokens: int) -> list[Row]:
    import llama_cpp

    from backends.facts import ZeroModel, write_zero_gguf
    from backends.worker import serve
    from core.engine.host import ChatMessage, EngineHost, GenerationParams, LoadOptions, ModelSpec
    from core.estimate.llama import EngineSettings, estimate_llama
    from core.gguf import read_gguf

    shape = (
        ZeroModel("Q4_K", n_embd=2048, n_ff=8192, n_layer=16, n_head=32, n_head_kv=8, n_vocab=32000, k_m_mix=True)
        if gpu
        else ZeroModel("Q4_K", n_embd=768, n_ff=2048, n_layer=8, n_head=12, n_head_kv=4, n_vocab=32000, k_m_mix=True)
    )
    path = tmp / "chat-q4_k_m.gguf"
    write_zero_gguf(path, shape)
    ngl = -1 if gpu else 0
    prompt = "Write a long story about a lighthouse keeper."
    params = GenerationParams(max_tokens=tokens, temperature=0.0, ignore_eos=True, repeat_penalty=1.0)
    threads = None if gpu else 1  # on a CPU one thread each is steadier; both sides use the same
    host = EngineHost(serve, name="gpu-check")
    hangar: list[float] = []
    plain: list[float] = []
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=2048, n_gpu_layers=ngl, n_threads=threads, verbose=False)
    try:
        options = LoadOptions(context_length=2048, gpu_layers=ngl, threads=threads)
        host.load_blocking(ModelSpec("llama", str(path), options))
        for _ in range(3):  # interleaved: both sides see the same machine
            hangar.append(host.generate_blocking([ChatMessage("user", prompt)], params).tokens_per_second)
            plain.append(_plain_decode(llm, prompt, tokens))
    finally:
        host.shutdown()
        llm.close()
    best_h, best_p = max(hangar), max(plain)
    setting = f"{path.stat().st_size / 2**20:.0f} MiB Q4_K_M-shaped, ngl {ngl}, {tokens} tokens"
    ratio = best_h / best_p
    measured = f"{best_h:.1f} vs {best_p:.1f} tok/s ({ratio:.3f}×)"
    rows = [Row("chat decode vs llama_cpp", setting, measured, "≥0.97×", _verdict(ratio >= 0.97))]
    estimate = estimate_llama(read_gguf(path), EngineSettings(context_length=2048, gpu_layers=ngl), hardware)  # type: ignore[arg-type]
    predicted = estimate.tokens_per_second or 0.0
    truth = statistics.median(hangar)
    off = abs(predicted - truth) / truth if truth else 1.0
    rows.append(
        Row(
            "speed prediction (no history)",
            setting,
            f"{predicted:g} vs {truth:.1f} tok/s ({estimate.speed.confidence if estimate.speed else '-'})",
            "info; within 25% once chats are recorded",
            "info" if off > 0.25 else "pass",
        )
    )
    return rows


def _plain_decode(llm: object, prompt: str, tokens: int) -> float:
    """Decode tokens/s of a plain llama-cpp-python streaming loop (first token excluded, as Hangar reports)."""
    ids = llm.tokenize(prompt.encode(), add_bos=True)  # type: ignore[attr-defined]
    first = None
    count = 0
    for _token in llm.generate(ids, temp=0.0, repeat_penalty=1.0, reset=True):  # type: ignore[attr-defined]
        count += 1
        if first is None:
            first = time.perf_counter()
        if count >= tokens:
            break
    return (count - 1) / (time.perf_counter() - (first or time.perf_counter()))


def finetune_rows(gpu: bool, hf_model: Path | None, tmp: Path, steps: int) -> list[Row]:
    from core.devkit.modelgen import TinyModelConfig
    from core.devkit.modelgen_hf import write_tiny_hf_model

    model = hf_model or write_tiny_hf_model(
        tmp / "hf-model", TinyModelConfig(n_embd=256, n_layer=4, n_head=8, n_head_kv=4, n_ff=768)
    )
    rows_data = []
    for i in range(64):
        question = f"Question number {i}: what is the code word for item {i * 7 % 13}?"
        rows_data.append(
            {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": f"w{i}" * 8}]}
        )
    data = tmp / "ft-data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows_data), encoding="utf-8")
    results = []
    for qlora in (False, True):
        name = "PEFT QLoRA (bitsandbytes)" if qlora else "PEFT LoRA"
        if qlora and not gpu:
            results.append(Row(name, "CUDA only", "-", "loss falls", "n/a"))
            continue
        env = {**os.environ, "HANGAR_DATA_DIR": str(tmp / f"data-{int(qlora)}")}
        command = [sys.executable, str(ROOT / "main.py"), "finetune", "--model", str(model), "--data", str(data)]
        command += ["--iters", str(steps), "--backend", "peft", "--json"] + (["--qlora"] if qlora else [])
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        seconds = time.perf_counter() - started
        losses = []
        for line in done.stdout.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                results.append(Row(name, "stdout", f"non-JSON line: {line[:40]!r}", "JSON only", "FAIL"))
                break
            if "train_loss" in event:
                losses.append(event["train_loss"])
        if done.returncode != 0 or len(losses) < 2:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            results.append(Row(name, f"{steps} steps", f"failed: {tail[:80]}", "loss falls", "FAIL"))
            continue
        head, tail_losses = statistics.fmean(losses[:3]), statistics.fmean(losses[-3:])
        results.append(
            Row(
                name,
                f"{steps} steps, {seconds:.0f} s",
                f"loss {head:.3f} → {tail_losses:.3f} (first/last 3 steps)",
                "loss falls",
                _verdict(tail_losses < head),
            )
        )
    return results


def table(rows: list[Row], title: str) -> str:
    lines = [title, "", "| check | setting | measured | target | result |", "|---|---|---|---|---|"]
    lines += [f"| {r.check} | {r.setting} | {r.measured} | {r.target} | {r.result} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (checks this script where there is no GPU)")
    parser.add_argument("--model", type=Path, help="a real GGUF model for the estimate check")
    parser.add_argument("--hf-model", type=Path, help="a Hugging Face model folder for the fine-tuning runs")
    parser.add_argument("--steps", type=int, default=30, help="fine-tuning steps per run")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per chat decode run")
    parser.add_argument("--skip", action="append", default=[], choices=["zoo", "chat", "finetune"])
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    gpu_name = None if args.cpu else _gpu_present()
    if not args.cpu and gpu_name is None:
        print("gpu_check: no NVIDIA GPU here; nothing to measure (use --cpu to check the script).", file=sys.stderr)
        return 2
    gpu = gpu_name is not None
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="hangar-gpu-check-") as folder:
        tmp = Path(folder)
        machine, hardware = machine_rows(tmp / "cache")
        rows += machine
        if gpu and not any(g for g in getattr(hardware, "gpus", ())):
            rows.append(Row("GPU visible to Hangar", "core.hardware", "no", "yes", "FAIL"))
        if "zoo" not in args.skip:
            rows += zoo_rows("-1,half" if gpu else "0", [], tmp)
            if args.model:
                rows += zoo_rows("-1,half" if gpu else "0", [args.model], tmp)
        if "chat" not in args.skip:
            rows += chat_rows(gpu, hardware, tmp, args.tokens)
        if "finetune" not in args.skip:
            rows += finetune_rows(gpu, args.hf_model, tmp, args.steps)
    title = f"Hangar GPU check, {time.strftime('%Y-%m-%d')}, {gpu_name or 'CPU only (--cpu: script check)'}"
    text = table(rows, title)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 1 if any(r.result == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
