"""Hangar's command line: ``python main.py COMMAND ... [--json]``.

Every command is listed in ``COMMANDS`` (name, module, help) and is a module in this package with
``add_arguments(parser)`` and ``run(app, args) -> int``. Commands never import Qt, so they start fast and run
on machines without a display. On failure a command prints one line (``hangar: error: ...``) to stderr, and
with ``--json`` also an ``{"error": {...}}`` object to stdout, and exits non-zero; the traceback of an unexpected
error goes to the log (and, with ``-v``, to stderr). What the person must hear once (a damaged file kept aside)
is printed as ``hangar: warning: ...`` lines. A closed stdout (``| head``) ends the command quietly with 141.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core import __version__
from core.errors import CancelledError, HangarError, UsageError

if TYPE_CHECKING:
    from core.app import AppContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str


#: The commands, in the order ``--help`` lists them. A command's module is imported only when that command runs
#: (or its own ``--help`` is asked for), so the window and other commands never pay for its imports.
COMMANDS: tuple[Command, ...] = (
    Command("search", "ui.cli.search_cmd", "search the Hugging Face Hub for models"),
    Command("pull", "ui.cli.pull_cmd", "download a model from the Hugging Face Hub (resumes an interrupted pull)"),
    Command("ls", "ui.cli.ls_cmd", "list the models in the library"),
    Command("import", "ui.cli.import_cmd", "add .gguf files, split sets or MLX folders to the library"),
    Command("rm", "ui.cli.rm_cmd", "remove a model from the library (deleting the files Hangar owns)"),
    Command("chat", "ui.cli.chat_cmd", "chat with a local model (one answer with --prompt, else an interactive chat)"),
    Command("finetune", "ui.cli.finetune_cmd", "fine-tune a model with LoRA (MLX or PyTorch/PEFT)"),
    Command("hw", "ui.cli.hw_cmd", "show GPUs, memory, bandwidth and which engines can use them"),
    Command(
        "estimate",
        "ui.cli.estimate_cmd",
        "estimate memory and speed for a model file, folder or Hub REPO[:FILE] (no download)",
    ),
    Command("token", "ui.cli.token_cmd", "set, check or clear the Hugging Face token (stored in the OS keyring)"),
    Command(
        "move-models",
        "ui.cli.move_models_cmd",
        "move the models folder (downloads and imported copies) to DIR; linked models stay where they are",
    ),
    Command(
        "eval", "ui.cli.eval_cmd", "perplexity of a model on a text (llama-perplexity's method); KL vs a reference"
    ),
    Command("bench", "ui.cli.bench_cmd", "prompt and generation speed of a model on this machine (as llama-bench)"),
    Command("compare", "ui.cli.compare_cmd", "models or quants side by side: size, memory, speed, perplexity, KL"),
    Command("quantize", "ui.cli.quantize_cmd", "quantize an F16/BF16/F32 GGUF to Q4_K_M, Q6_K, … with llama.cpp"),
    Command("convert", "ui.cli.convert_cmd", "convert a Hugging Face safetensors llama model to GGUF"),
    Command("remote", "ui.cli.remote_cmd", "add, list or remove remote OpenAI-compatible servers to chat through"),
    Command("worker", "ui.cli.worker_cmd", "run a llama.cpp RPC worker here, so another machine can use its memory"),
    Command("docs", "ui.cli.docs_cmd", "collections of your documents for chat: add, ls, rm, search"),
    Command("mcp", "ui.cli.mcp_cmd", "list the tools of the MCP servers in an mcp.json"),
    Command("jobs", "ui.cli.jobs_cmd", "list background jobs and their state"),
    Command(
        "serve", "ui.cli.serve_cmd", "serve the library's models over a local OpenAI- and Anthropic-compatible API"
    ),
    Command("paths", "ui.cli.paths_cmd", "show where Hangar keeps settings, models, the database and logs"),
)
COMMAND_NAMES = frozenset(command.name for command in COMMANDS)

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; the arguments of ``only`` (or of every command, when None) are filled in."""
    parser = argparse.ArgumentParser(
        prog="hangar",
        description="Run and tune language models on your own machine. Without a command, opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"Hangar {__version__}")
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        add_global_options(sub, suppress_defaults=True)
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        if only is None or command.name == only:
            module = importlib.import_module(command.module)
            module.add_arguments(sub)
            sub.set_defaults(_module=module)
    return parser


def command_in(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` (skipping global options and their values), if any."""
    skip_value = False
    for token in argv:
        if skip_value:
            skip_value = False
            continue
        if token == "--data-dir":
            skip_value = True
            continue
        if token.startswith("-"):
            continue
        return token if token in COMMAND_NAMES else None
    return None


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
    said: set[str] = set()
    try:
        app = make_app(args)
        _announce(app, said)
        code = int(module.run(app, args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _stdout_closed()
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
    except sqlite3.DatabaseError as exc:
        logger.exception("command %s: database error", args.command)
        _fail("store", f"Hangar's database failed: {exc}. Details are in the log.", as_json)
        return EXIT_FAILURE
    except Exception as exc:  # a bug: still one line for the user, the traceback in the log (and with -v, here)
        logger.exception("command %s failed", args.command)
        detail = str(exc) or type(exc).__name__
        _fail("internal", f"Unexpected error: {detail} (details in the log; -v shows them here)", as_json)
        return EXIT_FAILURE
    finally:
        if app is not None:
            _announce(app, said)  # services started by the command may have something to say (a database kept aside)
            app.close()


def _announce(app: AppContext, said: set[str]) -> None:
    for notice in app.notices:
        if notice not in said:
            said.add(notice)
            _say(f"hangar: warning: {' '.join(notice.split())}")


#: What a command exits with when its reader went away (``hangar search --json | head``): 128 + SIGPIPE.
EXIT_BROKEN_PIPE = 141


def _stdout_closed() -> int:
    """The reader of our output went away: stop quietly, as other command-line tools do, and make sure the
    interpreter's last flush of stdout cannot complain either."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr)
    except (BrokenPipeError, ValueError):
        pass


def _fail(code: str, message: str, as_json: bool) -> None:
    one_line = " ".join(message.split())
    if as_json:
        try:
            print(json.dumps({"error": {"code": code, "message": one_line}}), flush=True)
        except BrokenPipeError:
            _stdout_closed()
    _say(f"hangar: error: {one_line}")


def emit_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False, default=str), flush=True)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    argv = list(argv)
    # Only the named command's module is imported; without one (the window, or the top-level --help, which lists
    # commands by their help text) none is.
    return build_parser(only=command_in(argv) or "").parse_args(argv)
