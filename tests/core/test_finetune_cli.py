"""``hangar finetune``: JSON lines per step, a final adapter path, clear one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import main


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_finetune_command_streams_steps_and_ends_with_the_adapter(
    tiny_hf_model: Path, facts_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["finetune", "--model", str(tiny_hf_model), "--data", str(facts_dataset), "--backend", "peft"]
    argv += ["--iters", "12", "--rank", "4", "--learning-rate", "1e-2", "--batch-size", "4", "--eval-every", "6"]
    argv += ["--json", "--data-dir", str(tmp_path / "data")]
    assert main.main(argv) == 0
    lines = json_lines(capsys.readouterr().out)
    memory = lines[0]
    assert memory["event"] == "memory" and memory["total_bytes"] > 0
    steps = [line for line in lines if "train_loss" in line]
    assert [s["step"] for s in steps] == list(range(1, 13))
    assert [v["step"] for v in lines if "val_loss" in v] == [0, 6, 12]
    final = lines[-1]
    assert Path(final["adapter_path"], "adapter_model.safetensors").is_file()
    assert final["steps"] == 12
    # export the adapter for llama.cpp
    assert main.main(["finetune", "--export", final["job_id"], "--format", "gguf-lora", *argv[-3:]]) == 0
    exported = json_lines(capsys.readouterr().out)[-1]
    assert exported["format"] == "gguf-lora" and Path(exported["path"]).is_file()
    # the run is in the job history
    assert main.main(["jobs", "--kind", "finetune", "--json", "--data-dir", str(tmp_path / "data")]) == 0
    history = json.loads(capsys.readouterr().out)
    assert history[0]["state"] == "succeeded" and history[0]["params"]["config"]["rank"] == 4


def test_finetune_command_reports_bad_input_in_one_line(
    tiny_hf_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"oops": 1}\nnot json\n')
    base = ["--json", "--data-dir", str(tmp_path / "data")]
    code = main.main(["finetune", "--model", str(tiny_hf_model), "--data", str(bad), *base])
    assert code == 1
    error = json_lines(capsys.readouterr().out)[-1]["error"]
    assert error["code"] == "dataset" and "line 2" in error["message"] and "line 3" in error["message"]
    assert main.main(["finetune", "--resume", "nosuchjob", *base]) == 1
    assert json_lines(capsys.readouterr().out)[-1]["error"]["code"] == "not_found"
    csv = tmp_path / "qa.csv"
    csv.write_text("q,a\nhello,world\n")
    assert main.main(["finetune", "--model", str(tiny_hf_model), "--data", str(csv), *base]) == 1
    assert "cannot tell which columns" in json_lines(capsys.readouterr().out)[-1]["error"]["message"]
    argv = ["finetune", "--model", str(tiny_hf_model), "--data", str(csv), "--prompt-column", "q"]
    assert main.main([*argv, "--completion-column", "nope", *base]) == 1
    assert "no column 'nope'" in json_lines(capsys.readouterr().out)[-1]["error"]["message"]
    assert main.main(["finetune", "--model", str(tiny_hf_model), "--data", str(bad), "--rank", "0", *base]) == 1
    assert "rank must be" in json_lines(capsys.readouterr().out)[-1]["error"]["message"]
