"""Speed predictions against what chat then measures: for generated models of a few sizes, `estimate --json`'s
``tokens_per_second`` next to the decode speed `chat --json` measures on this machine, first with no history (a
fresh --data-dir: the bandwidth probe and llama.cpp's decode probe alone), then after one saved chat (and after a
Workshop speed run) of the same model, and, calibrated, for a model with no measurement of its own.

    python bench/speed_prediction.py [--chats N] [--tokens N] [--keep DIR]

Everything runs through the command line (`python main.py ...`), as a user would, each command a fresh process.
The models have random weights (``core.devkit.modelgen``); the largest is ~200 MB so that reading the weights
(the bandwidth term) decides its speed, as it does for real models.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf  # noqa: E402

MODELS = {
    "tiny-f16 (2 MB)": TinyModelConfig(n_vocab=4000, n_embd=256, n_ff=768, n_layer=2, n_head=4, n_head_kv=2),
    "small-q8 (40 MB)": TinyModelConfig(
        n_vocab=8192, n_embd=768, n_layer=6, n_head=12, n_head_kv=4, n_ff=2048, weight_type="Q8_0"
    ),
    "large-q8 (200 MB)": TinyModelConfig(
        n_vocab=32000, n_embd=1024, n_layer=12, n_head=16, n_head_kv=4, n_ff=2816, weight_type="Q8_0"
    ),
}
PROMPT = "Write a long story about a lighthouse keeper and the sea."


def hangar(data_dir: Path, *args: str, stdin: str | None = None) -> dict:
    command = [sys.executable, str(ROOT / "main.py"), "--data-dir", str(data_dir), *args]
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout) if "--json" in args else {}


def estimate(data_dir: Path, model: Path) -> dict:
    data = hangar(data_dir, "estimate", str(model), "--gpu-layers", "0", "--ctx", "2048", "--json")
    return {"tps": data["tokens_per_second"], **(data.get("speed") or {})}


def chat_speed(data_dir: Path, model: Path, tokens: int, rounds: int) -> float:
    speeds = []
    for _ in range(rounds):
        data = hangar(
            data_dir,
            "chat",
            str(model),
            "--prompt",
            PROMPT,
            "--max-tokens",
            str(tokens),
            "--temperature",
            "0",
            "--context-length",
            "2048",
            "--gpu-layers",
            "0",
            "--json",
        )
        speeds.append(float(data["tokens_per_second"]))
    return statistics.median(speeds)


def saved_chat(data_dir: Path, model: Path, tokens: int) -> None:
    """One interactive chat (saved with the app's conversations, as the window's are): its speed is recorded."""
    hangar(
        data_dir,
        "chat",
        str(model),
        "--max-tokens",
        str(tokens),
        "--temperature",
        "0",
        "--context-length",
        "2048",
        "--gpu-layers",
        "0",
        stdin=f"{PROMPT}\n/exit\n",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=3, help="chat runs per measurement (median)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per chat reply")
    parser.add_argument("--keep", type=Path, help="write the models and data here (default: a temporary folder)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="hangar-speed-"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: write_tiny_gguf(folder / f"m{i}.gguf", cfg) for i, (name, cfg) in enumerate(MODELS.items())}
    data = folder / "data"
    # 1. no history: every prediction before any chat (the first command runs the bandwidth and decode probes)
    fresh = {name: estimate(data, path) for name, path in paths.items()}
    measured = {name: chat_speed(data, path, args.tokens, args.chats) for name, path in paths.items()}
    # 2. one saved chat of each model but the first; the first then predicted from the others (calibrated)
    names = list(paths)
    for name in names[1:]:
        saved_chat(data, paths[name], args.tokens)
    after = {name: estimate(data, path) for name, path in paths.items()}
    again = {name: chat_speed(data, path, args.tokens, args.chats) for name, path in paths.items()}
    rows = [("model", "history", "predicted tok/s", "confidence", "measured tok/s", "predicted/measured")]
    for name in names:
        rows.append(
            (
                name,
                "none",
                f"{fresh[name]['tps']:.1f}",
                fresh[name].get("confidence", "?"),
                f"{measured[name]:.1f}",
                f"{fresh[name]['tps'] / measured[name]:.2f}",
            )
        )
    for name in names:
        history = "other models' chats" if name == names[0] else "one saved chat"
        rows.append(
            (
                name,
                history,
                f"{after[name]['tps']:.1f}",
                after[name].get("confidence", "?"),
                f"{again[name]:.1f}",
                f"{after[name]['tps'] / again[name]:.2f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    print(f"\nbasis (no history, {names[-1]}): {fresh[names[-1]].get('basis')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
