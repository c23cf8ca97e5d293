"""Hangar's composition root: parse arguments, build paths, settings and services, then open the window or run
one command. No business logic lives here."""

from __future__ import annotations

import functools
import multiprocessing
import sys
from argparse import Namespace
from collections.abc import Sequence


def build_app(args: Namespace, *, console_logging: bool = True):  # -> core.app.AppContext
    from backends import available_engines
    from backends.facts import fit_in_child
    from backends.finetune_worker import run as finetune_entry
    from backends.probe import probe_engines
    from backends.rpc_worker import serve as serve_rpc
    from backends.worker import serve
    from backends.workshop_worker import run as workshop_entry
    from core.app import AppContext
    from core.logs import setup_logging
    from core.paths import AppPaths

    paths = AppPaths.resolve(getattr(args, "data_dir", None)).ensure()
    setup_logging(paths.log_file, verbose=bool(getattr(args, "verbose", False)), console=console_logging)
    return AppContext.create(
        paths,
        worker_entry=serve,
        engine_availability=available_engines,
        engine_probe=functools.partial(probe_engines, cache_dir=paths.cache_dir),
        finetune_entry=finetune_entry,
        # Only the window restarts downloads a previous run left unfinished; a command does its own work.
        resume_downloads=getattr(args, "command", None) is None,
        workshop_entry=workshop_entry,
        fit_runner=fit_in_child,
        rpc_worker_entry=serve_rpc,
    )


def main(argv: Sequence[str] | None = None) -> int:
    multiprocessing.freeze_support()  # the frozen app re-enters here in engine child processes
    argv = list(sys.argv[1:] if argv is None else argv)
    from ui.cli import parse, run_command

    if "--smoke-test" in argv:
        return _smoke_test([a for a in argv if a != "--smoke-test"])
    from ui.cli.import_cmd import split_open_with

    argv, open_paths = split_open_with(argv)  # "Open with Hangar": model files, no command
    args = parse(argv)
    if args.command is not None:
        return run_command(args, build_app)
    from ui.app import run_gui

    return run_gui(args, lambda: build_app(args, console_logging=False), open_paths=open_paths)


def _smoke_test(argv: list[str]) -> int:
    """Start offscreen, build the window, run a tiny model through the engine child process, exit 0 if all worked."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from core.devkit.smoke import run_engine_smoke
    from ui.app import create_window
    from ui.cli import parse

    args = parse(argv)
    qt_app = QApplication(sys.argv[:1])
    context = build_app(args)
    try:
        window = create_window(context)
        window.show()
        qt_app.processEvents()
        pages = len(window.pages)
        result = run_engine_smoke(context)
        window.close()
        print(
            f"smoke test passed: {pages} pages, imported {result.model_path}, "
            f"{result.completion_tokens} tokens in {result.seconds:.1f} s"
        )
        return 0
    except Exception as exc:  # report, never hang: CI reads the exit code
        print(f"smoke test FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        context.close()


if __name__ == "__main__":
    sys.exit(main())
