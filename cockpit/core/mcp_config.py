"""How an agent starts the cockpit MCP server: pure data for agent adapters and `cockpit mcp install`.

Two shapes:

- per task (`task_server_entry`): the server an agent adapter gives the agent of one task, in a per-task file
  of its own (Claude Code `--mcp-config`, Codex `mcp_servers`, Gemini settings), never in a tracked file. It
  names this install's interpreter absolutely (the file is private to the task and this machine) and scopes
  the server through its environment: `COCKPIT_REPO` (the repo root) and `COCKPIT_TASK_ID`, so the tools know
  the repo and the task from any working directory, with no flags.
- shared (`shared_server_entry`): what `cockpit mcp install --shared` writes into a repo's `.mcp.json`, meant
  to be committed: `cockpit mcp` from PATH, no absolute paths, the repo found from the working directory.

Nothing here writes a file or starts a process.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.core.models import JSON

SERVER_NAME = "cockpit"
REPO_ENV = "COCKPIT_REPO"
TASK_ENV = "COCKPIT_TASK_ID"
HEARTBEAT_ENV = "COCKPIT_MCP_HEARTBEAT_S"

# The tools `cockpit mcp` serves, as agents see them (Claude Code names them `mcp__cockpit__<tool>`).
TOOL_NAMES: tuple[str, ...] = (
    "create_remote_task", "get_remote_task", "approve_remote_task", "wait_remote_task", "list_peers",
    "list_tasks", "show_task", "create_task", "report_done",
)


@dataclass(frozen=True)
class ServerEntry:
    """One stdio MCP server: the command, its arguments and the environment it adds."""

    command: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> JSON:
        """The entry as `mcpServers.<name>` takes it in Claude Code, Gemini CLI and most MCP clients."""
        return {"type": "stdio", "command": self.command, "args": list(self.args), "env": dict(self.env)}


def task_server_entry(repo_root: Path, task_id: int, *, python: str | None = None) -> ServerEntry:
    """The server for the agent of task `task_id` in the repo at `repo_root` (starts from any directory)."""
    return ServerEntry(command=python or sys.executable, args=["-m", "cockpit", "mcp"],
                       env={REPO_ENV: str(Path(repo_root).resolve()), TASK_ENV: str(int(task_id))})


def shared_server_entry() -> ServerEntry:
    """The portable entry for a committed `.mcp.json`: `cockpit` on PATH, the repo from the working dir."""
    return ServerEntry(command="cockpit", args=["mcp"])


def mcp_servers_json(entry: ServerEntry, *, name: str = SERVER_NAME) -> JSON:
    """A whole MCP config file holding just this server (`{"mcpServers": {"cockpit": {...}}}`)."""
    return {"mcpServers": {name: entry.to_json()}}


def claude_tool_names(*, name: str = SERVER_NAME) -> list[str]:
    """The tools as Claude Code names them, for `--allowedTools` or a settings `permissions.allow` list."""
    return [f"mcp__{name}__{tool}" for tool in TOOL_NAMES]


__all__ = [
    "HEARTBEAT_ENV", "REPO_ENV", "SERVER_NAME", "TASK_ENV", "TOOL_NAMES", "ServerEntry", "claude_tool_names",
    "mcp_servers_json", "shared_server_entry", "task_server_entry",
]
