"""The per-task MCP server entry agent adapters use, and how `cockpit mcp` finds its repo and task."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cockpit.core.errors import NotARepoError, UsageError
from cockpit.core.mcp_config import (
    REPO_ENV,
    TASK_ENV,
    TOOL_NAMES,
    claude_tool_names,
    mcp_servers_json,
    shared_server_entry,
    task_server_entry,
)
from cockpit.core.states import State
from cockpit.mcp.server import STATE_NAMES, build_server, resolve_scope


def test_the_task_entry_names_this_install_and_scopes_by_environment(tmp_path: Path) -> None:
    entry = task_server_entry(tmp_path, 7)
    assert entry.command == sys.executable and entry.args == ["-m", "cockpit", "mcp"]
    assert entry.env == {REPO_ENV: str(tmp_path.resolve()), TASK_ENV: "7"}
    assert mcp_servers_json(entry) == {"mcpServers": {"cockpit": {
        "type": "stdio", "command": sys.executable, "args": ["-m", "cockpit", "mcp"], "env": entry.env}}}
    assert claude_tool_names()[0] == "mcp__cockpit__create_remote_task"
    assert len(claude_tool_names()) == len(TOOL_NAMES)


def test_the_shared_entry_has_no_path_of_this_machine() -> None:
    data = shared_server_entry().to_json()
    assert data == {"type": "stdio", "command": "cockpit", "args": ["mcp"], "env": {}}


def test_the_server_lists_exactly_the_named_tools(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    server = build_server(tmp_path, task_id=1)
    assert {t.name for t in server._tool_manager.list_tools()} == set(TOOL_NAMES)
    assert list(STATE_NAMES) == [s.value for s in State]


def test_scope_from_flag_environment_worktree_and_cwd(tmp_path: Path) -> None:
    repo = tmp_path / "backend"
    (repo / ".git").mkdir(parents=True)
    worktree = repo / ".cockpit" / "worktrees" / "task-4-add-export"
    worktree.mkdir(parents=True)
    (worktree / ".git").write_text("gitdir: elsewhere\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert resolve_scope(repo, env={}, cwd=Path("/")) == (repo.resolve(), None)
    assert resolve_scope(None, env={REPO_ENV: str(repo), TASK_ENV: "3"}, cwd=Path("/")) == (repo.resolve(), 3)
    assert resolve_scope(worktree, env={}, cwd=Path("/")) == (repo.resolve(), 4)
    assert resolve_scope(repo, env={}, cwd=worktree) == (repo.resolve(), 4)
    assert resolve_scope(None, env={}, cwd=worktree) == (repo.resolve(), 4)
    assert resolve_scope(None, env={TASK_ENV: "9"}, cwd=worktree) == (repo.resolve(), 9)
    with pytest.raises(UsageError, match="COCKPIT_TASK_ID='x1' is not a task id"):
        resolve_scope(repo, env={TASK_ENV: "x1"}, cwd=Path("/"))
    with pytest.raises(NotARepoError, match="is not inside a git repository"):
        resolve_scope(None, env={}, cwd=elsewhere)
