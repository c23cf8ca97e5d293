"""The Fine-tune page with real jobs: form values, dataset preview, memory estimate, a live chart, cancel/resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from core.finetune.types import FinetuneConfig
from core.jobs import JobState
from ui.bridge import Bridge
from ui.pages.finetune import FinetunePage


@pytest.fixture
def page(qtbot, ft_app):  # type: ignore[no-untyped-def]
    bridge = Bridge()
    widget = FinetunePage(ft_app, bridge)
    qtbot.addWidget(widget)
    widget.resize(1180, 760)
    widget.show()
    yield widget
    bridge.disconnect_all()


def test_form_gives_the_default_config_and_refuses_bad_values(page, qtbot) -> None:  # type: ignore[no-untyped-def]
    assert page.form.config() == FinetuneConfig()
    page.form.rank.setValue(16)
    page.form.use_epochs.setChecked(True)
    config = page.form.config()
    assert config.rank == 16 and config.epochs == 3.0 and not page.form.iters.isEnabled()
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert "Choose a base model" in page.message.text()
    page.form.model_path.setText("/nowhere")
    page.form.data_path.setText("/nowhere.jsonl")
    page.form.learning_rate.setText("fast")
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert "not a learning rate" in page.message.text()
    # restoring a run's settings fills the form
    page.form.set_config(FinetuneConfig(rank=4, learning_rate=3e-4, quantize_4bit=True), "mlx")
    assert page.form.config().rank == 4 and page.form.qlora.isChecked()
    assert page.form.backend_value() == "mlx"


def test_dataset_preview_lists_bad_lines(page, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "hello there"}\n{"txt": "typo"}\n{"text": "general kenobi"}\n')
    page.form.data_path.setText(str(data))
    page.preview_dataset(str(data))
    qtbot.waitUntil(lambda: "2 rows in text format" in page.form.data_summary.text(), timeout=10_000)
    assert "line 2" in page.form.data_summary.text() and "hello there" in page.form.data_summary.text()
    page.preview_dataset(str(tmp_path / "missing.jsonl"))
    qtbot.waitUntil(lambda: "does not exist" in page.form.data_summary.text(), timeout=10_000)


def test_csv_columns_are_offered_and_used(page, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "qa.csv"
    data.write_text("question,answer,notes\nWhat is 2+2?,4,maths\nCapital of France?,Paris,geo\n")
    page.form.data_path.setText(str(data))
    page.preview_dataset(str(data))
    assert not page.form.csv_row.isHidden()
    assert page.form.csv_prompt.currentData() == "question" and page.form.csv_completion.currentData() == "answer"
    qtbot.waitUntil(lambda: "2 rows in completion format" in page.form.data_summary.text(), timeout=10_000)
    page.form.csv_prompt.setCurrentIndex(0)  # "—": train on a text column instead
    page.form.csv_text.setCurrentIndex(page.form.csv_text.findData("notes"))
    qtbot.waitUntil(lambda: "2 rows in text format" in page.form.data_summary.text(), timeout=10_000)
    plain = tmp_path / "rows.jsonl"
    plain.write_text('{"text": "a"}\n')
    page.form.data_path.setText(str(plain))
    page.preview_dataset(str(plain))
    assert page.form.csv_row.isHidden() and page.form.columns() is None


@pytest.mark.slow
def test_skipping_bad_rows_starts_a_run_on_the_good_ones(  # type: ignore[no-untyped-def]
    page, qtbot, ft_app, tiny_hf_model: Path, facts_dataset: Path, tmp_path: Path
) -> None:
    data = tmp_path / "mixed.jsonl"
    data.write_text((facts_dataset / "train.jsonl").read_text() + '{"messages": "broken"}\n')
    page.form.model_path.setText(str(tiny_hf_model))
    page.form.data_path.setText(str(data))
    page.form.iters.setValue(2)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "line 9" in page.message.text(), timeout=10_000)  # refused by default
    page.form.skip_bad_rows.setChecked(True)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.jobs_model.rowCount() == 1, timeout=10_000)
    job = ft_app.finetune.wait(page.selected_job, timeout=120)
    assert job.state == JobState.SUCCEEDED, job.error


def test_memory_estimate_is_shown_for_the_chosen_model(page, qtbot, tiny_hf_model: Path) -> None:  # type: ignore[no-untyped-def]
    page.form.model_path.setText(str(tiny_hf_model))
    page.update_estimate()
    qtbot.waitUntil(lambda: "Training needs about" in page.memory_label.text(), timeout=20_000)


def test_my_models_fine_tune_action_fills_the_base_model(page, ft_app, tiny_hf_model: Path) -> None:  # type: ignore[no-untyped-def]
    from core.models.types import ImportMode

    entry = ft_app.library.import_paths([tiny_hf_model], ImportMode.LINK).imported[0]
    page.open_payload(entry.id)
    assert page.form.model_path.text() == str(tiny_hf_model)
    page.open_payload("no-such-model")
    assert "no model" in page.message.text()


def test_bad_dataset_start_shows_the_error_in_place(page, qtbot, tiny_hf_model: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "bad.jsonl"
    data.write_text('{"messages": []}\n')
    page.form.model_path.setText(str(tiny_hf_model))
    page.form.data_path.setText(str(data))
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "line 1" in page.message.text(), timeout=10_000)
    assert page.jobs_model.rowCount() == 0


@pytest.mark.slow
def test_a_run_draws_its_chart_live_and_can_be_cancelled_and_resumed(  # type: ignore[no-untyped-def]
    page, qtbot, qtmodeltester, ft_app, tiny_hf_model: Path, facts_dataset: Path
) -> None:
    form = page.form
    form.model_path.setText(str(tiny_hf_model))
    form.data_path.setText(str(facts_dataset))
    form.backend.setCurrentIndex(form.backend.findData("peft"))
    form.iters.setValue(24)
    form.learning_rate.setText("1e-2")
    form.targets.setText("q_proj, v_proj, o_proj, up_proj, down_proj")
    form.eval_every.setValue(8)
    form.checkpoint_every.setValue(4)
    qtbot.mouseClick(form.measure_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "tokens" in form.token_summary.text() and "✔" in form.token_summary.text(), timeout=60_000)
    assert "8 rows" in form.token_summary.text()
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.jobs_model.rowCount() == 1, timeout=10_000)
    qtbot.waitUntil(lambda: page.chart.train.count() >= 3, timeout=120_000)
    assert "Step" in page.stats.text() and "tok/s" in page.stats.text()
    assert page.cancel_button.isEnabled()
    qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.resume_button.isEnabled(), timeout=30_000)
    job_id = page.selected_job
    assert ft_app.jobs.get(job_id).state == JobState.CANCELLED
    qtbot.mouseClick(page.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ft_app.jobs.get(job_id).state == JobState.SUCCEEDED, timeout=120_000)
    qtbot.waitUntil(lambda: page.chart.train.count() == 24, timeout=10_000)
    assert [p.x() for p in page.chart.train.points()] == list(range(1, 25))
    assert page.chart.val.count() >= 3
    assert "Finished at step 24" in page.log.toPlainText()
    state_cell = page.jobs_model.index(0, page.jobs_model.COL_STATE)
    qtbot.waitUntil(lambda: state_cell.data() == "Succeeded", timeout=10_000)  # the job's change is queued
    assert "Adapter:" in page.stats.text()
    qtmodeltester.check(page.jobs_model)
    # export for llama.cpp from the page: two export jobs, their paths in the log
    assert page.export_gguf_button.isEnabled()
    qtbot.mouseClick(page.export_gguf_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.log.toPlainText().count("Exported gguf-") == 2, timeout=60_000)
