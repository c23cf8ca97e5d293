"""A real MCP server (the official SDK) for the tests, run as ``python tests/support/mcp_server.py``: a calculator,
a tool that fails, and a slow one."""

from __future__ import annotations

import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("test-tools")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@server.tool()
def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"Sunny and 21 degrees in {city}."


@server.tool()
def explode(code: int) -> str:
    """Always fails."""
    raise ValueError(f"exploded with code {code}")


@server.tool()
def slow(seconds: float) -> str:
    """Sleeps, then answers."""
    time.sleep(seconds)
    return "done"


if __name__ == "__main__":
    server.run()
