"""Gemini CLI: `gemini -i PROMPT` (the prompt, then interactive), hooks and MCP server wired per task.

Command line::

    bash -c 'p=$(cat -- "$1") || exit 66; exec gemini -i "$p"' cockpit-gemini PROMPT

with `GEMINI_CLI_SYSTEM_SETTINGS_PATH=.cockpit/agents/task-<id>/gemini-settings.json` in the pane: a settings
file of the task's own, merged over the person's, that enables hooks and wires AfterAgent -> `turn-ended`
(its payload has the response and `transcript_path`), Notification -> `needs-input`, BeforeAgent and
AfterTool -> `resolved`, and the cockpit MCP server (trusted: its tools need no confirmation). Nothing is
written into the worktree, so the clean-tree gate never sees it.

Trust: where the person trusts the repo root in `~/.gemini/trustedFolders.json`, the worktree is added with
the same level before start; otherwise the "Do you trust the files in this folder?" dialog is flagged by its
screen pattern. Usage: the session transcript's per-message `tokens`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from cockpit.core.agents.base import (
    Agent,
    Setup,
    SubmitStyle,
    Usage,
    hook_line,
    mcp_server,
    person_home,
    prompt_argv,
)
from cockpit.core.agents.claude import write_json


def hooks_settings(setup: Setup) -> dict[str, Any]:
    def entry(name: str, command: str) -> dict[str, Any]:
        return {"matcher": "*", "hooks": [{"name": name, "type": "command", "command": command}]}

    server = {**mcp_server(setup), "trust": True}
    return {
        "hooksConfig": {"enabled": True},
        "tools": {"enableHooks": True},
        "hooks": {
            "AfterAgent": [
                entry("cockpit-turn", hook_line(setup, "turn-ended", "--stdin", "--event", "AfterAgent"))
            ],
            "Notification": [
                entry("cockpit-ask", hook_line(setup, "needs-input", "--stdin", "--event", "Notification"))
            ],
            "BeforeAgent": [entry("cockpit-resolved", hook_line(setup, "resolved"))],
            "AfterTool": [entry("cockpit-tool", hook_line(setup, "resolved"))],
        },
        "mcpServers": {"cockpit": server},
    }


def trust_worktree(folders: Path, repo_root: Path, worktree: Path) -> bool:
    """Trust the worktree as the person trusts the repo root (or a parent of it); True if written."""
    try:
        data = json.loads(folders.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or str(worktree) in data:
        return False
    level = None
    for folder in (repo_root, *repo_root.parents):
        value = data.get(str(folder))
        if value in ("TRUST_FOLDER", "TRUST_PARENT") or (value and folder != repo_root):
            level = "TRUST_FOLDER"
            break
    if level is None:
        return False
    data[str(worktree)] = level
    write_json(folders, data)
    return True


def transcript_usage(path: Path) -> Usage | None:
    """Sum the `tokens` of the model's messages in a Gemini CLI session file (JSON, or JSON lines)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    records: list[Any] = []
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            records = list(data.get("messages", []))
        elif isinstance(data, list):
            records = data
    except ValueError:
        for line in text.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    tokens_in = tokens_out = 0
    seen = False
    for record in records:
        tokens = record.get("tokens") if isinstance(record, dict) else None
        if not isinstance(tokens, dict):
            continue
        seen = True
        tokens_in += int(tokens.get("input") or 0)
        tokens_out += int(tokens.get("output") or 0) + int(tokens.get("thoughts") or 0)
    return Usage(tokens_in, tokens_out, source="gemini-session") if seen else None


class Gemini(Agent):
    name = "gemini"
    executable = "gemini"
    interactive = True
    turn_hooks = True
    submit: ClassVar[SubmitStyle] = "pause"
    exit_text = "/quit"
    speech_marks = ("✦",)

    def settings_file(self, setup: Setup) -> Path:
        assert setup.home is not None
        return setup.home / "gemini-settings.json"

    def command(self, setup: Setup) -> list[str]:
        return prompt_argv(self.name, ["gemini", "-i"], setup.prompt_file)

    def prepare(self, setup: Setup) -> dict[str, str]:
        assert setup.repo_root is not None
        file = self.settings_file(setup)
        write_json(file, hooks_settings(setup))
        trust_worktree(
            person_home(setup) / ".gemini" / "trustedFolders.json", setup.repo_root, setup.worktree.absolute()
        )
        return {"GEMINI_CLI_SYSTEM_SETTINGS_PATH": str(file)}

    def usage(self, setup: Setup, hint: dict[str, object], log_text: str) -> Usage | None:
        path = hint.get("transcript_path")
        return transcript_usage(Path(path)) if isinstance(path, str) and path else None
