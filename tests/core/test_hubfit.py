"""Per-quant fit verdicts from remote GGUF headers (Range requests to the local Hub), before any download."""

from __future__ import annotations

from core.estimate.fitting import FitLevel
from core.estimate.llama import EngineSettings, Verdict
from core.hardware import Hardware
from core.hub.client import HubClient
from core.hub.files import GroupKind
from core.hub.fit import best_fit, fit_all
from tests.support.hub import LocalHub
from tests.support.hub.catalog import GGUF_REPO, MLX_REPO, SPARSE_REPO


def _machine(ram_available: int) -> Hardware:
    return Hardware(
        os="Linux",
        machine="x86_64",
        cpu_name="test CPU",
        cpu_cores=2,
        cpu_threads=2,
        cpu_family="x86_avx2",
        ram_total_bytes=ram_available,
        ram_available_bytes=ram_available,
        ram_bandwidth_gbs=50.0,
    )


def test_every_quant_gets_a_verdict_from_its_remote_header(hub: LocalHub) -> None:
    detail = HubClient().model_detail(GGUF_REPO)
    fits = fit_all(
        GGUF_REPO,
        detail.commit,
        list(detail.groups),
        token=None,
        hardware=_machine(64 * 1024**3),
        settings=EngineSettings(context_length=512),
    )
    assert [f.key for f in fits] == [g.key for g in detail.groups if g.kind == GroupKind.QUANT]
    assert all(f.estimate.verdict == Verdict.CPU_ONLY for f in fits), [f.error for f in fits]  # type: ignore[union-attr]
    split = next(f for f in fits if f.key == "F32/tiny-llama-F32")
    assert split.estimate is not None and split.estimate.n_layer == 2  # both parts of the real split set read
    # Only headers were fetched: every request for a model file asked for a byte range.
    model_gets = [r for r in hub.requests if r.method == "GET" and r.path.endswith(".gguf") and r.status != 302]
    assert model_gets and all(r.range for r in model_gets)
    fetched = sum(
        int(r.range.split("-")[1]) - int(r.range.split("=")[1].split("-")[0]) + 1
        for r in model_gets
        if r.range and r.range.split("-")[1]
    )
    assert fetched < sum(g.size for g in detail.groups if g.kind == GroupKind.QUANT)


def test_best_fit_is_the_largest_quant_that_fits(hub: LocalHub) -> None:
    detail = HubClient().model_detail(GGUF_REPO)
    settings = EngineSettings(context_length=512, host_margin=0)
    roomy = fit_all(
        GGUF_REPO, detail.commit, list(detail.groups), token=None, hardware=_machine(64 * 1024**3), settings=settings
    )
    totals = sorted(f.estimate.total_bytes for f in roomy if f.estimate)
    # Room for the smaller quants only.
    tight = _machine((totals[1] + totals[2]) // 2)
    fits = fit_all(GGUF_REPO, detail.commit, list(detail.groups), token=None, hardware=tight, settings=settings)
    fitting = sorted(f.key for f in fits if f.fits)
    assert len(fitting) == 2 and any(f.level == FitLevel.TOO_LARGE for f in fits)
    sizes = {g.key: g.size for g in detail.groups}
    assert best_fit(fits, sizes) == max(fitting, key=lambda k: sizes[k])


def test_an_unreadable_header_is_fit_unknown_not_a_crash(hub: LocalHub) -> None:
    detail = HubClient().model_detail(SPARSE_REPO)
    [fit] = fit_all(
        SPARSE_REPO, detail.commit, list(detail.groups), token=None, hardware=None, settings=EngineSettings()
    )
    assert fit.estimate is None and fit.error


def test_an_mlx_model_is_estimated_from_its_config_and_safetensors_headers(hub: LocalHub) -> None:
    detail = HubClient().model_detail(MLX_REPO)
    [fit] = fit_all(
        MLX_REPO,
        detail.commit,
        list(detail.groups),
        token=None,
        hardware=_machine(64 * 1024**3),
        settings=EngineSettings(context_length=512),
    )
    assert fit.key == "mlx" and fit.level == FitLevel.FITS, fit.error
    assert fit.estimate is not None and fit.estimate.weights == 64 * 96 * 2
