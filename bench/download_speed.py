"""Download throughput: Hangar's download manager vs ``huggingface_hub.hf_hub_download`` on the same file from
the local Hub (tests/support/hub) in the same run. Hangar also verifies the SHA-256 and moves the file into place;
the library does neither. Runs alternate so machine noise hits both alike; the ratio of medians is reported.

Two cases: uncapped (target ratio >= 1.0: parallel ranges must not cost anything on a fast local link), and capped
at 16 MB/s per connection, as CDNs and proxies cap each connection (target >= 3.0: Hangar's adaptive 4-16
connections against the library's one stream).

    python bench/download_speed.py [--size-mib 256] [--runs 3] [--cap-mbps 16] [--case both|capped|uncapped]

Xet: the local server is plain HTTP and never offers Xet, so both sides use HTTP here. On the real Hub, for a
Xet-backed repository, what decides is the wall time of ``hf_hub_download`` with ``hf_xet`` installed (chunk
dedup, its own parallel fetches) against Hangar's ranged HTTP on the same file and link, over a few sizes (0.5, 4,
16 GB) and both cold and warm caches; Hangar keeps ranged HTTP because it verifies the whole-file SHA-256, resumes
range by range across restarts and honours the bandwidth limit, and Xet would need to win clearly to give those up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

TARGETS = {"uncapped": 1.0, "capped": 3.0}
IN_PROCESS = "--in-process" in sys.argv
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


def _hangar_download(root: Path, stats: dict[str, float] | None = None) -> float:
    from core.app import AppContext
    from core.downloads.manager import DownloadManager, DownloadState
    from core.hub.client import HubClient
    from core.paths import AppPaths

    app = AppContext.create(AppPaths.under(root), worker_entry=lambda *a: None)
    try:
        from core.downloads.limits import TransferOptions

        # the transfer path the app uses: ranged downloads in a child process (IN_PROCESS: the window's own)
        options = TransferOptions(in_child=not IN_PROCESS)
        manager = DownloadManager(app.jobs, app.store, app.paths, HubClient(), auto_resume=False, options=options)
        start = time.perf_counter()  # metadata included, as hf_hub_download's HEAD is
        item = manager.enqueue(REPO, file=NAME)
        item = manager.wait(item.id)
        elapsed = time.perf_counter() - start
        if stats is not None:
            stats["hash_after_s"] = _hash_seconds(item.paths[0])
        if item.state != DownloadState.DONE:
            raise SystemExit(f"Hangar's download failed: {item.message}")
        return elapsed
    finally:
        app.close()


def _hash_seconds(path: Path) -> float:
    """What hashing the finished file afterwards would add (the manager hashes ranges in order as they land)."""
    import hashlib

    start = time.perf_counter()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while data := handle.read(8 << 20):
            digest.update(data)
    return time.perf_counter() - start


def _case(hub: object, folder: Path, runs: int, label: str) -> tuple[float, list[float], list[float]]:
    hf_times: list[float] = []
    hangar_times: list[float] = []
    stats: dict[str, float] = {}
    for run in range(runs):
        hf_times.append(_hf_download(hub.url, folder / f"hf-{label}-{run}"))  # type: ignore[attr-defined]
        hangar_times.append(_hangar_download(folder / f"hangar-{label}-{run}", stats))
        for leftover in (folder / f"hf-{label}-{run}", folder / f"hangar-{label}-{run}"):
            _remove(leftover)
    hf = statistics.median(hf_times)
    hangar = statistics.median(hangar_times)
    print(f"[{label}] huggingface_hub.hf_hub_download: median {hf:.2f} s (runs {_fmt(hf_times)})")
    print(f"[{label}] Hangar (ranges, SHA-256 in order, install): median {hangar:.2f} s (runs {_fmt(hangar_times)})")
    print(f"[{label}] hashing the whole file after the download would add {stats.get('hash_after_s', 0):.2f} s")
    return hf / hangar, hf_times, hangar_times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cap-mbps", type=float, default=16.0, help="per-connection cap of the capped case")
    parser.add_argument("--case", choices=["both", "capped", "uncapped"], default="both")
    parser.add_argument("--in-process", action="store_true", help="ranges in this process, not the app's child")
    args = parser.parse_args(argv)

    import multiprocessing
    from types import SimpleNamespace

    size = args.size_mib << 20
    with tempfile.TemporaryDirectory(prefix="hangar-bench-") as tmp:
        folder = Path(tmp)
        source = folder / "source.gguf"
        _make_file(source, size)
        # The Hub runs in a child process, as a real server is elsewhere: in this process its threads would take
        # the interpreter from the client's connections (and more from Hangar's several than from one stream).
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        server = ctx.Process(target=_serve, args=(str(source), theirs), daemon=True)
        server.start()
        hub = SimpleNamespace(url=ours.recv())
        os.environ["HF_ENDPOINT"] = hub.url
        results: dict[str, float] = {}
        try:
            if args.case in ("both", "uncapped"):
                results["uncapped"] = _case(hub, folder, args.runs, "uncapped")[0]
            if args.case in ("both", "capped"):
                ours.send(("cap", int(args.cap_mbps * 1_000_000)))  # per connection
                ours.recv()
                results["capped"] = _case(hub, folder, args.runs, f"capped {args.cap_mbps:g} MB/s per connection")[0]
        finally:
            ours.send(("stop", 0))
            server.join(10)
    mib = size / 2**20
    print(f"file: {mib:.0f} MiB, {args.runs} runs per case, alternating")
    ok = True
    for case, ratio in results.items():
        target = TARGETS[case]
        ok &= ratio >= target
        print(f"throughput ratio Hangar / hf_hub_download, {case}: {ratio:.2f}  (target >= {target})")
    return 0 if ok else 1


def _serve(source: str, pipe: Any) -> None:
    """The child: the local Hub serving the one big file; ("cap", bytes/s) caps each connection, ("stop", _) ends."""
    sys.path.insert(0, str(ROOT))
    from tests.support.hub import HubFile, HubRepo, LocalHub

    hub = LocalHub()
    hub.add(HubRepo(REPO, files=[HubFile(NAME, source=Path(source))], tags=["gguf"]))
    _ = hub.repos[REPO].files[0].sha256  # hash once up front, outside the timings
    hub.start()
    pipe.send(hub.url)
    while (message := pipe.recv())[0] == "cap":
        hub.faults.throttle_bps = message[1] or None
        pipe.send("ok")
    hub.stop()


def _fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
