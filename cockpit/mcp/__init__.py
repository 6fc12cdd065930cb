"""The cockpit MCP server: cross-repo delegation tools over stdio (`cockpit mcp`, `cockpit.mcp.server`)."""
