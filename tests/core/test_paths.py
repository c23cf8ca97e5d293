from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import UnsafePathError
from core.paths import AppPaths, safe_join


def test_data_dir_override_puts_everything_under_one_folder(tmp_path: Path) -> None:
    paths = AppPaths.resolve(tmp_path / "d").ensure()
    for folder in (paths.config_dir, paths.data_dir, paths.cache_dir, paths.log_dir, paths.models_dir):
        assert folder.is_dir()
        assert folder.is_relative_to(tmp_path / "d")


def test_environment_variable_is_the_default_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANGAR_DATA_DIR", str(tmp_path / "env"))
    assert AppPaths.resolve().models_dir == (tmp_path / "env" / "models").resolve()
    # an explicit --data-dir wins over the environment
    assert AppPaths.resolve(tmp_path / "flag").models_dir == (tmp_path / "flag" / "models").resolve()


def test_without_override_paths_come_from_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HANGAR_DATA_DIR", raising=False)
    paths = AppPaths.resolve()
    assert "hangar" in str(paths.data_dir).lower()


@pytest.mark.parametrize(
    "name",
    [
        "../evil.gguf",
        "a/../../evil",
        "/etc/passwd",
        "a//b",
        "C:/x.gguf",
        "a\\..\\b",
        "",
        "x\x00y",
        "./a",
        "a/.",
    ],
)
def test_safe_join_refuses_names_that_escape(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, name)


def test_safe_join_refuses_symlink_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(UnsafePathError):
        safe_join(root, "link/file.gguf")


def test_safe_join_accepts_nested_names(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "org/model/q4/model.gguf") == tmp_path.resolve() / "org/model/q4/model.gguf"


def test_a_file_in_the_way_of_a_folder_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import main

    root = tmp_path / "root"
    root.mkdir()
    (root / "logs").write_text("in the way")
    assert main.main(["paths", "--data-dir", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot create its folder" in err and "logs" in err
