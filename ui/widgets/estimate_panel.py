"""The reusable estimate panel: context, KV cache type, flash attention and GPU layers in; a stacked bar of the
memory breakdown per device against its budget, the verdict in words, the largest context and the expected
speed out. Estimating is pure arithmetic on a header already read, so it runs on the GUI thread.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.errors import HangarError
from core.estimate.fitting import ModelHeader, estimate_header
from core.estimate.llama import EngineSettings, Estimate
from core.estimate.mlx import MlxEstimate
from core.gguf import GGUFInfo
from core.hardware import Hardware
from ui.theme import current_colors
from ui.units import format_bytes, format_speed
from ui.widgets.common import CollapsingLabel
from ui.widgets.fit_badge import FitBadge

CONTEXTS = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576)
KV_CHOICES = ("f16", "q8_0", "q4_0")
#: segment name -> (label, theme colour attribute or a fixed colour)
SEGMENTS = (
    ("weights", "Weights", "#4f46e5"),
    ("kv", "KV cache", "#0891b2"),
    ("compute", "Compute", "#d97706"),
    ("output", "Output", "#9333ea"),
    ("overhead", "Overhead", "#6b7280"),
)


def human_bytes(n: int | None) -> str:
    return format_bytes(n)  # one unit system in the window (ui/units.py)


class BreakdownBar(QWidget):
    """One device: coloured segments for each component, a line where its budget ends."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.segments: list[tuple[str, int, QColor]] = []
        self.budget: int | None = None
        self.setMinimumHeight(22)
        self.setMinimumWidth(200)

    def set_data(self, segments: list[tuple[str, int, QColor]], budget: int | None) -> None:
        self.segments = [s for s in segments if s[1] > 0]
        self.budget = budget
        total = sum(s[1] for s in self.segments)
        parts = ", ".join(f"{name} {human_bytes(size)}" for name, size, _ in self.segments)
        self.setToolTip(f"{parts}; total {human_bytes(total)} of {human_bytes(budget)}")
        self.update()

    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colors = current_colors()
        rect = QRectF(self.rect()).adjusted(1, 3, -1, -3)
        painter.setPen(QPen(QColor(colors.border)))
        painter.setBrush(QColor(colors.surface))
        painter.drawRoundedRect(rect, 4, 4)
        total = sum(s[1] for s in self.segments)
        scale_to = max(total, self.budget or 0, 1)
        x = rect.left()
        painter.setPen(Qt.PenStyle.NoPen)
        for _, size, color in self.segments:
            width = rect.width() * size / scale_to
            painter.setBrush(color)
            painter.drawRect(QRectF(x, rect.top() + 1, max(width, 1.0), rect.height() - 2))
            x += width
        if self.budget:
            bx = rect.left() + rect.width() * self.budget / scale_to
            over = total > self.budget
            painter.setPen(QPen(QColor(colors.bad if over else colors.text), 2))
            painter.drawLine(int(bx) - 1, int(rect.top()) - 2, int(bx) - 1, int(rect.bottom()) + 2)
        painter.end()


class EstimatePanel(QWidget):
    estimate_changed = Signal(object)  # Estimate | MlxEstimate | None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header: ModelHeader | None = None
        self.hardware: Hardware | None = None
        self.estimate: Estimate | MlxEstimate | None = None
        self.context = QSlider(Qt.Orientation.Horizontal)
        self.context.setRange(0, len(CONTEXTS) - 1)
        self.context.setValue(CONTEXTS.index(4096))
        self.context.setPageStep(1)
        self.context.setAccessibleName("Context length")
        self.context.setToolTip(
            "How many tokens the model can see at once; longer contexts need more memory for the KV cache"
        )
        self.context_label = QLabel()
        self.context_label.setMinimumWidth(90)
        self.beyond = QCheckBox("Beyond trained length (RoPE)")
        self.beyond.setToolTip(
            "The slider stops at the context the model was trained for; past it, answers degrade unless the model "
            "is run with RoPE scaling. Tick to estimate such a run"
        )
        self.beyond.setVisible(False)
        self.kv_type = QComboBox()
        self.kv_type.addItems(KV_CHOICES)
        self.kv_type.setToolTip(
            "Quantized K/V caches (q8_0, q4_0) halve or quarter the cache; they need flash attention"
        )
        self.kv_type.setAccessibleName("KV cache type")
        self.flash = QCheckBox("Flash attention")
        self.flash.setToolTip(
            "A faster attention kernel that needs less compute memory; required for a quantized KV cache"
        )
        self.gpu_layers = QSpinBox()
        self.gpu_layers.setRange(-1, 1)
        self.gpu_layers.setSpecialValueText("Auto")
        self.gpu_layers.setValue(-1)
        self.gpu_layers.setMaximumWidth(110)
        self.gpu_layers.setToolTip("Layers on the GPU: Auto picks the most that fit; the output layer goes first")
        self.gpu_layers.setAccessibleName("GPU layers")
        self.badge = FitBadge()
        self.verdict = QLabel("Choose a model to see whether it fits.")
        self.verdict.setObjectName("VerdictText")
        self.verdict.setWordWrap(True)
        self.details = CollapsingLabel()
        self.details.setObjectName("Muted")
        self.details.setWordWrap(True)
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)
        self.bars_box = QVBoxLayout()
        self.bars_box.setSpacing(4)
        self.bars: list[tuple[QLabel, BreakdownBar]] = []

        context_row = QHBoxLayout()
        context_row.addWidget(self.context, 1)
        context_row.addWidget(self.context_label)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        form.addRow("Context", context_row)
        form.addRow("", self.beyond)
        kv_row = QHBoxLayout()
        kv_row.addWidget(self.kv_type)
        kv_row.addWidget(self.flash)
        kv_row.addStretch(1)
        form.addRow("KV cache", kv_row)
        form.addRow("GPU layers", self.gpu_layers)
        self._form = form
        verdict_row = QHBoxLayout()
        verdict_row.addWidget(self.badge)
        verdict_row.addWidget(self.verdict, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addLayout(self.bars_box)
        layout.addWidget(self.legend)
        layout.addLayout(verdict_row)
        layout.addWidget(self.details)

        self.context.valueChanged.connect(self._changed)
        self.beyond.toggled.connect(lambda _on: self._apply_context_cap())
        self.kv_type.currentTextChanged.connect(self._kv_changed)
        self.flash.toggled.connect(self._changed)
        self.gpu_layers.valueChanged.connect(self._changed)
        self._legend()
        self._changed()

    # -- inputs ----------------------------------------------------------------------------------------------------
    def set_hardware(self, hardware: Hardware | None) -> None:
        self.hardware = hardware
        # No GPU Hangar can use: no GPU layers control (unknown hardware: keep offering it).
        self._form.setRowVisible(self.gpu_layers, hardware is None or bool(hardware.gpus))
        self._changed()

    def trained_context(self) -> int | None:
        """The context length the model was trained for, from its header (None when it does not say)."""
        if self.header is None:
            return None
        if self.header.gguf is not None:
            trained = self.header.gguf.context_length
        elif self.header.safetensors is not None:
            trained = self.header.safetensors.config.get("max_position_embeddings")
        else:
            trained = None
        return trained if isinstance(trained, int) and trained > 0 else None

    def _apply_context_cap(self) -> None:
        """Cap the slider at the trained length (a 2,048-token model offers no 4,096); past it only by choice."""
        trained = self.trained_context()
        self.beyond.setVisible(trained is not None)
        top = len(CONTEXTS) - 1
        if trained is not None and not self.beyond.isChecked():
            top = max((i for i, c in enumerate(CONTEXTS) if c <= trained), default=0)
        self.context.setMaximum(top)  # moves a value past it down to it
        self._changed()

    def set_model(self, model: ModelHeader | GGUFInfo | None) -> None:
        if isinstance(model, GGUFInfo):
            model = ModelHeader(model.name, gguf=model)
        self.header = model
        layers = model.gguf.block_count + 1 if model and model.gguf else 1
        self.gpu_layers.setRange(-1, layers)
        self.gpu_layers.setEnabled(bool(model and model.gguf))
        self.beyond.setChecked(False)
        self._apply_context_cap()

    def set_settings(self, settings: EngineSettings) -> None:
        index = min(range(len(CONTEXTS)), key=lambda i: abs(CONTEXTS[i] - (settings.context_length or 4096)))
        self.context.setValue(index)
        self.kv_type.setCurrentText(settings.kv_cache_type)
        self.flash.setChecked(settings.flash_attention)
        self.gpu_layers.setValue(-1 if settings.gpu_layers is None else settings.gpu_layers)

    def settings(self) -> EngineSettings:
        kv = self.kv_type.currentText()
        layers = self.gpu_layers.value()
        return EngineSettings(
            context_length=CONTEXTS[self.context.value()],
            kv_cache_type=kv,
            flash_attention=self.flash.isChecked() or kv != "f16",
            gpu_layers=None if layers == -1 else layers,
        )

    def _kv_changed(self, kv: str) -> None:
        if kv != "f16":
            self.flash.setChecked(True)
        self.flash.setEnabled(kv == "f16")
        self._changed()

    # -- output ----------------------------------------------------------------------------------------------------
    def _legend(self) -> None:
        self.legend.setText(
            # Each square stays with its word; the legend wraps between entries in a narrow pane.
            " &nbsp;".join(
                f"<span style='color:{color}'>■</span>&nbsp;{label.replace(' ', '&nbsp;')}"
                for _, label, color in SEGMENTS
            )
        )

    def _changed(self, *_args: object) -> None:
        self.context_label.setText(f"{CONTEXTS[self.context.value()]:,} tokens")
        if self.header is None:
            self.estimate = None
            self.badge.set_estimate(None)
            self._show_bars([])
            return
        try:
            self.estimate = estimate_header(self.header, self.settings(), self.hardware)
        except HangarError as error:
            self.estimate = None
            self.badge.set_estimate(None)
            self._show_bars([])
            self.verdict.setText(str(error))
            self.estimate_changed.emit(None)
            return
        self.badge.set_estimate(self.estimate)
        self.badge.setVisible(True)
        if isinstance(self.estimate, Estimate):
            self._show_llama(self.estimate)
        else:
            self._show_mlx(self.estimate)
        self.estimate_changed.emit(self.estimate)

    def _show_llama(self, estimate: Estimate) -> None:
        colors = {name: QColor(color) for name, _, color in SEGMENTS}
        rows = []
        for device in estimate.devices:
            segments = [
                ("Weights", device.weights + device.repack - device.reclaimable, colors["weights"]),
                ("KV cache", device.kv, colors["kv"]),
                ("Compute", device.compute, colors["compute"]),
                ("Output", device.output, colors["output"]),
                ("Overhead", device.overhead, colors["overhead"]),
            ]
            name = "RAM" if device.is_host else device.device
            mapped = (
                f" (+{human_bytes(device.reclaimable)} of the file mapped and read once)" if device.reclaimable else ""
            )
            title = f"{name}: {human_bytes(device.resident)} of a {human_bytes(device.budget)} budget{mapped}"
            rows.append((title, segments, device.budget))
        self._show_bars(rows)
        self.verdict.setText(estimate.verdict_text + ".")
        speed = format_speed(estimate.tokens_per_second)
        self.details.setText(
            f"{human_bytes(estimate.resident_bytes)} in all at {estimate.n_ctx:,} tokens. "
            f"{self._largest_context(estimate.max_context)} "
            f"Expected decode speed: {speed}."
        )

    def _show_mlx(self, estimate: MlxEstimate) -> None:
        colors = {name: QColor(color) for name, _, color in SEGMENTS}
        segments = [
            ("Weights", estimate.weights, colors["weights"]),
            ("KV cache", estimate.kv, colors["kv"]),
            ("Prefill", estimate.transient, colors["compute"]),
            ("Overhead", estimate.overhead, colors["overhead"]),
        ]
        self._show_bars(
            [
                (
                    f"MLX: {human_bytes(estimate.total_bytes)} of a {human_bytes(estimate.budget)} budget",
                    segments,
                    estimate.budget,
                )
            ]
        )
        self.verdict.setText("Fits with MLX." if estimate.fits else "Does not fit in memory with MLX.")
        self.details.setText(self._largest_context(estimate.max_context))

    def _largest_context(self, fits: int) -> str:
        trained = self.trained_context()
        if trained is not None and not self.beyond.isChecked() and fits >= trained:
            return f"Largest context that fits: all {trained:,} tokens it was trained for."
        return f"Largest context that fits: {fits:,} tokens."

    def _show_bars(self, rows: list[tuple[str, list[tuple[str, int, QColor]], int | None]]) -> None:
        while len(self.bars) > len(rows):
            label, bar = self.bars.pop()
            label.deleteLater()
            bar.deleteLater()
        while len(self.bars) < len(rows):
            label, bar = QLabel(), BreakdownBar()
            label.setWordWrap(True)  # "RAM: 5.2 GiB of a 21.6 GiB budget (+3.7 GiB of the file…)" in a narrow pane
            self.bars_box.addWidget(label)
            self.bars_box.addWidget(bar)
            self.bars.append((label, bar))
        for (label, bar), (title, segments, budget) in zip(self.bars, rows, strict=True):
            label.setText(title)
            bar.set_data(segments, budget)
        if not rows:
            self.verdict.setText("Choose a model to see whether it fits.")
            self.details.setText("")
            self.badge.setVisible(False)  # "Unknown" next to "Choose a model" says nothing
