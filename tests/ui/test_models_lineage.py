"""Lineage in My Models: a real quantize of a generated F16 model joins the library "made from" its source; the
details pane says so with the source's name as a link that selects the source, and `ls --json` carries it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import main
from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.models.types import ImportMode
from ui.app import create_window

pytest.importorskip("llama_cpp")


def test_a_quantized_model_shows_what_it_was_made_from(qtbot, ws_app, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = TinyModelConfig(n_embd=256, n_head=4, n_head_kv=2, n_ff=512, n_layer=2, n_vocab=512)
    source = write_tiny_gguf(tmp_path / "models" / "lineage-F16.gguf", config)
    source_id = ws_app.library.import_paths([source], ImportMode.LINK).imported[0].id
    made = source.with_name("lineage-Q4_K_M.gguf")
    service = ws_app.workshop
    result = service.run_job(service.start_quantize(source, made, "Q4_K_M"))
    assert made.is_file() and result["library_id"] and result["made_from"] == source.name

    # the command line: `ls --json` carries the lineage of the made model only
    assert main.main(["ls", "--json"]) == 0
    listed = {e["id"]: e for e in json.loads(capsys.readouterr().out)}
    lineage = listed[result["library_id"]]["lineage"]
    assert lineage["source_name"] == source.name and lineage["source_id"] == source_id
    assert lineage["operation"] == "quantize" and lineage["detail"] == "Q4_K_M"
    assert "lineage" not in listed[source_id]

    # the window: the details pane of the made model, its source a link that selects the source
    window = create_window(ws_app)
    qtbot.addWidget(window)
    window.show()
    window.show_page("models")
    page = window.pages["models"]
    qtbot.waitUntil(lambda: page.attached and page.model.rowCount() == 2, timeout=10_000)
    assert page.select(result["library_id"])
    label = page.details.values["Made from"]
    assert label.isVisibleTo(page.details)
    assert f'<a href="model:{source_id}">{source.name}</a> (quantize, Q4_K_M)' == label.text()
    window.grab().save(str(tmp_path / "made.png"))  # to look at: the details of the made model
    label.linkActivated.emit(f"model:{source_id}")
    assert page.selected_entry() is not None and page.selected_entry().id == source_id
    assert not label.isVisibleTo(page.details)  # the F16 was made by nobody here
