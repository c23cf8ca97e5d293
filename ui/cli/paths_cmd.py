"""``hangar paths``: where Hangar keeps its files."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(app: AppContext, args: argparse.Namespace) -> int:
    paths = app.paths
    rows = {
        "config": paths.config_dir,
        "data": paths.data_dir,
        "models": app.models_dir,  # as set in Settings (after "Move models"), else the data folder's
        "cache": paths.cache_dir,
        "logs": paths.log_dir,
        "settings": paths.settings_file,
        "database": paths.database_file,
    }
    if args.json:
        emit_json({key: str(value) for key, value in rows.items()})
    else:
        for key, value in rows.items():
            print(f"{key:<9} {value}")
    return 0
