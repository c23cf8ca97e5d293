"""``hangar import / ls / rm`` in-process through main.main, and once as a real subprocess."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import main
from tests.support.fixtures_library import write_gguf, write_mlx_folder

ROOT = Path(__file__).resolve().parents[2]


def _json(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


def test_import_ls_rm_round_trip(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gguf = write_gguf(tmp_path / "src" / "tiny.gguf")
    mlx = write_mlx_folder(tmp_path / "src" / "mlx-tiny")
    assert main.main(["import", str(gguf), str(mlx), "--json"]) == 0
    report = _json(capsys)
    assert sorted(e["name"] for e in report["imported"]) == ["mlx-tiny", "tiny"]

    assert main.main(["ls", "--json"]) == 0
    listed = _json(capsys)
    assert [m["name"] for m in listed] == ["mlx-tiny", "tiny"]
    tiny = listed[1]
    assert tiny["format"] == "gguf" and tiny["architecture"] == "llama" and tiny["origin"] == "imported"
    assert tiny["chat_template"] is True and tiny["context_length"] == 2048 and tiny["size_bytes"] > 0
    assert Path(tiny["path"]).is_relative_to(data_dir)

    assert main.main(["import", str(gguf), "--json"]) == 0  # a duplicate is not an error
    assert _json(capsys)["duplicates"][0]["existing"]["name"] == "tiny"

    assert main.main(["rm", "tiny", "--json"]) == 0
    removed = _json(capsys)
    assert removed["files_deleted"] and removed["freed_bytes"] == tiny["size_bytes"]
    assert not Path(tiny["path"]).exists() and gguf.exists()


def test_link_then_rm_keeps_files_unless_asked(data_dir: Path, tmp_path: Path, capsys) -> None:
    gguf = write_gguf(tmp_path / "linked.gguf")
    assert main.main(["import", "--link", str(gguf)]) == 0
    assert "Imported linked (gguf" in capsys.readouterr().out
    assert main.main(["rm", "linked"]) == 0
    assert "its files were left" in capsys.readouterr().out and gguf.exists()
    assert main.main(["import", "--link", str(gguf), "--json"]) == 0
    capsys.readouterr()
    assert main.main(["rm", "linked", "--delete-files", "--json"]) == 0
    assert _json(capsys)["files_deleted"] and not gguf.exists()


def test_bad_input_gives_one_clear_line(data_dir: Path, tmp_path: Path, capsys) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"<!DOCTYPE html><html>Not found</html>")
    assert main.main(["import", str(fake)]) == 1
    err = capsys.readouterr().err
    assert "fake.gguf is not a GGUF model" in err and "web page" in err
    assert main.main(["rm", "nothing", "--json"]) == 1
    out = _json(capsys)
    assert out["error"]["code"] == "not_found"


def test_ls_as_a_real_subprocess(tmp_path: Path) -> None:
    gguf = write_gguf(tmp_path / "sub.gguf")
    env = {**os.environ, "HANGAR_DATA_DIR": str(tmp_path / "data")}
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "main.py", *a], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert run("import", "--link", str(gguf)).returncode == 0
    listed = run("ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [m["name"] for m in json.loads(listed.stdout)] == ["sub"]
    assert "PySide6" not in listed.stderr


def test_open_with_paths_are_told_apart_from_commands(tmp_path: Path) -> None:
    from ui.cli.import_cmd import split_open_with

    model = write_gguf(tmp_path / "opened.gguf")
    folder = write_mlx_folder(tmp_path / "mlx")
    assert split_open_with([str(model)]) == ([], [model])
    assert split_open_with(["--data-dir", "D", str(model), str(folder)]) == (["--data-dir", "D"], [model, folder])
    assert split_open_with(["ls", "--json"]) == (["ls", "--json"], [])
    assert split_open_with(["import", str(model)]) == (["import", str(model)], [])
    assert split_open_with([str(tmp_path / "missing.gguf")]) == ([str(tmp_path / "missing.gguf")], [])
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    assert split_open_with([str(notes)]) == ([str(notes)], [])
    assert split_open_with([]) == ([], [])


def test_a_fifo_is_refused_clearly(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "x.gguf"
    os.mkfifo(fifo)
    assert main.main(["import", str(fifo), "--json"]) == 1
    report = _json(capsys)
    assert "named pipe" in report["problems"][0]["message"]
    assert main.main(["estimate", str(fifo)]) == 1
    err = capsys.readouterr().err
    assert "named pipe" in err and err.count("\n") == 1


def test_one_bad_row_does_not_hide_the_library(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_gguf(tmp_path / "src" / "good.gguf")
    other = write_gguf(tmp_path / "src" / "other.gguf", seed=2)
    assert main.main(["import", str(good), str(other), "--json"]) == 0
    capsys.readouterr()
    from core.store import Store

    store = Store(data_dir / "data" / "hangar.sqlite3")
    store.execute("UPDATE library_models SET format = 'from-the-future', files = 'not json' WHERE name = 'other'")
    store.close()
    assert main.main(["ls"]) == 0
    captured = capsys.readouterr()
    assert "good" in captured.out and "other" not in captured.out
    assert captured.err.count("\n") == 1 and "could not be read" in captured.err
    assert main.main(["ls", "--json"]) == 0
    assert [m["name"] for m in json.loads(capsys.readouterr().out)] == ["good"]
    assert main.main(["rm", "other"]) == 1  # named exactly: one clear line, no traceback
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "damaged" in err


def test_ls_never_prints_escape_sequences(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gguf

    path = tmp_path / "src" / "evil\x1b[31m.gguf"
    path.parent.mkdir(parents=True)
    writer = gguf.GGUFWriter(str(path), "llama\x1b]0;pwned\x07\x1b[2J")
    writer.add_string("general.license", "mit\x1b[5m")
    writer.add_block_count(1)
    writer.add_tensor("blk.0.w.weight", __import__("numpy").zeros((4, 32), dtype="float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert main.main(["import", str(path), "--link"]) == 0
    assert main.main(["ls"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "llama" in out
    assert main.main(["ls", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert "\x1b" not in json.dumps(entry, ensure_ascii=False) and entry["license"].startswith("mit")


def test_a_rescan_skips_a_damaged_file_reports_it_and_goes_on(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "scan-me"
    write_gguf(folder / "fine.gguf")
    crafted = folder / "crafted.gguf"
    raw = bytearray((folder / "fine.gguf").read_bytes())
    key = b"llama.block_count"
    at = raw.index(key) + len(key)
    assert struct.unpack_from("<I", raw, at)[0] == 4  # a uint32 follows the type
    struct.pack_into("<I", raw, at + 4, 20_000_000)
    crafted.write_bytes(bytes(raw))
    settings = data_dir / "config" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"scan_folders": [str(folder)]}))
    assert main.main(["ls", "--rescan", "--json"]) == 0
    captured = capsys.readouterr()
    assert [m["name"] for m in json.loads(captured.out)] == ["fine"]
    assert "crafted.gguf" in captured.err and "damaged" in captured.err


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_position_embeddings", 2**63), ("num_hidden_layers", 20_000_000), ("hidden_size", -1)],
)
def test_a_crafted_mlx_config_is_refused_as_damaged(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: int
) -> None:
    folder = write_mlx_folder(tmp_path / "src" / "crafted-mlx")
    config = json.loads((folder / "config.json").read_text())
    config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    assert main.main(["import", str(folder), "--link", "--json"]) == 1
    assert "damaged" in _json(capsys)["problems"][0]["message"]
    assert main.main(["estimate", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "damaged" in err
