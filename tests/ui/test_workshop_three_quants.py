"""Compare three quants of one generated model (F16, Q8_0, Q4_K_M, made by real quantize jobs) from the window:
every row carries real figures (size, memory at the context, prompt and generation speed, perplexity, and KL
against the F16), the plot shows three points, and `compare --json` then reports the same three rows."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import main
from core.devkit.modelgen import _WORDS, TinyModelConfig, write_tiny_gguf
from core.workshop.types import BenchRequest
from ui.bridge import Bridge
from ui.pages.workshop import WorkshopPage

pytest.importorskip("llama_cpp")

#: Rows of 256 so that Q4_K_M's K-quant blocks apply (narrower rows fall back to another type).
WIDE = TinyModelConfig(n_embd=256, n_head=4, n_head_kv=2, n_ff=512, n_layer=2, n_vocab=512, name="wide-llama")
QUANTS = ("Q8_0", "Q4_K_M")


def test_three_quants_side_by_side(qtbot, ws_app, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    f16 = write_tiny_gguf(tmp_path / "models" / "wide-llama-F16.gguf", WIDE)
    service = ws_app.workshop
    made = {}
    for qtype in QUANTS:
        made[qtype] = f16.with_name(f"wide-llama-{qtype}.gguf")
        service.run_job(service.start_quantize(f16, made[qtype], qtype))
    text = tmp_path / "words.txt"
    text.write_text(" ".join(random.Random(5).choice(_WORDS) for _ in range(300)), encoding="utf-8")

    bridge = Bridge()
    page = WorkshopPage(ws_app, bridge)
    page.bench = BenchRequest("", 16, 8, (0,), 1)
    qtbot.addWidget(page)
    page.resize(1180, 760)
    page.show()
    for path in (f16, *made.values()):  # the quants are in the list already (they joined the library)
        page.add_model(path, checked=True)
    assert sorted(page.checked_paths()) == sorted(str(p) for p in (f16, *made.values()))
    page.text.setText(str(text))
    page.ctx.setValue(64)
    page.chunks.setValue(3)
    page.compare_button.click()
    model = page.table_model
    qtbot.waitUntil(lambda: model.rowCount() == 3, timeout=180_000)
    rows = {model.index(r, 0).data(model.RowRole).quant: model.index(r, 0).data(model.RowRole) for r in range(3)}
    assert set(rows) == {"F16", "Q8_0", "Q4_K_M"}
    for row in rows.values():
        assert row.file_size > 0 and row.memory_bytes and row.memory_bytes > row.file_size / 2
        assert row.pp_tokens_per_second and row.tg_tokens_per_second and row.perplexity and row.perplexity > 1
    assert rows["F16"].kl_divergence is None  # the reference: the largest file
    assert 0 < rows["Q8_0"].kl_divergence < rows["Q4_K_M"].kl_divergence  # fewer bits, further from the F16
    assert rows["F16"].file_size > rows["Q8_0"].file_size > rows["Q4_K_M"].file_size
    assert rows["Q4_K_M"].made_from == f16.name
    for r in range(3):  # every cell of every row shows a figure (the reference's KL column excepted)
        cells = [model.index(r, c).data() for c in range(model.columnCount())]
        missing = [model.HEADERS[c] for c, v in enumerate(cells) if v in (None, "", "—")]
        assert missing in ([], ["KL div.", "Same top"]), (cells, missing)
    assert page.chart.ppl.count() == 3 and page.chart.kld.count() == 2
    bridge.disconnect_all()

    # the command line reads the same stored figures (nothing is measured again)
    argv = ["compare", *(str(p) for p in (f16, *made.values())), "--text", str(text), "--ctx", "64", "--chunks", "3"]
    assert main.main([*argv, "--n-prompt", "16", "--n-gen", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    by_quant = {r["quant"]: r for r in result["rows"]}
    assert set(by_quant) == {"F16", "Q8_0", "Q4_K_M"} and result["reference"] == str(f16)
    assert by_quant["Q4_K_M"]["kl_divergence"] == pytest.approx(rows["Q4_K_M"].kl_divergence)
    assert by_quant["Q8_0"]["tg_tokens_per_second"] == pytest.approx(rows["Q8_0"].tg_tokens_per_second)
