"""Tools a model can call: MCP servers (the official ``mcp`` SDK, stdio and streamable HTTP) configured in an
``mcp.json`` as Claude Desktop and LM Studio write it."""
