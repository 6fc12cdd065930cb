"""Gemini CLI: `gemini -i PROMPT` (the prompt, then interactive), hooks and MCP server wired per task.

Command line::

    bash -c 'p=$(cat -- "$1") || exit 66; exec gemini -i "$p"' cockpit-gemini PROMPT

with `GEMINI_CLI_SYSTEM_SETTINGS_PATH=.cockpit/agents/task-<id>/gemini-settings.json` in the pane: a settings
file of the task's own with the cockpit MCP server for this task (trusted: its tools need no confirmation).
Gemini CLI 0.61 runs hooks only from user and workspace settings, so cockpit adds its hooks to the person's
`~/.gemini/settings.json` once, as commands that are no-ops outside a cockpit pane
(`${COCKPIT_HOOK:-true} turn-ended ...`): AfterAgent -> `turn-ended` (its payload has the response and
`transcript_path`), Notification -> `needs-input`, BeforeAgent and AfterTool -> `resolved`. Nothing is written
into the worktree, so the clean-tree gate never sees it.

Trust: where the person trusts the repo root in `~/.gemini/trustedFolders.json`, the pane gets
`GEMINI_CLI_TRUST_WORKSPACE=true` (the worktree is trusted as its repo is; the person's file is not touched);
otherwise the "Do you trust the files in this folder?" dialog is flagged by its screen pattern. Gemini CLI
hides the person's global git config from its shell commands, so the pane also gets the repo's author and
committer identity (`GIT_AUTHOR_NAME`...). Usage: the session transcript's per-message `tokens`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, ClassVar

from cockpit.core.agents.base import (
    Agent,
    Setup,
    SubmitStyle,
    Usage,
    mcp_server,
    person_home,
    prompt_argv,
)
from cockpit.core.agents.claude import write_json

# Hook commands that work in any Gemini CLI session: inside a cockpit pane they report to its task
# ($COCKPIT_HOOK), anywhere else `true` makes them no-ops. A Gemini CLI hook must print JSON only.
USER_HOOKS: dict[str, tuple[str, str]] = {
    "AfterAgent": ("cockpit-turn", "turn-ended --stdin --event AfterAgent"),
    "Notification": ("cockpit-ask", "needs-input --stdin --event Notification"),
    "BeforeAgent": ("cockpit-resolved", "resolved"),
    "AfterTool": ("cockpit-tool", "resolved"),
}


def user_hook_command(args: str) -> str:
    return f"${{COCKPIT_HOOK:-true}} {args} >/dev/null 2>&1; echo '{{}}'"


def install_user_hooks(settings: Path) -> bool:
    """Add cockpit's hooks to the person's ~/.gemini/settings.json (once; their own hooks and settings are
    kept). Gemini CLI 0.61 runs hooks from user (and workspace) settings only. True when the file changed;
    a file that is not plain JSON is left alone."""
    try:
        data: Any = json.loads(settings.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    hooks = data.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        return False
    changed = False
    for event, (name, args) in USER_HOOKS.items():
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            continue
        mine = {"name": name, "type": "command", "command": user_hook_command(args)}
        found = [g for g in groups if isinstance(g, dict) and any(
            isinstance(h, dict) and h.get("name") == name for h in g.get("hooks", []))]
        if found and found[0].get("hooks") == [mine]:
            continue
        groups[:] = [g for g in groups if g not in found] + [{"matcher": "*", "hooks": [mine]}]
        changed = True
    config = data.setdefault("hooksConfig", {})
    if isinstance(config, dict) and config.get("enabled") is not True:
        config["enabled"] = True
        changed = True
    if changed:
        write_json(settings, data)
    return changed


def task_settings(setup: Setup) -> dict[str, Any]:
    """The task's own settings file: the cockpit MCP server for this task (trusted: no confirmations)."""
    return {"mcpServers": {"cockpit": {**mcp_server(setup), "trust": True}}}


def repo_trusted(folders: Path, repo_root: Path) -> bool:
    """Whether the person trusts the repo root (or a folder above it) in ~/.gemini/trustedFolders.json."""
    try:
        data = json.loads(folders.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    if data.get(str(repo_root)) in ("TRUST_FOLDER", "TRUST_PARENT"):
        return True
    return any(data.get(str(folder)) in ("TRUST_FOLDER", "TRUST_PARENT") for folder in repo_root.parents)


def git_identity(repo: Path) -> dict[str, str]:
    """The repo's author and committer as environment: Gemini CLI runs shell commands with the person's
    global git config hidden (GIT_CONFIG_GLOBAL=/dev/null), so a commit would have no identity."""
    env: dict[str, str] = {}
    for who in ("AUTHOR", "COMMITTER"):
        try:
            out = subprocess.run(
                ["git", "var", f"GIT_{who}_IDENT"], cwd=repo, capture_output=True, text=True, timeout=10,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        found = re.match(r"^(.*?) <([^>]*)>", out)
        if found:
            env[f"GIT_{who}_NAME"], env[f"GIT_{who}_EMAIL"] = found.group(1), found.group(2)
    return env


def transcript_usage(path: Path) -> Usage | None:
    """Sum the `tokens` of the model's messages in a Gemini CLI session file (JSON, or JSON lines where one
    message is written again as it updates: the last line of each id counts)."""
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
    latest: dict[str, dict[str, Any]] = {}
    for n, record in enumerate(records):
        tokens = record.get("tokens") if isinstance(record, dict) else None
        if not isinstance(tokens, dict) or record.get("type", "gemini") != "gemini":
            continue
        latest[str(record.get("id") or n)] = tokens
    if not latest:
        return None
    tokens_in = sum(int(t.get("input") or 0) for t in latest.values())
    tokens_out = sum(int(t.get("output") or 0) + int(t.get("thoughts") or 0) for t in latest.values())
    return Usage(tokens_in, tokens_out, source="gemini-session")


class Gemini(Agent):
    name = "gemini"
    executable = "gemini"
    interactive = True
    turn_hooks = True
    submit: ClassVar[SubmitStyle] = "pause"
    exit_text = "/quit"
    speech_marks = ("✦",)
    composer = ">"
    furniture = (r"Type your message", r"Shift\+Tab to accept", r"Executing Hooks", r"True color",
                 r"workspace \(/directory\)", r"\bsandbox\b.*\bmodel\b")

    def settings_file(self, setup: Setup) -> Path:
        assert setup.home is not None
        return setup.home / "gemini-settings.json"

    def command(self, setup: Setup) -> list[str]:
        return prompt_argv(self.name, ["gemini", "-i"], setup.prompt_file)

    def prepare(self, setup: Setup) -> dict[str, str]:
        assert setup.repo_root is not None
        file = self.settings_file(setup)
        write_json(file, task_settings(setup))
        install_user_hooks(person_home(setup) / ".gemini" / "settings.json")
        env = {"GEMINI_CLI_SYSTEM_SETTINGS_PATH": str(file), **git_identity(setup.repo_root)}
        folders = os.environ.get("GEMINI_CLI_TRUSTED_FOLDERS_PATH")
        trusted = Path(folders) if folders else person_home(setup) / ".gemini" / "trustedFolders.json"
        if repo_trusted(trusted, setup.repo_root):
            env["GEMINI_CLI_TRUST_WORKSPACE"] = "true"  # the worktree, trusted as its repo is
        return env

    def usage(self, setup: Setup, hint: dict[str, object], log_text: str) -> Usage | None:
        path = hint.get("transcript_path")
        return transcript_usage(Path(path)) if isinstance(path, str) and path else None
