from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import SettingsError
from core.settings import Settings, SettingsService, load_settings, read_settings, save_settings


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "settings.json") == Settings()


def test_round_trip_and_atomic_save(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    service = SettingsService.open(path)
    service.update(theme="dark", scan_folders=("/a", "/b"), default_context_length=8192)
    assert load_settings(path) == service.current
    assert load_settings(path).scan_folders == ("/a", "/b")
    assert not list(tmp_path.glob(".settings-*"))  # no temp files left behind


def test_damaged_file_is_kept_aside_and_defaults_used(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{ not json")
    loaded = read_settings(path)
    assert loaded.settings == Settings()
    [kept] = tmp_path.glob("settings.json.bad-*")
    assert kept.read_text() == "{ not json"
    assert len(loaded.notices) == 1 and kept.name in loaded.notices[0]


def test_unknown_keys_are_ignored_and_known_ones_kept(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"schema_version": 1, "theme": "light", "from_the_future": 1}))
    assert load_settings(path).theme == "light"


def test_newer_settings_are_refused_like_a_newer_database_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    text = json.dumps({"schema_version": 99, "theme": "light"})
    path.write_text(text)
    with pytest.raises(SettingsError, match="made by a newer Hangar"):
        load_settings(path)
    assert path.read_text() == text and list(tmp_path.iterdir()) == [path]  # nothing renamed or discarded


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gpu_layers", 5),
        ("models_dir", 123),
        ("theme", ["dark"]),
        ("default_context_length", "4096"),
        ("max_parallel_downloads", True),
        ("scan_folders", "/not/a/list"),
        ("scan_folders", [1, 2]),
        ("first_run_done", "yes"),
    ],
)
def test_a_bad_field_gets_its_default_the_others_stay_and_the_file_is_kept(
    tmp_path: Path, field: str, value: object
) -> None:
    path = tmp_path / "settings.json"
    original = json.dumps({"schema_version": 1, "theme": "dark", "max_parallel_downloads": 3, field: value})
    path.write_text(original)
    loaded = read_settings(path)
    expected = {"theme": "dark", "max_parallel_downloads": 3}
    expected.pop(field, None)
    assert loaded.settings == Settings(**expected)  # type: ignore[arg-type]
    [kept] = tmp_path.glob("settings.json.bad-*")
    assert kept.read_text() == original
    assert len(loaded.notices) == 1 and field in loaded.notices[0] and kept.name in loaded.notices[0]
    again = read_settings(path)  # the fixed file was saved: told once
    assert again.settings == loaded.settings and again.notices == ()


def test_a_settings_path_that_is_a_folder_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.mkdir()
    (path / "something").write_text("mine")
    service = SettingsService.open(path)
    assert service.current == Settings() and "folder" in service.notices[0]
    [kept] = tmp_path.glob("settings.json.bad-*")
    assert (kept / "something").read_text() == "mine"
    service.update(theme="dark")
    assert load_settings(path).theme == "dark"


def test_changes_are_announced(tmp_path: Path) -> None:
    service = SettingsService.open(tmp_path / "settings.json")
    heard: list[Settings] = []
    service.changed.connect(heard.append)
    service.update(max_parallel_downloads=4)
    assert [s.max_parallel_downloads for s in heard] == [4]


@pytest.mark.parametrize(
    "change",
    [
        {"theme": "neon"},
        {"default_context_length": 10},
        {"gpu_layers": "lots"},
        {"max_parallel_downloads": 0},
        {"gpu_layers": 5},
        {"models_dir": 123},
    ],
)
def test_invalid_values_are_refused_with_a_message(tmp_path: Path, change: dict[str, object]) -> None:
    with pytest.raises(SettingsError) as info:
        Settings().replace(**change)
    assert str(info.value)
    with pytest.raises(SettingsError):
        save_settings(tmp_path / "s.json", Settings(**change))  # type: ignore[arg-type]
