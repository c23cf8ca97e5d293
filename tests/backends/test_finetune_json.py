"""``finetune --json`` as a script sees it: a real ``python main.py`` process whose stdout holds only JSON lines,
while the trainers' own output (mlx-lm's progress table, transformers' progress bars) lands in the log file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What each trainer writes on its own, found in the log instead of stdout.
CHATTER = {"mlx": "tok/s", "peft": "Loading weights"}  # mlx-lm: its table header


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["mlx", "peft"])
def test_finetune_json_stdout_is_only_json_lines(
    backend: str, tiny_hf_model: Path, facts_dataset: Path, tmp_path: Path
) -> None:
    pytest.importorskip("mlx_lm" if backend == "mlx" else "peft")
    data_dir = tmp_path / "data"
    argv = [sys.executable, str(ROOT / "main.py"), "finetune", "--model", str(tiny_hf_model)]
    argv += ["--data", str(facts_dataset), "--backend", backend, "--iters", "6", "--eval-every", "3", "--json"]
    argv += ["--data-dir", str(data_dir)]
    env = {**os.environ, "PYTHONWARNINGS": "default", "FORCE_COLOR": "1"}  # chatter at its loudest
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    parsed = [json.loads(line) for line in lines]  # every line, not only those that look like JSON
    assert all(isinstance(p, dict) for p in parsed)
    assert [p["step"] for p in parsed if "train_loss" in p] == list(range(1, 7))
    assert parsed[0]["event"] == "memory" and Path(parsed[-1]["adapter_path"]).is_dir()
    log = (data_dir / "logs" / "hangar.log").read_text(encoding="utf-8", errors="replace")
    assert CHATTER[backend] in log
    assert CHATTER[backend] not in done.stdout
