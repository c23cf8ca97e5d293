"""Does the window stay responsive while My Models copies a big model in the background?

    QT_QPA_PLATFORM=offscreen python bench/library_copy_ui.py [--size-gb 2]

Builds the real window, drops a ``--size-gb`` GGUF (a real header over sparse tensor data) on it through the
import dialog's path (a background "import" job with progress), and meanwhile ticks a 10 ms timer on the GUI
thread. Reports the longest gap between ticks during the copy against the longest gap over the same time with
nothing running (the baseline, measured in the same run), and the copy's throughput. The issue's case is
``--size-gb 20`` (it writes that much to the disk: mind the free space).
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def write_big_gguf(path: Path, size: int) -> None:
    """A valid GGUF header declaring one F32 tensor that fills ``size`` bytes; the data is a sparse hole."""
    n = max(1, (size - 4096) // 4)

    def text(value: str) -> bytes:
        raw = value.encode()
        return struct.pack("<Q", len(raw)) + raw

    kvs = text("general.architecture") + struct.pack("<I", 8) + text("llama")
    kvs += text("llama.context_length") + struct.pack("<II", 4, 4096)
    info = text("output.weight") + struct.pack("<IQ", 1, n) + struct.pack("<IQ", 0, 0)
    header = b"GGUF" + struct.pack("<IQQ", 3, 1, 2) + kvs + info
    header += b"\0" * (-len(header) % 32)
    with path.open("wb") as handle:
        handle.write(header + b"\1" * 64)
        handle.truncate(len(header) + n * 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    args = parser.parse_args()

    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from backends import available_engines
    from backends.worker import serve
    from core.app import AppContext
    from core.jobs import JobState
    from core.models.types import ImportMode
    from core.paths import AppPaths
    from ui.app import create_window

    root = Path(tempfile.mkdtemp(prefix="hangar-bench-copy-"))
    os.environ["HANGAR_SCAN_HOME"] = str(root / "empty-home")
    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    context = AppContext.create(
        AppPaths.under(root / "data"), worker_entry=serve, engine_availability=available_engines
    )
    try:
        source = root / "big-model-F32.gguf"
        size = int(args.size_gb * 1e9)
        write_big_gguf(source, size)
        window = create_window(context)
        window.show()
        page = window.pages["models"]

        gaps: list[float] = []
        clock = QElapsedTimer()
        clock.start()
        last = [clock.elapsed()]

        def tick() -> None:
            now = clock.elapsed()
            gaps.append(now - last[0])
            last[0] = now

        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(tick)

        def run_loop_until(done: object, limit_s: float) -> float:
            started = time.perf_counter()
            while not done() and time.perf_counter() - started < limit_s:  # type: ignore[operator]
                qt_app.processEvents()
                time.sleep(0.001)
            return time.perf_counter() - started

        # Baseline: the same loop with nothing running, for a second.
        last[0] = clock.elapsed()
        timer.start()
        run_loop_until(lambda: False, 1.0)
        timer.stop()
        baseline_gap = max(gaps) if gaps else 0.0
        gaps.clear()

        updates = [0]
        context.jobs.changed.connect(lambda job: updates.__setitem__(0, updates[0] + 1))
        last[0] = clock.elapsed()
        timer.start()
        job_id = page.library.submit_import(context.jobs, [source], ImportMode.COPY)
        page._import_job = job_id
        page.progress_box.show()
        elapsed = run_loop_until(lambda: context.jobs.get(job_id).state.finished, 3600)
        timer.stop()
        job = context.jobs.get(job_id)
        copy_gap = max(gaps) if gaps else 0.0
        copied = (context.paths.models_dir / source.name).stat().st_size if job.state == JobState.SUCCEEDED else 0
        print(f"copied {copied / 1e9:.2f} GB in {elapsed:.1f} s ({copied / 1e6 / max(elapsed, 1e-9):.0f} MB/s)")
        print(f"GUI ticks during the copy: {len(gaps)}, longest gap {copy_gap:.0f} ms")
        print(
            f"baseline (nothing running): longest gap {baseline_gap:.0f} ms; "
            f"ratio {copy_gap / max(baseline_gap, 1):.1f}x"
        )
        print(f"job updates heard: {updates[0]}; state {job.state}")
        window.close()
        ok = job.state == JobState.SUCCEEDED and copy_gap < 250
        print("PASS" if ok else "FAIL", "(target: no GUI stall over 250 ms during the copy)")
        return 0 if ok else 1
    finally:
        context.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
