"""The first-run welcome: hardware in words, starter models that fit, one-click download from the (local) Hub."""

from __future__ import annotations

import pytest

from core.downloads.manager import DownloadState
from core.estimate.fitting import FitLevel
from core.hardware import EngineSupport, GpuDevice, Hardware
from core.hub.suggestions import CATALOGUE, RankedSuggestion, Suggestion, describe_hardware, suggest
from tests.support.hub.catalog import GGUF_REPO
from ui.app import create_window
from ui.welcome import WelcomeDialog

GB = 1_000_000_000


def machine(ram_gb: float, gpu_gb: float | None = None, cores: int = 8, apple: bool = False) -> Hardware:
    gpus: tuple[GpuDevice, ...] = ()
    engines = EngineSupport(llama_installed=True, llama_gpu_offload=gpu_gb is not None)
    if gpu_gb is not None and not apple:
        gpus = (GpuDevice(0, "NVIDIA GeForce RTX 4070", "nvidia", "cuda", int(gpu_gb * GB), int(gpu_gb * GB), 504.0),)
    if apple:
        gpus = (
            GpuDevice(
                0,
                "Apple M3 Pro",
                "apple",
                "metal",
                int(ram_gb * GB),
                None,
                150.0,
                True,
                budget_override=int(ram_gb * 0.75 * GB),
            ),
        )
        engines = EngineSupport(True, True, None, True, True, int(ram_gb * 0.75 * GB))
    return Hardware(
        "Linux",
        "x86_64",
        "Test CPU",
        cores,
        cores * 2,
        "x86_avx2",
        int(ram_gb * GB),
        int(ram_gb * 0.8 * GB),
        None,
        gpus,
        engines,
    )


def test_describe_hardware_in_plain_words() -> None:
    # One unit system with the rest of the window (item 21): binary GiB, never a decimal "GB" beside a "GiB".
    assert describe_hardware(machine(32, 12)) == "NVIDIA GeForce RTX 4070, 11.2 GiB free; 30 GiB RAM (24 GiB free)"
    assert "no GPU" in describe_hardware(machine(16))
    assert "usable by the GPU" in describe_hardware(machine(36, apple=True))


def test_a_gaming_pc_gets_the_largest_models_its_gpu_holds() -> None:
    picks = suggest(machine(32, 12))
    assert [p.fit for p in picks] == [FitLevel.FITS] * 3
    assert picks[0].suggestion.params == "14B"  # a 9 GB file leaves room for the cache on a 12 GB card
    assert all(p.suggestion.format == "gguf" for p in picks)
    assert suggest(machine(32, 8))[0].suggestion.params == "9B"  # on 8 GB it would spill to the CPU


def test_a_small_laptop_gets_small_fast_models_and_nothing_too_large() -> None:
    picks = suggest(machine(8, cores=4))
    sizes = [p.suggestion.size_bytes for p in picks]
    assert max(sizes) < 3 * GB
    assert all(p.fit != FitLevel.TOO_LARGE for p in picks)
    assert picks[0].tokens_per_second and picks[0].tokens_per_second >= 8


def test_apple_silicon_is_offered_mlx_builds_first() -> None:
    picks = suggest(machine(36, apple=True))
    assert picks[0].suggestion.format == "mlx"


def test_nothing_fits_on_a_tiny_machine() -> None:
    assert suggest(machine(0.6, cores=1)) == []


def test_catalogue_entries_are_well_formed() -> None:
    for s in CATALOGUE:
        assert "/" in s.repo_id and s.size_bytes > 0
        assert (s.file is None) == (s.format == "mlx")


def test_welcome_downloads_a_starter_model_in_one_click(qtbot, app, hub) -> None:  # type: ignore[no-untyped-def]
    window = create_window(app)
    qtbot.addWidget(window)
    tiny = Suggestion(GGUF_REPO, "tiny-llama-Q8_0.gguf", "Q8_0", 170_000, "0.1M", "Tiny Llama", "For tests.")
    broken = Suggestion("hangar-test/does-not-exist", "x.gguf", "Q4_0", 1000, "1M", "Missing", "Not on the Hub.")
    picks = [RankedSuggestion(tiny, FitLevel.FITS, 100.0), RankedSuggestion(broken, FitLevel.FITS, 100.0)]
    dialog = WelcomeDialog(app, window.bridge, machine(16), picks, parent=window)
    qtbot.addWidget(dialog)
    dialog.show()
    assert "15 GiB RAM" in dialog.hardware_label.text()  # 16e9 bytes, in the window's one unit system
    assert [c.badge.level for c in dialog.cards] == [FitLevel.FITS, FitLevel.FITS]

    dialog.cards[1].button.click()
    qtbot.waitUntil(lambda: dialog.cards[1].error.isVisible(), timeout=10_000)
    assert "does-not-exist" in dialog.cards[1].error.text() or "not" in dialog.cards[1].error.text().lower()
    assert dialog.cards[1].button.isEnabled()

    dialog.cards[0].button.click()
    # A 170 kB file can finish before the check runs: "Queued ✓" may already read "Downloaded ✓".
    qtbot.waitUntil(lambda: dialog.cards[0].button.text() in ("Queued ✓", "Downloaded ✓"), timeout=10_000)
    item = app.downloads.list()[0]
    assert app.downloads.wait(item.id, 30).state == DownloadState.DONE
    dialog.continue_button.click()
    assert app.settings.current.first_run_done
    assert window.current_page_key() == "downloads"


@pytest.mark.parametrize("theme", ["light"])
def test_welcome_lists_the_real_suggestions_for_this_machine(qtbot, app, theme: str) -> None:  # type: ignore[no-untyped-def]
    window = create_window(app)
    qtbot.addWidget(window)
    hardware = app.hardware()
    dialog = WelcomeDialog(app, window.bridge, hardware, parent=window)
    qtbot.addWidget(dialog)
    assert len(dialog.cards) == len(suggest(hardware))
    dialog.reject()
    assert app.settings.current.first_run_done


def test_a_starter_download_that_fails_later_offers_try_again(qtbot, app, hub) -> None:  # type: ignore[no-untyped-def]
    """Field report item 22: the card followed its download; a failure after queueing showed nothing (text clipped,
    the button an empty outline, no retry)."""
    window = create_window(app)
    qtbot.addWidget(window)
    name = "tiny-llama-Q8_0.gguf"
    tiny = Suggestion(GGUF_REPO, name, "Q8_0", 170_000, "0.1M", "Tiny Llama", "For tests.")
    dialog = WelcomeDialog(
        app, window.bridge, machine(16), [RankedSuggestion(tiny, FitLevel.FITS, 100.0)], parent=window
    )
    qtbot.addWidget(dialog)
    dialog.show()
    card = dialog.cards[0]
    assert card.button.width() >= card.button.fontMetrics().horizontalAdvance("Downloaded ✓")
    hub.faults.corrupt.add(f"{GGUF_REPO}/{name}")  # arrives damaged: the checksum fails after the download starts
    card.button.click()
    qtbot.waitUntil(lambda: card.button.text() == "Try again", timeout=30_000)
    assert card.button.isEnabled() and card.error.isVisible() and card.error.text()
    assert card.error.height() >= card.error.heightForWidth(card.error.width())  # the message is not clipped
    hub.faults.corrupt.clear()
    card.button.click()
    qtbot.waitUntil(lambda: card.button.text() == "Downloaded ✓", timeout=30_000)
    assert [i.state for i in app.downloads.list()] == [DownloadState.DONE]  # the same download, resumed
    dialog.close()
