"""Estimates as the window shows them (field report items 18, 20, 21): the context slider stops at the model's
trained length (past it only by an explicit RoPE-scaling choice), speeds are rounded and capped, and sizes use one
unit system everywhere (core's binary GiB/MiB, ``core.estimate.units``). Real GGUF headers."""

from __future__ import annotations

from pathlib import Path

from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.estimate.fitting import read_target
from ui.units import format_bytes, format_speed
from ui.widgets.estimate_panel import CONTEXTS, EstimatePanel


def test_the_context_slider_stops_at_the_trained_length(qtbot, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = write_tiny_gguf(tmp_path / "short-F16.gguf", TinyModelConfig(context_length=2048))
    panel = EstimatePanel()
    qtbot.addWidget(panel)
    panel.set_hardware(app.hardware())
    panel.set_model(read_target(str(model)))
    assert panel.trained_context() == 2048
    assert CONTEXTS[panel.context.maximum()] == 2048
    assert panel.settings().context_length == 2048  # the 4,096 default came down to what the model knows
    assert "all 2,048 tokens it was trained for" in panel.details.text()
    panel.beyond.setChecked(True)  # an explicit RoPE-scaling choice lifts the cap
    assert CONTEXTS[panel.context.maximum()] == CONTEXTS[-1]
    panel.context.setValue(panel.context.maximum())
    assert panel.settings().context_length == CONTEXTS[-1]


def test_speeds_are_rounded_and_capped() -> None:
    assert format_speed(37_235.4) == "over 500 tokens/s"
    assert format_speed(43.7) == "about 44 tokens/s"
    assert format_speed(123.4) == "about 120 tokens/s"
    assert format_speed(0.456) == "about 0.5 tokens/s"
    assert format_speed(1.04) == format_speed(1.4) == "about 1 token/s"
    assert format_speed(None) == "unknown"


def test_one_unit_system(qtbot, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert format_bytes(2**30) == "1.0 GiB"  # never "1.0 GB" with a tooltip saying "1.0 GiB"
    assert format_bytes(1536 * 2**20) == "1.5 GiB"
    model = write_tiny_gguf(tmp_path / "tiny-F16.gguf")
    panel = EstimatePanel()
    qtbot.addWidget(panel)
    panel.set_hardware(app.hardware())
    panel.set_model(read_target(str(model)))
    shown = " ".join([label.text() for label, _bar in panel.bars] + [panel.details.text(), panel.badge.toolTip()])
    assert " GB" not in shown and " MB" not in shown  # one system: GiB/MiB only
    assert "budget" in shown  # "of a 12.3 GiB budget", not a bare second number that reads like free memory


def test_files_without_shape_data_get_a_size_based_verdict_and_no_worst_quant(app) -> None:  # type: ignore[no-untyped-def]
    """Item 19: a header without shape data said "fit unknown" (even 398 MB on a 25 GB machine) and the Download
    button then offered the smallest quant."""
    from core.hub.files import RemoteFile, group_files
    from core.hub.fit import QuantFit
    from ui.pages.discover_models import FIT_UNKNOWN, FilesModel, preferred_group

    names = ("m-Q2_K.gguf", "m-Q3_K_M.gguf", "m-Q4_K_M.gguf", "m-Q8_0.gguf")
    groups = group_files([RemoteFile(n, 398_000_000 + i) for i, n in enumerate(names)])
    assert preferred_group(groups).quant == "Q4_K_M"
    assert preferred_group([g for g in groups if g.quant in ("Q2_K", "Q3_K_M")]).quant == "Q3_K_M"  # the middle
    model = FilesModel()
    model.reset(groups)
    model.hardware = app.hardware()
    q2 = groups[0]
    model.set_fit(QuantFit(q2.key, None, "no shape data in the header"))
    text = model.fit_text(q2)
    assert text != FIT_UNKNOWN and "by size" in text and text.startswith("≈")
