"""A chat turn that may call tools: the model sees the tools (``core.tools.calling``), each call it makes is shown
for approval (ask / always allow this tool / deny), run on its MCP server with a time limit, and the result — or the
error — goes back to the model, until it answers in words or the round limit is reached."""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from core.engine.host import ChatMessage, GenerationParams, GenerationStats
from core.errors import HangarError
from core.tools.calling import Tool, ToolCall, ToolChoice, apply, call_text, plan, read_calls, result_text

if TYPE_CHECKING:
    from core.engine.host import EngineHost
    from core.tools.mcp import McpTools, ToolSpec

MAX_ROUNDS = 5
#: One round of generation: messages, parameters, where streamed text goes (None: nowhere) → the stats.
Generate = Callable[[Sequence[ChatMessage], GenerationParams, Callable[[str], None] | None], GenerationStats]
#: Room for the arguments of a forced call (a reply's own max_tokens may be shorter).
FORCED_CALL_TOKENS = 512


class Approval(enum.StrEnum):
    ONCE = "once"
    ALWAYS = "always"  # this tool, for the rest of the conversation
    DENY = "deny"


@dataclass(frozen=True)
class ToolCallRecord:
    """One call as the transcript shows it: the card with tool, arguments, result and time."""

    server: str
    tool: str
    arguments: Any
    result: str
    is_error: bool
    approved: bool
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "server": self.server,
            "tool": self.tool,
            "arguments": self.arguments,
            "result": self.result,
            "is_error": self.is_error,
            "approved": self.approved,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ToolSession:
    """The tools of one conversation and what the user allowed."""

    tools: McpTools
    specs: list[ToolSpec]
    approve: Callable[[str, str, Any], Approval]
    always: set[str] = field(default_factory=set)
    #: Called just before an allowed call runs (server, tool, arguments): the window shows it as running.
    on_run: Callable[[str, str, Any], None] | None = None

    def catalogue(self) -> dict[str, ToolSpec]:
        """Names the model sees: the tool's own name, or ``server__tool`` where two servers share one."""
        counts: dict[str, int] = {}
        for spec in self.specs:
            counts[spec.name] = counts.get(spec.name, 0) + 1
        return {(s.name if counts[s.name] == 1 else s.qualified): s for s in self.specs}

    def run(self, call: ToolCall) -> ToolCallRecord:
        spec = self.catalogue().get(call.name)
        arguments = call.arguments_object()
        if spec is None:
            return ToolCallRecord("?", call.name, arguments, f"There is no tool called {call.name}.", True, False, 0.0)
        try:
            json.loads(call.arguments)
        except ValueError:
            message = "The call's arguments are not complete JSON (the reply was cut off); it was not run."
            return ToolCallRecord(spec.server, spec.name, call.arguments, message, True, False, 0.0)
        key = spec.qualified
        decision = Approval.ALWAYS if key in self.always else self.approve(spec.server, spec.name, arguments)
        if decision == Approval.ALWAYS:
            self.always.add(key)
        if decision == Approval.DENY:
            return ToolCallRecord(spec.server, spec.name, arguments, "The user denied this call.", True, False, 0.0)
        if self.on_run is not None:
            self.on_run(spec.server, spec.name, arguments)
        started = time.monotonic()
        try:
            result = self.tools.call(spec.server, spec.name, arguments if isinstance(arguments, dict) else {})
            return ToolCallRecord(spec.server, spec.name, arguments, result.text, result.is_error, True, result.seconds)
        except HangarError as exc:
            return ToolCallRecord(spec.server, spec.name, arguments, str(exc), True, True, time.monotonic() - started)


@dataclass(frozen=True)
class ToolTurn:
    stats: GenerationStats
    calls: tuple[ToolCallRecord, ...]
    rounds: int
    stopped_at_limit: bool


def run_turn(
    host: EngineHost,
    messages: Sequence[ChatMessage],
    params: GenerationParams,
    session: ToolSession,
    *,
    choice: ToolChoice = ToolChoice.AUTO,
    name: str | None = None,
    max_rounds: int = MAX_ROUNDS,
    on_call: Callable[[ToolCallRecord], None] | None = None,
    on_chunk: Callable[[str], None] | None = None,
    generate: Generate | None = None,
) -> ToolTurn:
    """Generate, run the calls the model makes, feed the results back, repeat; the last answer is in words.

    ``generate`` runs one round (default: ``host.generate_blocking``); the window passes one it can stop."""
    generate = generate or host.generate_blocking
    tools = [
        Tool(n, s.description, s.input_schema or {"type": "object", "properties": {}})
        for n, s in session.catalogue().items()
    ]
    history = list(messages)
    records: list[ToolCallRecord] = []
    current = plan(tools, choice, name)
    for round_number in range(1, max_rounds + 1):
        run_messages, run_params = apply(current, history, params)
        forced = current.forced
        if forced:  # a grammar-forced call must be allowed to finish its JSON, whatever the reply's length limit
            run_params = replace(run_params, max_tokens=max(run_params.max_tokens, FORCED_CALL_TOKENS))
        stats = generate(run_messages, run_params, None if forced else on_chunk)
        _text, calls = read_calls(current, stats.text)
        if not calls:
            return ToolTurn(stats, tuple(records), round_number, False)
        history.append(ChatMessage("assistant", "\n".join(call_text(c.name, c.arguments) for c in calls)))
        results = []
        for call in calls:
            record = session.run(call)
            records.append(record)
            if on_call:
                on_call(record)
            content = record.result if not record.is_error else f"Error: {record.result}"
            results.append(result_text(content))
        history.append(ChatMessage("user", "\n".join(results)))
        # after a forced call the model answers freely (it may call again, or say what it found)
        current = plan(tools, ToolChoice.AUTO)
    final = generate(*apply(plan(tools, ToolChoice.NONE), history, params), on_chunk)
    return ToolTurn(final, tuple(records), max_rounds, True)


def describe_call(server: str, tool: str, arguments: Any) -> str:
    return f"{server} → {tool}({json.dumps(arguments, ensure_ascii=False)[:300]})"


__all__ = ["Approval", "ToolCallRecord", "ToolSession", "ToolTurn", "describe_call", "run_turn"]
