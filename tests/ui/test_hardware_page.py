"""The Hardware page, the estimate panel and fit badges as real widgets (offscreen): detection on this machine,
estimating a real generated model, and a described GPU for the offload states."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf
from core.estimate.fitting import FitLevel, read_target
from core.estimate.llama import EngineSettings
from core.gguf import read_gguf
from core.hardware import GIB, GpuDevice
from ui.bridge import Bridge
from ui.pages.hardware import HardwarePage
from ui.widgets.estimate_panel import EstimatePanel
from ui.widgets.fit_badge import FitBadge, badge_text


@pytest.fixture
def page(qtbot, app):  # type: ignore[no-untyped-def]
    from backends.probe import probe_engines

    app.engine_probe = probe_engines
    widget = HardwarePage(app, Bridge())
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitUntil(lambda: widget.hardware is not None, timeout=20000)
    return widget


def _with_gpu(hardware, free: int):  # type: ignore[no-untyped-def]
    gpu = GpuDevice(0, "Described GPU", "nvidia", "cuda", total_bytes=free + GIB, free_bytes=free, bandwidth_gbs=500.0)
    return replace(hardware, gpus=(gpu,), engines=replace(hardware.engines, llama_gpu_offload=True))


def test_detects_this_machine(page) -> None:  # type: ignore[no-untyped-def]
    assert "cores" in page.cpu_label.text() and "available" in page.memory_label.text()
    assert "llama.cpp: CPU only" in page.engines_label.text()
    assert page.no_gpu.isVisible() and not page.gpu_table.isVisible()
    assert "No model has been loaded yet" in page.accuracy_label.text()


def test_shows_how_accurate_the_last_estimates_were(page, app, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.estimate.llama import estimate_llama as estimate
    from core.estimate.records import record_load

    info = read_gguf(write_tiny_gguf(tmp_path / "m.gguf", TinyModelConfig()))
    guess = estimate(info, EngineSettings(context_length=512, gpu_layers=0))
    host = guess.host
    record_load(
        app.store, guess, {"model:CPU": host.weights + host.repack, "kv:CPU": host.kv, "compute:CPU": host.compute * 2}
    )
    page.refresh(force=True)
    qtbot.waitUntil(lambda: "off by" in page.accuracy_label.text(), timeout=20000)
    assert "last 1 memory estimates" in page.accuracy_label.text()


def test_gpu_table_model(page, qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    page.show_hardware(_with_gpu(page.hardware, 8 * GIB))
    model = page.gpu_model
    qtmodeltester.check(model)
    assert model.rowCount() == 1 and page.gpu_table.isVisible()
    assert model.data(model.index(0, model.COL_DEVICE)) == "CUDA0"
    assert model.data(model.index(0, model.COL_BANDWIDTH)) == "500 GB/s"
    assert model.data(model.index(0, 0), model.GpuRole).name == "Described GPU"


def test_estimate_a_local_model(page, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_tiny_gguf(
        tmp_path / "m.gguf", TinyModelConfig(n_embd=128, n_ff=384, n_vocab=2000, context_length=65536)
    )
    page.target.setText(str(path))
    page.estimate_button.click()
    qtbot.waitUntil(lambda: page.panel.estimate is not None, timeout=10000)
    panel = page.panel
    assert panel.badge.level is FitLevel.FITS and panel.badge.text() == "Fits"
    assert "Runs on the CPU" in panel.verdict.text() and "Largest context" in panel.details.text()
    assert len(panel.bars) == 1 and "RAM" in panel.bars[0][0].text()
    assert "tiny-llama" in page.model_label.text()
    before = panel.estimate.component("kv")
    with qtbot.waitSignal(panel.estimate_changed):
        panel.kv_type.setCurrentText("q8_0")
    assert panel.flash.isChecked() and not panel.flash.isEnabled()
    assert panel.estimate.component("kv") < before
    with qtbot.waitSignal(panel.estimate_changed):
        panel.context.setValue(panel.context.value() + 1)
    assert panel.estimate.n_ctx == 8192 and "8,192" in panel.context_label.text()


def test_bad_target_shows_the_error(page, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 16)
    page.target.setText(str(bad))
    page.estimate_button.click()
    qtbot.waitUntil(lambda: not page.target_error.isHidden(), timeout=10000)
    assert "impossible header" in page.target_error.text()
    assert page.estimate_button.isEnabled()


def test_panel_offload_states_on_a_described_gpu(qtbot, app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.hardware import detect_hardware

    info = read_gguf(
        write_tiny_gguf(
            tmp_path / "w.gguf", TinyModelConfig(n_embd=512, n_head=4, n_head_kv=1, n_ff=2048, n_layer=6, n_vocab=1000)
        )
    )
    panel = EstimatePanel()
    qtbot.addWidget(panel)
    panel.set_settings(EngineSettings(context_length=512))
    panel.set_model(info)
    two = panel.estimate
    hardware = detect_hardware()
    from core.estimate.llama import estimate_llama

    described = _with_gpu(hardware, 8 * GIB)
    needed = estimate_llama(info, EngineSettings(context_length=512, gpu_layers=2), described).devices[1].total
    panel.set_hardware(_with_gpu(hardware, needed + 512 * 2**20))
    assert panel.estimate is not two and panel.badge.level is FitLevel.PARTIAL
    assert panel.verdict.text() == "Fits with 2 of 7 layers on the GPU."
    assert [label.text().split(":")[0] for label, _ in panel.bars] == ["RAM", "CUDA0"]
    panel.gpu_layers.setValue(0)
    assert panel.badge.level is FitLevel.FITS and "CPU" in panel.verdict.text()
    panel.gpu_layers.setValue(7)
    assert panel.badge.level is FitLevel.TOO_LARGE and panel.badge.text() == "Too large"


def test_badge_and_mlx_model(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.core.test_estimate import _mlx_folder

    badge = FitBadge()
    qtbot.addWidget(badge)
    assert badge.text() == "Unknown" and badge.property("badge") == "unknown"
    badge.set_level(FitLevel.PARTIAL, "half on the GPU")
    assert badge.text() == badge_text(FitLevel.PARTIAL) and badge.toolTip() == "half on the GPU"
    panel = EstimatePanel()
    qtbot.addWidget(panel)
    panel.set_model(read_target(str(_mlx_folder(tmp_path / "mlx"))))
    assert "MLX" in panel.bars[0][0].text() and not panel.gpu_layers.isEnabled()
