"""Download throughput: Hangar's download manager vs ``huggingface_hub.hf_hub_download`` on the same file from
the local Hub (tests/hub) in the same run. Hangar also verifies the SHA-256 and moves the file into place; the
library does neither. Runs alternate so machine noise hits both alike; the ratio of medians is reported.

    python bench/download_speed.py [--size-mib 256] [--runs 3]

Target: ratio >= 0.95. Exits 1 below it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

TARGET = 0.95
REPO = "bench/big-GGUF"
NAME = "big-Q8_0.gguf"


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with path.open("wb") as handle:
        for index in range(size >> 20):
            # Vary the blocks cheaply so nothing downstream can shortcut repeated data.
            handle.write(index.to_bytes(8, "little") + block[8:])


def _hf_download(url: str, cache: Path) -> float:
    from huggingface_hub import hf_hub_download

    start = time.perf_counter()
    hf_hub_download(REPO, NAME, cache_dir=cache, endpoint=url, token=False)
    return time.perf_counter() - start


def _hangar_download(root: Path) -> float:
    from core.app import AppContext
    from core.downloads.manager import DownloadManager, DownloadState
    from core.hub.client import HubClient
    from core.paths import AppPaths

    app = AppContext.create(AppPaths.under(root), worker_entry=lambda *a: None)
    try:
        manager = DownloadManager(app.jobs, app.store, app.paths, HubClient(), auto_resume=False)
        start = time.perf_counter()  # metadata included, as hf_hub_download's HEAD is
        item = manager.enqueue(REPO, file=NAME)
        item = manager.wait(item.id)
        elapsed = time.perf_counter() - start
        if item.state != DownloadState.DONE:
            raise SystemExit(f"Hangar's download failed: {item.message}")
        return elapsed
    finally:
        app.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    from tests.support.hub import HubFile, HubRepo, LocalHub

    size = args.size_mib << 20
    with tempfile.TemporaryDirectory(prefix="hangar-bench-") as tmp:
        folder = Path(tmp)
        source = folder / "source.gguf"
        _make_file(source, size)
        hub = LocalHub()
        hub.add(HubRepo(REPO, files=[HubFile(NAME, source=source)], tags=["gguf"]))
        _ = hub.repos[REPO].files[0].sha256  # hash once up front, outside the timings
        hub.start()
        os.environ["HF_ENDPOINT"] = hub.url
        hf_times: list[float] = []
        hangar_times: list[float] = []
        try:
            for run in range(args.runs):
                hf_times.append(_hf_download(hub.url, folder / f"hf-{run}"))
                hangar_times.append(_hangar_download(folder / f"hangar-{run}"))
                for leftover in (folder / f"hf-{run}", folder / f"hangar-{run}"):
                    _remove(leftover)
        finally:
            hub.stop()
    hf = statistics.median(hf_times)
    hangar = statistics.median(hangar_times)
    ratio = hf / hangar  # throughput ratio = inverse time ratio
    mib = size / 2**20
    print(f"file: {mib:.0f} MiB, {args.runs} runs each, alternating")
    print(f"huggingface_hub.hf_hub_download: {mib / hf:8.1f} MiB/s  (median {hf:.2f} s; runs {_fmt(hf_times)})")
    runs = _fmt(hangar_times)
    print(f"Hangar (with SHA-256 + install): {mib / hangar:8.1f} MiB/s  (median {hangar:.2f} s; runs {runs})")
    print(f"throughput ratio Hangar / hf_hub_download: {ratio:.3f}  (target >= {TARGET})")
    return 0 if ratio >= TARGET else 1


def _fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
