"""Field report item 23: the fine-tune log follows new lines, a cancelled run says "Cancelled." once, the loss
chart's legend follows the theme (dark included), and no "GPU layers" control on a machine without a GPU."""

from __future__ import annotations

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication

from core.engine.host import LoadOptions
from ui.bridge import Bridge
from ui.pages.chat_load import LoadOptionsDialog
from ui.pages.finetune import FinetunePage, run_status
from ui.pages.settings import SettingsPage
from ui.theme import DARK, LIGHT, apply_theme
from ui.widgets.loss_chart import LossChart


def test_a_run_status_says_the_state_once() -> None:
    assert run_status("cancelled", "Cancelled.") == "Cancelled."
    assert run_status("cancelled", "") == "Cancelled."
    assert run_status("failed", "Out of memory at step 3.") == "Failed. Out of memory at step 3."


def test_the_fine_tune_log_follows_new_lines(qtbot, ft_app) -> None:  # type: ignore[no-untyped-def]
    page = FinetunePage(ft_app, Bridge())
    qtbot.addWidget(page)
    page.resize(1180, 760)
    page.show()
    bar = page.log.verticalScrollBar()
    for step in range(200):
        page.append_log(f"step {step}: loss 1.0")
    assert bar.maximum() > 0 and bar.value() == bar.maximum()
    bar.setValue(0)  # the person scrolls up to read: new lines do not pull them down
    page.append_log("step 200: loss 0.9")
    assert bar.value() == 0


def test_the_chart_legend_follows_the_theme(qtbot) -> None:  # type: ignore[no-untyped-def]
    qt_app = QApplication.instance()
    apply_theme(qt_app, "light")
    chart = LossChart()
    qtbot.addWidget(chart)
    assert chart.chart().legend().labelColor() == QColor(LIGHT.text)
    try:
        apply_theme(qt_app, "dark")
        QApplication.processEvents()
        assert chart.chart().legend().labelColor() == QColor(DARK.text)
        assert chart.x_axis.labelsColor() == QColor(DARK.muted)
    finally:
        apply_theme(qt_app, "light")


def test_no_gpu_layers_control_without_a_gpu(qtbot, app) -> None:  # type: ignore[no-untyped-def]
    has_gpu = bool(app.hardware().gpus)
    dialog = LoadOptionsDialog(LoadOptions(), gpu=False)
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.gpu_layers.isVisibleTo(dialog)
    settings = SettingsPage(app, Bridge())
    qtbot.addWidget(settings)
    settings.show()
    # Detection runs in the background; the control stays only where there is a GPU.
    qtbot.waitUntil(lambda: settings.gpu_layers.isVisibleTo(settings) == has_gpu, timeout=10_000)
    if not has_gpu:
        qtbot.wait(200)
        assert not settings.gpu_layers.isVisibleTo(settings)


def test_the_fine_tune_form_is_simple_until_asked(qtbot, ft_app) -> None:  # type: ignore[no-untyped-def]
    from core.finetune.types import FinetuneConfig

    page = FinetunePage(ft_app, Bridge())
    qtbot.addWidget(page)
    page.resize(1180, 760)
    page.show()
    form = page.form
    assert form.model_path.isVisibleTo(page) and form.data_path.isVisibleTo(page) and form.iters.isVisibleTo(page)
    hidden = (form.rank, form.learning_rate, form.batch_size, form.seed, form.qlora, form.checkpoint_every)
    assert not any(w.isVisibleTo(page) for w in hidden)
    assert form.config() == FinetuneConfig()  # the simple form trains with the defaults
    form.advanced.setChecked(True)
    assert all(w.isVisibleTo(page) for w in hidden)
    form.rank.setValue(16)
    form.advanced.setChecked(False)
    assert form.config().rank == 16  # hiding a setting does not undo it


def test_the_fine_tune_page_picks_a_base_model_from_my_models(qtbot, ft_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Item 24: fine-tuning needs full weights; the page offers My Models' safetensors folders."""
    from core.models.types import ImportMode
    from tests.support.fixtures_library import write_gguf, write_mlx_folder

    library = ft_app.library
    library.import_paths([write_mlx_folder(tmp_path / "qwen-mlx"), write_gguf(tmp_path / "q.gguf")], ImportMode.LINK)
    page = FinetunePage(ft_app, Bridge())
    qtbot.addWidget(page)
    page.show()
    picker = page.form.from_library
    names = [picker.itemText(i) for i in range(1, picker.count())]
    assert names == ["qwen-mlx"]  # the GGUF (no full weights) is not offered
    picker.activated.emit(1)
    assert page.form.model_path.text() == str(tmp_path / "qwen-mlx")
