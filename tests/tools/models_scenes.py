"""Screenshot scenes of My Models (``ui/screenshots.py``): a library with details and the fit estimate, the
drop indicator, and the import dialog. Realistic models are full-size GGUF headers over sparse data."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from ui.pages.models import ModelsPage
from ui.widgets.import_dialog import ImportDialog
from ui.widgets.library_table import ENTRY_ROLE


def _scene_models(window: Any) -> ModelsPage:
    """Fill the library with realistic entries: full-size GGUF headers over sparse data, a split set, an MLX
    folder, and a model found in LM Studio's folder."""
    from core.devkit.modelgen import LLAMA_8B_SHAPE, TinyModelConfig, write_sparse_gguf, write_tiny_gguf
    from core.models.types import ImportMode

    page: ModelsPage = window.pages["models"]
    if page.model.rowCount():
        return page
    root = page.app.paths.cache_dir / "screenshot-models"
    llama = write_sparse_gguf(root / "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", LLAMA_8B_SHAPE)
    qwen = write_sparse_gguf(
        root / "Qwen2.5-3B-Instruct-Q4_K_M.gguf",
        LLAMA_8B_SHAPE.with_(
            arch="qwen2",
            n_embd=2048,
            n_head=16,
            n_head_kv=2,
            n_ff=11008,
            n_layer=36,
            context_length=32768,
            weight_type="Q4_K",
            name="Qwen2.5-3B-Instruct",
        ),
    )
    tiny = write_tiny_gguf(root / "tiny-llama-F16.gguf", TinyModelConfig())
    page.library.import_paths([llama, qwen], ImportMode.LINK)
    page.library.import_paths([tiny], ImportMode.COPY)
    page.refresh()
    return page


def scene_library(window: Any) -> None:
    page = _scene_models(window)
    window.show_page("models")
    first = page.proxy.index(0, 0).data(ENTRY_ROLE)
    if first is not None:
        page.select(first.id)
        page.model.set_hardware(page.app.hardware())
        page.estimate.set_hardware(page.app.hardware())
        from core.estimate.fitting import read_target

        page.estimate.set_model(read_target(str(first.load_path)))


def scene_drop(window: Any) -> None:
    page = _scene_models(window)
    window.show_page("models")
    if page.overlay is None:
        page.attach_to_window()
    if page.overlay is not None:
        page.overlay.show_for(3)


def scene_import_dialog(window: Any) -> None:
    """The import dialog over the window (drawn inside it so the window's screenshot shows it)."""
    from core.devkit.modelgen import TinyModelConfig, write_tiny_gguf

    page = _scene_models(window)
    if page.overlay is not None:
        page.overlay.hide()
    window.show_page("models")
    drop = page.app.paths.cache_dir / "screenshot-drop"
    fresh = write_tiny_gguf(drop / "Phi-3-mini-4k-instruct-Q4_0.gguf", TinyModelConfig(seed=3, weight_type="Q4_0"))
    again = drop / "tiny-llama-F16 (copy).gguf"
    again.write_bytes((page.app.paths.models_dir / "tiny-llama-F16.gguf").read_bytes())
    broken = drop / "mistral-7b-v0.3.Q4_K_M.gguf"
    broken.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:4d6a...\nsize 4372812000\n")
    dialog = ImportDialog(page.library.preview_import([fresh, again, broken]), page)
    dialog.setWindowFlags(Qt.WindowType.Widget)
    dialog.resize(min(760, page.width() - 24), 360)  # inside the page at the minimum window size too
    dialog.move(max(0, (page.width() - dialog.width()) // 2), (page.height() - dialog.height()) // 3)
    dialog.setAutoFillBackground(True)
    dialog.setObjectName("SceneDialog")
    dialog.setStyleSheet("#SceneDialog { background: palette(window); border: 1px solid palette(mid); }")
    dialog.show()
    dialog.raise_()
    page.import_dialog = dialog
