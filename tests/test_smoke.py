"""The smoke test the packaged app runs, here run from source: window, tiny model, engine child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_test_mode_passes_from_source(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "main.py", "--smoke-test", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 0, result.stderr
    assert "smoke test passed" in result.stdout
    assert (tmp_path / "logs" / "hangar.log").exists()
