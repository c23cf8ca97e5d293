from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import SettingsError
from core.settings import Settings, SettingsService, load_settings, save_settings


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
    assert load_settings(path) == Settings()
    assert (tmp_path / "settings.json.bad").read_text() == "{ not json"


def test_unknown_keys_are_ignored_and_known_ones_kept(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"schema_version": 1, "theme": "light", "from_the_future": 1}))
    assert load_settings(path).theme == "light"


def test_newer_schema_is_not_silently_downgraded(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"schema_version": 99, "theme": "light"}))
    assert load_settings(path) == Settings()
    assert (tmp_path / "settings.json.bad").exists()


@pytest.mark.parametrize(
    "change",
    [
        {"theme": "neon"},
        {"default_context_length": 10},
        {"gpu_layers": "lots"},
        {"max_parallel_downloads": 0},
    ],
)
def test_invalid_values_are_refused_with_a_message(tmp_path: Path, change: dict[str, object]) -> None:
    with pytest.raises(SettingsError) as info:
        Settings().replace(**change)
    assert str(info.value)
    with pytest.raises(SettingsError):
        save_settings(tmp_path / "s.json", Settings(**change))  # type: ignore[arg-type]
