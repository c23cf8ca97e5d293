"""``hangar mcp ls --config mcp.json``: each MCP server of a configuration (Claude Desktop / LM Studio format) with
the tools it offers; a server that does not start is named with the reason and the others are still listed."""

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
    ls.add_argument("--config", type=Path, required=True, metavar="FILE", help="an mcp.json")
    ls.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")


def run(app: AppContext, args: argparse.Namespace) -> int:
    from core.tools.config import load_config
    from core.tools.mcp import McpTools

    if args.action != "ls":
        raise UsageError("Use `hangar mcp ls --config FILE`.")
    tools = McpTools(load_config(args.config))
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
