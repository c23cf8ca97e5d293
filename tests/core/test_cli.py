"""The command line, run in-process through main.main and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import main

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "paths" in out and "jobs" in out and "--data-dir" in out


def test_data_dir_works_before_and_after_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--data-dir", str(tmp_path / "a"), "paths", "--json"],
        ["paths", "--data-dir", str(tmp_path / "b"), "--json"],
    ):
        assert main.main(argv) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["models"].startswith(str(tmp_path))


def test_jobs_json_lists_history(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["jobs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_failure_is_one_line_and_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    (tmp_path / "db").mkdir()
    # A database path that is a directory cannot be opened: a StoreError, reported in one line.
    data = tmp_path / "data-root"
    (data / "data" / "hangar.sqlite3").mkdir(parents=True)
    code = main.main(["jobs", "--data-dir", str(data), "--json"])
    captured = capsys.readouterr()
    assert code == 1
    assert json.loads(captured.out)["error"]["code"] == "store"
    assert len(captured.err.strip().splitlines()) == 1 and captured.err.startswith("hangar: error:")


def test_headless_commands_do_not_import_qt(tmp_path: Path) -> None:
    code = (
        "import sys, main; rc = main.main(['paths', '--json', '--data-dir', sys.argv[1]]);"
        "assert 'PySide6' not in sys.modules, 'Qt was imported'; sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main.main(["--version"])
    assert "Hangar" in capsys.readouterr().out


def test_only_the_chosen_commands_module_is_imported(tmp_path: Path) -> None:
    """Start-up stays light: running `paths` does not load the Hub client, the chat code or an engine."""
    code = (
        "import sys, main; rc = main.main(['paths', '--json', '--data-dir', sys.argv[1]]);"
        "names = ('huggingface_hub', 'core.chat.store', 'core.hub.client', 'ui.cli.search_cmd', 'torch', 'mlx');"
        "heavy = [m for m in names if m in sys.modules];"
        "assert not heavy, heavy; sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
