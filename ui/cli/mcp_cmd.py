"""``hangar mcp ls [--config mcp.json]``: each MCP server of a configuration (Claude Desktop / LM Studio format) with
the tools it offers; a server that does not start is named with the reason and the others are still listed. Without
``--config``, the app's own ``mcp.json`` (the one Settings → MCP servers edits, in the data folder)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UsageError
from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    ls = actions.add_parser("ls", help="list each server's tools")
    ls.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="an mcp.json (default: the app's own, which Settings → MCP servers edits)",
    )
    ls.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")


def run(app: AppContext, args: argparse.Namespace) -> int:
    from core.tools.config import load_app_config, load_config
    from core.tools.mcp import McpTools

    if args.action != "ls":
        raise UsageError("Use `hangar mcp ls [--config FILE]`.")
    if args.config is not None:
        path, configs = args.config, load_config(args.config)
    else:
        path, configs = load_app_config(app.paths.data_dir)
    if not configs and not args.json:
        print(f"No MCP servers in {path}.")
        return 0
    tools = McpTools(configs)
    try:
        servers = tools.list_all()
    finally:
        tools.close()
    if args.json:
        emit_json(
            [
                {
                    "server": s.server,
                    "transport": s.transport,
                    "ok": s.error is None,
                    "error": s.error,
                    "tools": [
                        {"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in s.tools
                    ],
                }
                for s in servers
            ]
        )
        return 0 if all(s.error is None for s in servers) else 1
    for server in servers:
        if server.error:
            print(f"{server.server}: {server.error}")
            continue
        print(f"{server.server} ({server.transport}): {len(server.tools)} tools")
        for tool in server.tools:
            print(f"  {tool.name:<24} {' '.join(tool.description.split())[:90]}")
    return 0 if all(s.error is None for s in servers) else 1
