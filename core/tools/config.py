"""``mcp.json``: ``{"mcpServers": {NAME: {"command", "args", "env"} | {"url", "headers"}}}`` — read, checked, and
every mistake named in one line (the file and the server), never a traceback. Values of ``env`` and ``headers``
may be secrets: they are never logged or shown."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import NotFoundError, UsageError

MAX_CONFIG_BYTES = 1024 * 1024
#: The app's own configuration, in its data folder (Settings → MCP servers edits it; the CLI uses it by default).
APP_CONFIG_FILE = "mcp.json"
_NAME = re.compile(r"^[\w.-]{1,64}$")


@dataclass(frozen=True)
class McpServerConfig:
    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict, repr=False)
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    #: Seconds to wait for the server to answer one request (list its tools, run a tool).
    timeout: float = 30.0
    #: Seconds to wait for the server to start and shake hands (a program's first start can be slow).
    startup_timeout: float = 60.0

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    def describe(self) -> str:
        if self.command:
            return " ".join([self.command, *self.args])[:200]
        return str(self.url)


def app_config_path(data_dir: Path) -> Path:
    return data_dir / APP_CONFIG_FILE


def load_app_config(data_dir: Path) -> tuple[Path, list[McpServerConfig]]:
    """The servers of the app's ``mcp.json`` (the one the window's Settings edit), and where it is."""
    path = app_config_path(data_dir)
    if not path.is_file():
        raise NotFoundError(
            f"No MCP servers are set up yet: add them in Settings → MCP servers (kept in {path}), or name an "
            "mcp.json of your own."
        )
    return path, load_config(path)


def load_config(path: Path) -> list[McpServerConfig]:
    if not path.is_file():
        raise NotFoundError(f"No MCP configuration at {path}.")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UsageError(f"{path.name} is larger than 1 MB; that is not an MCP configuration.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path.name} is not valid JSON ({exc}).") from None
    return parse_config(data, source=path.name)


def parse_config(data: Any, *, source: str = "mcp.json") -> list[McpServerConfig]:
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise UsageError(f'{source} has no "mcpServers" object (the format Claude Desktop and LM Studio use).')
    configs = []
    for name, entry in servers.items():
        where = f'{source}: server "{name}"'
        if not isinstance(name, str) or not _NAME.match(name):
            raise UsageError(f"{where}: use a name of letters, digits, '.', '_' or '-'.")
        if not isinstance(entry, dict):
            raise UsageError(f"{where} is not an object.")
        command, url = entry.get("command"), entry.get("url")
        if bool(command) == bool(url):
            raise UsageError(f'{where} needs either "command" (a program) or "url" (a streamable HTTP server).')
        args = entry.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise UsageError(f'{where}: "args" must be a list of strings.')
        env = _string_map(entry.get("env", {}), where, "env")
        headers = _string_map(entry.get("headers", {}), where, "headers")
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise UsageError(f'{where}: "url" must be an http(s) address.')
        if command is not None and not isinstance(command, str):
            raise UsageError(f'{where}: "command" must be a string.')
        timeouts = []
        for key, default in (("timeout", 30), ("startup_timeout", 60)):
            value = entry.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 600:
                raise UsageError(f'{where}: "{key}" must be between 1 and 600 seconds.')
            timeouts.append(float(value))
        configs.append(McpServerConfig(name, command, tuple(args), env, url, headers, *timeouts))
    return configs


def _string_map(value: Any, where: str, key: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise UsageError(f'{where}: "{key}" must map names to strings.')
    return dict(value)
