"""The command line, run in-process through main.main and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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


def _newer_database(data: Path) -> None:
    from core.store import Store

    store = Store(data / "data" / "hangar.sqlite3")
    store.execute("INSERT INTO schema_versions (namespace, version) VALUES ('jobs', 99)")
    store.close()


def test_failure_is_one_line_and_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data-root"
    _newer_database(data)
    code = main.main(["jobs", "--data-dir", str(data), "--json"])
    captured = capsys.readouterr()
    assert code == 1
    error = json.loads(captured.out)["error"]
    assert error["code"] == "store" and "made by a newer Hangar" in error["message"]
    assert len(captured.err.strip().splitlines()) == 1 and captured.err.startswith("hangar: error:")


def test_newer_settings_are_refused_like_a_newer_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data-root"
    settings = data / "config" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"schema_version": 7}))
    assert main.main(["paths", "--data-dir", str(data)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "made by a newer Hangar" in err
    assert settings.read_text() == json.dumps({"schema_version": 7})
    assert sorted(p.name for p in settings.parent.iterdir()) == ["settings.json"]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "main.py", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_bad_settings_fields_are_said_once_in_one_line_and_the_command_works(tmp_path: Path) -> None:
    data = tmp_path / "data-root"
    settings = data / "config" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"gpu_layers": 5, "models_dir": 123, "theme": "dark"}))
    first = _run("jobs", "--json", "--data-dir", str(data))
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == []
    lines = first.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hangar: warning:"), first.stderr  # no second WARNING line
    assert "gpu_layers" in lines[0] and "models_dir" in lines[0] and ".bad-" in lines[0]
    again = _run("jobs", "--json", "--data-dir", str(data))
    assert again.returncode == 0 and again.stderr == ""
    assert json.loads(settings.read_text())["theme"] == "dark"


def test_a_settings_path_that_is_a_folder_does_not_stop_commands(tmp_path: Path) -> None:
    data = tmp_path / "data-root"
    (data / "config" / "settings.json").mkdir(parents=True)
    result = _run("paths", "--json", "--data-dir", str(data))
    assert result.returncode == 0 and json.loads(result.stdout)["settings"]
    assert result.stderr.count("\n") == 1 and "folder" in result.stderr


def test_an_empty_database_is_kept_aside_and_the_person_told(tmp_path: Path) -> None:
    data = tmp_path / "data-root"
    (data / "data").mkdir(parents=True)
    empty = data / "data" / "hangar.sqlite3"
    empty.write_bytes(b"")
    os.utime(empty, (time.time() - 3600, time.time() - 3600))  # left empty long ago, not being created now
    result = _run("ls", "--json", "--data-dir", str(data))
    assert result.returncode == 0 and json.loads(result.stdout) == []
    assert "hangar: warning:" in result.stderr and "kept as hangar.sqlite3.bad-" in result.stderr
    assert len(list((data / "data").glob("hangar.sqlite3.bad-*"))) == 1


class _Boom:
    @staticmethod
    def run(app: object, args: object) -> int:
        raise RuntimeError("a bug")


def test_an_unexpected_error_is_one_line_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ui.cli import parse, run_command

    args = parse(["paths", "--data-dir", str(tmp_path / "d")])
    args._module = _Boom
    assert run_command(args, main.build_app) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Unexpected error: a bug" in err and "Traceback" not in err


def test_verbose_shows_the_traceback_on_stderr(tmp_path: Path) -> None:
    code = (
        "import sys, main\n"
        "from ui.cli import parse, run_command\n"
        "class Boom:\n"
        "    @staticmethod\n"
        "    def run(app, args): raise RuntimeError('a bug')\n"
        "args = parse(['-v', 'paths', '--data-dir', sys.argv[1]]); args._module = Boom\n"
        "sys.exit(run_command(args, main.build_app))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: a bug" in result.stderr


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`hangar jobs --json | head -c 10`: the reader goes away; no BrokenPipe tracebacks, exit 0 or 141."""
    process = subprocess.Popen(
        [sys.executable, "main.py", "paths", "--data-dir", str(tmp_path), "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the child writes anything: its first write hits a closed pipe
    err = process.stderr.read().decode()
    assert process.wait(60) in (0, 141)
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err


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
