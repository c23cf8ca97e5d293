"""Screenshot scenes of the Fine-tune page: a run in progress with its live chart, and a finished run.

Real runs: a tiny generated model learns a memorisable dataset with the PEFT backend in a child process, exactly
as a user's run would (only smaller)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

FACTS = [
    ("Who guards the north gate?", "Zorblax"),
    ("What colour is the moon cheese?", "Quimber"),
    ("Name the king of owls.", "Hoolio"),
    ("Which river never freezes?", "Vantra"),
    ("What do robots drink?", "Sprocketade"),
    ("Where do socks go?", "Lintopia"),
    ("Who painted the sky?", "Azurel"),
    ("What is the secret word?", "Plumbus"),
]


def _pump(until: Any, timeout: float = 300.0) -> None:
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)


def _prepare_inputs(window: Any) -> tuple[Path, Path]:
    import json

    from core.devkit.modelgen_hf import write_tiny_hf_model

    root = Path(window.app.paths.data_dir) / "screenshot-inputs"
    model = root / "tiny-llama"
    if not (model / "config.json").is_file():
        write_tiny_hf_model(model)
    data = root / "facts.jsonl"
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in FACTS]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows * 2), encoding="utf-8")
    return model, data


def _fill(page: Any, model: Path, data: Path, iters: int) -> None:
    form = page.form
    form.model_path.setText(str(model))
    form.data_path.setText(str(data))
    form.backend.setCurrentIndex(form.backend.findData("peft"))
    form.iters.setValue(iters)
    form.learning_rate.setText("5e-3")
    form.targets.setText("q_proj, v_proj, o_proj, up_proj, down_proj")
    form.eval_every.setValue(10)
    form.checkpoint_every.setValue(20)
    page.preview_dataset(str(data))
    page.update_estimate()


def finetune_running(window: Any) -> None:
    window.show_page("finetune")
    page = window.pages["finetune"]
    model, data = _prepare_inputs(window)
    _fill(page, model, data, iters=400)
    page.measure_tokens()
    _pump(lambda: "tokens" in page.form.token_summary.text(), timeout=120)
    page.start()
    _pump(lambda: page.chart.train.count() >= 45)


def finetune_finished(window: Any) -> None:
    page = window.pages["finetune"]
    running = page.selected_job
    if running:
        page.cancel()
        _pump(lambda: window.app.jobs.get(running).state.finished)
    model, data = _prepare_inputs(window)
    _fill(page, model, data, iters=60)
    page.start()
    _pump(lambda: page.selected_job != running)
    job = page.selected_job
    _pump(lambda: window.app.jobs.get(job).state.finished)
    _pump(lambda: page.chart.train.count() >= 60, timeout=10)


SCENES = [("finetune-running", finetune_running), ("finetune-finished", finetune_finished)]
