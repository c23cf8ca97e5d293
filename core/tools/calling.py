"""Tool calling for models that have no native tool parser here (the API server and chat both use it): the tools
are described in the system prompt (the ``<tool_call>`` convention most open chat models are trained on), and the
answer is read back.

``tool_choice`` ``required`` and a named function are enforced by a JSON-schema grammar, so the arguments always
parse and match the function's schema; ``auto`` lets the model choose and reads any ``<tool_call>`` it wrote.
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from core.engine.host import ChatMessage, GenerationParams
from core.errors import UsageError

_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


class ToolChoice(enum.StrEnum):
    NONE = "none"
    AUTO = "auto"
    REQUIRED = "required"
    NAMED = "named"


@dataclass(frozen=True)
class Tool:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the OpenAI API carries it

    def arguments_object(self) -> Any:
        try:
            return json.loads(self.arguments)
        except json.JSONDecodeError:
            return {}


@dataclass(frozen=True)
class ToolPlan:
    tools: tuple[Tool, ...] = ()
    choice: ToolChoice = ToolChoice.NONE
    name: str | None = None  # the function, for ToolChoice.NAMED

    @property
    def active(self) -> bool:
        return bool(self.tools) and self.choice != ToolChoice.NONE

    @property
    def forced(self) -> bool:
        return self.active and self.choice in (ToolChoice.REQUIRED, ToolChoice.NAMED)


def plan(tools: list[Tool], choice: ToolChoice, name: str | None = None) -> ToolPlan:
    if choice == ToolChoice.NAMED:
        if name not in {t.name for t in tools}:
            raise UsageError(f"tool_choice names the function “{name}”, which is not among the tools.")
    elif choice == ToolChoice.REQUIRED and not tools:
        raise UsageError("tool_choice “required” needs at least one tool.")
    return ToolPlan(tuple(tools), choice if tools else ToolChoice.NONE, name)


def apply(plan: ToolPlan, messages: list[ChatMessage], params: GenerationParams) -> tuple[list[ChatMessage], Any]:
    """The messages (tools described in the system prompt) and parameters (grammar for forced calls) to run."""
    if not plan.active:
        return messages, params
    described = [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in plan.tools
    ]
    lines = [
        "You can call functions. Their signatures are within <tools></tools> XML tags:",
        "<tools>",
        *(json.dumps(d) for d in described),
        "</tools>",
    ]
    if plan.choice == ToolChoice.AUTO:
        lines.append(
            "To call a function, answer with a JSON object with its name and arguments within <tool_call></tool_call>"
            ' XML tags: <tool_call>{"name": <function-name>, "arguments": <args-json-object>}</tool_call>'
        )
        schema = None
    elif plan.choice == ToolChoice.NAMED:
        tool = next(t for t in plan.tools if t.name == plan.name)
        lines.append(f"Call the function {tool.name}: answer with its arguments as one JSON object.")
        schema = tool.parameters or {"type": "object"}
    else:
        lines.append('Call one of the functions: answer with {"name": <function-name>, "arguments": <args-object>}.')
        schema = {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"name": {"const": t.name}, "arguments": t.parameters or {"type": "object"}},
                    "required": ["name", "arguments"],
                }
                for t in plan.tools
            ]
        }
    text = "\n".join(lines)
    if messages and messages[0].role == "system":
        messages = [ChatMessage("system", f"{messages[0].content}\n\n{text}"), *messages[1:]]
    else:
        messages = [ChatMessage("system", text), *messages]
    if schema is not None:
        params = replace(params, response_format="json_schema", json_schema=json.dumps(schema))
    return messages, params


def read_calls(plan: ToolPlan, text: str) -> tuple[str | None, tuple[ToolCall, ...]]:
    """Split an answer into its text and its tool calls."""
    if not plan.active:
        return text, ()
    if plan.choice == ToolChoice.NAMED:
        return None, (ToolCall(new_call_id(), plan.name or "", text.strip()),)
    if plan.choice == ToolChoice.REQUIRED:
        try:
            data = json.loads(text)
            return None, (ToolCall(new_call_id(), str(data["name"]), json.dumps(data["arguments"])),)
        except (json.JSONDecodeError, KeyError, TypeError):
            return text, ()  # cut short by max_tokens: the partial answer is all there is
    calls: list[ToolCall] = []
    for match in _CALL.finditer(text):
        try:
            data = json.loads(match.group(1))
            calls.append(ToolCall(new_call_id(), str(data["name"]), json.dumps(data.get("arguments", {}))))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            continue
    if not calls:
        return text, ()
    before = text[: text.find("<tool_call>")].strip()
    return before or None, tuple(calls)


def call_text(name: str, arguments: Any) -> str:
    """How an earlier call appears in the conversation sent back to the model."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def result_text(content: str) -> str:
    return f"<tool_response>\n{content}\n</tool_response>"


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]
