"""Tools in ``hangar chat --prompt``: the MCP servers of ``--mcp-config`` started, their tools offered to the model,
each call the model makes asked for at the terminal (or run without asking with ``--allow-tools`` or
``--tool-choice``), and the calls with their results returned for ``--json``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.errors import UsageError

if TYPE_CHECKING:
    from core.engine.host import EngineHost
    from core.engine.protocol import ChatMessage, GenerationParams, GenerationStats
    from core.tools.loop import ToolCallRecord
    from core.tools.mcp import ToolSpec


def run_with_tools(
    host: EngineHost,
    messages: list[ChatMessage],
    params: GenerationParams,
    args: argparse.Namespace,
    on_chunk: Callable[[str], None] | None,
) -> tuple[GenerationStats, list[ToolCallRecord]]:
    from core.tools.calling import ToolChoice
    from core.tools.config import load_config
    from core.tools.loop import Approval, ToolSession, run_turn
    from core.tools.mcp import McpTools

    tools = McpTools(load_config(args.mcp_config))
    try:
        specs: list[ToolSpec] = []
        for server in tools.list_all():
            if server.error:
                print(f"hangar: warning: {server.error}", file=sys.stderr)
            specs.extend(server.tools)
        if not specs:
            raise UsageError("No MCP server of that configuration offers a tool.")
        choice_text = args.tool_choice or "auto"
        allowed = bool(args.allow_tools or args.tool_choice)

        def approve(server: str, tool: str, arguments: Any) -> Approval:
            if allowed:
                return Approval.ONCE
            if not sys.stdin.isatty():
                print(f"hangar: denied {server}/{tool}: run with --allow-tools to allow calls", file=sys.stderr)
                return Approval.DENY
            shown = json.dumps(arguments, ensure_ascii=False)[:300]
            answer = input(f"\nAllow {server} → {tool}({shown})? [y]es / [a]lways / [n]o: ").strip().lower()
            return {"y": Approval.ONCE, "yes": Approval.ONCE, "a": Approval.ALWAYS}.get(answer, Approval.DENY)

        session = ToolSession(tools, specs, approve)
        catalogue = session.catalogue()
        if choice_text in ("auto", "required", "none"):
            choice, name = ToolChoice(choice_text), None
        elif choice_text in catalogue:
            choice, name = ToolChoice.NAMED, choice_text
        else:
            raise UsageError(f"No tool called {choice_text!r}; the tools are: {', '.join(catalogue)}.")

        def shown(record: ToolCallRecord) -> None:
            if not args.json:
                state = "error" if record.is_error else f"{record.seconds:.1f} s"
                print(f"\n[tool {record.server}/{record.tool}: {state}] {record.result[:200]}", file=sys.stderr)

        turn = run_turn(host, messages, params, session, choice=choice, name=name, on_call=shown, on_chunk=on_chunk)
        if turn.stopped_at_limit:
            print(f"hangar: warning: stopped after {turn.rounds} rounds of tool calls", file=sys.stderr)
        return turn.stats, list(turn.calls)
    finally:
        tools.close()
