"""Hangar's command line: ``python main.py COMMAND ... [--json]``.

Every command is a module in this package with ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(app, args) -> int``. Commands never import Qt, so they start fast and run on machines without a display.
On failure a command prints one line (``hangar: error: ...``) to stderr, and with ``--json`` also an
``{"error": {...}}`` object to stdout, and exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from core import __version__
from core.errors import CancelledError, HangarError, UsageError

if TYPE_CHECKING:
    from core.app import AppContext

logger = logging.getLogger(__name__)

#: Command modules, in the order ``--help`` lists them. Later features append theirs.
COMMANDS: tuple[str, ...] = (
    "core.cli.search_cmd",
    "core.cli.pull_cmd",
    "core.cli.ls_cmd",
    "core.cli.import_cmd",
    "core.cli.rm_cmd",
    "core.cli.chat_cmd",
    "core.cli.finetune_cmd",
    "core.cli.hw_cmd",
    "core.cli.estimate_cmd",
    "core.cli.token_cmd",
    "core.cli.move_models_cmd",
    "core.cli.jobs_cmd",
    "core.cli.paths_cmd",
)

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130


def _command_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hangar",
        description="Run and tune language models on your own machine. Without a command, opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"Hangar {__version__}")
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        add_global_options(sub, suppress_defaults=True)
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def add_global_options(parser: argparse.ArgumentParser, *, suppress_defaults: bool = False) -> None:
    """Options valid before and after the command name (``--data-dir`` works in either place)."""
    default = argparse.SUPPRESS if suppress_defaults else None
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=default,
        help="keep every file (settings, models, database, logs) under DIR; also $HANGAR_DATA_DIR",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS if suppress_defaults else False
    )


def run_command(args: argparse.Namespace, make_app: Callable[[argparse.Namespace], AppContext]) -> int:
    """Run the parsed command; turn every error into one clear line and an exit code."""
    module = args._module
    as_json = bool(getattr(args, "json", False))
    app = None
    try:
        app = make_app(args)
        return int(module.run(app, args) or 0)
    except CancelledError:
        _fail("cancelled", "Cancelled.", as_json)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        _fail("cancelled", "Interrupted.", as_json)
        return EXIT_CANCELLED
    except UsageError as exc:
        _fail(exc.code, str(exc), as_json)
        return EXIT_USAGE
    except HangarError as exc:
        _fail(exc.code, str(exc), as_json)
        return EXIT_FAILURE
    except Exception as exc:  # a bug: still one line for the user, the traceback in the log
        logger.exception("command %s failed", module.NAME)
        _fail("internal", f"Unexpected error: {exc} (details in the log)", as_json)
        return EXIT_FAILURE
    finally:
        if app is not None:
            app.close()


def _fail(code: str, message: str, as_json: bool) -> None:
    one_line = " ".join(message.split())
    if as_json:
        print(json.dumps({"error": {"code": code, "message": one_line}}))
    print(f"hangar: error: {one_line}", file=sys.stderr)


def emit_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False, default=str), flush=True)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))
