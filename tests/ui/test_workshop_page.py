"""The Workshop page with real jobs: quantize a tiny model from the window, then compare it with its source in the
table and the plot; bad input is shown in place."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from core.devkit.modelgen import _WORDS
from core.workshop.types import BenchRequest
from ui.bridge import Bridge
from ui.pages.workshop import PathRole, WorkshopPage

pytest.importorskip("llama_cpp")


@pytest.fixture
def page(qtbot, ws_app):  # type: ignore[no-untyped-def]
    bridge = Bridge()
    widget = WorkshopPage(ws_app, bridge)
    widget.bench = BenchRequest("", 16, 4, (0,), 1)
    qtbot.addWidget(widget)
    widget.resize(1180, 760)
    widget.show()
    yield widget
    bridge.disconnect_all()


def test_quantize_then_compare_from_the_window(page, qtbot, ws_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.devkit.modelgen import write_tiny_gguf

    source = write_tiny_gguf(tmp_path / "models" / "tiny-llama-F16.gguf")
    text = tmp_path / "words.txt"
    text.write_text(" ".join(random.Random(3).choice(_WORDS) for _ in range(200)), encoding="utf-8")

    page.add_model(source, checked=True)
    page.models.setCurrentRow(0)
    page.qtype.setCurrentText("Q8_0")
    page.quantize_button.click()
    qtbot.waitUntil(lambda: page.quantize_button.isEnabled(), timeout=60_000)
    made = source.with_name("tiny-llama-Q8_0.gguf")
    assert made.is_file(), page.status.text()
    assert "made from tiny-llama-F16.gguf" in page.status.text()
    assert ws_app.library.find_by_path(made) is not None
    assert sorted(page.checked_paths()) == sorted([str(source), str(made)])

    page.text.setText(str(text))
    page.ctx.setValue(64)
    page.chunks.setValue(2)
    page.compare_button.click()
    qtbot.waitUntil(lambda: page.table_model.rowCount() == 2, timeout=120_000)
    rows = {page.table_model.index(r, 0).data(page.table_model.RowRole).model: r for r in range(2)}
    q8 = page.table_model.index(rows[made.name], 0).data(page.table_model.RowRole)
    assert q8.kl_divergence is not None and q8.kl_divergence > 0 and q8.made_from == source.name
    assert q8.tg_tokens_per_second and q8.tg_tokens_per_second > 0
    ppl = page.table_model.index(rows[made.name], page.table_model.COL_PPL).data()
    assert ppl != "—" and float(ppl) > 1
    assert page.chart.ppl.count() == 2 and page.chart.kld.count() == 1


def test_bad_input_is_shown_in_place(page, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.compare_button.click()
    assert "at least two" in page.status.text()
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("not a model", encoding="utf-8")
    page.add_model(not_gguf)
    page.models.setCurrentRow(page.models.count() - 1)
    assert page.models.currentItem().data(PathRole) == str(not_gguf)
    page.quantize_button.click()
    assert "not a GGUF" in page.status.text()
    assert page.quantize_button.isEnabled() and not list(tmp_path.glob("*Q4_K_M*"))
    assert page.models.currentItem().checkState() == Qt.CheckState.Unchecked
