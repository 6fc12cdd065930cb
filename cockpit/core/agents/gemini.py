"""Gemini CLI: `gemini -i PROMPT` (the prompt, then interactive) in a per-task GEMINI_CLI_HOME.

Command line::

    bash -c 'p=$(cat -- "$1") || exit 66; exec gemini -i "$p"' cockpit-gemini PROMPT

with `GEMINI_CLI_HOME=.cockpit/agents/task-<id>/gemini` in the pane: Gemini CLI then keeps everything it
would keep in `~/.gemini` in `<that>/.gemini` (its chats, project registry, state), so two tasks never share
a session and an agent sandboxed with a read-only home can still write its files. That folder holds:

- `settings.json`: the person's `~/.gemini/settings.json` with, on top, cockpit's hooks for this task and the
  cockpit MCP server (trusted: its tools need no confirmation). Hooks: AfterAgent -> `turn-ended` (its
  payload has the turn's text, `prompt_response`, and `transcript_path`, which gives the usage),
  Notification (a tool confirmation, at once) -> `needs-input`, BeforeAgent and AfterTool -> `resolved`.
  Gemini CLI 0.61 runs hooks from the user's (and the workspace's) settings only, and only in a trusted
  folder; a system settings file (GEMINI_CLI_SYSTEM_SETTINGS_PATH) is skipped unless root owns it and every
  folder above it;
- every other file of the person's `~/.gemini` (the login above all: `oauth_creds.json`,
  `google_accounts.json`, `.env`, `GEMINI.md`, extensions) as a symbolic link, never a copy; the person's
  `trustedFolders.json` is copied (a trust given in the task stays in the task).

Trust: where the person trusts the repo root, the pane gets `GEMINI_CLI_TRUST_WORKSPACE=true` (the worktree
is trusted as its repo is); otherwise "Do you trust the files in this folder?" shows and is flagged by its
screen pattern. Nothing is written into the worktree or the person's files. Gemini CLI hides the person's
global git config from its shell commands, so the pane also gets the repo's author and committer identity
(`GIT_AUTHOR_NAME`...). Usage: the session transcript's per-message `tokens`.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
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
from cockpit.core.errors import ConfigError

# The task's hooks: (event, name, cockpit hook arguments). A Gemini CLI hook must print JSON only.
HOOKS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("AfterAgent", "cockpit-turn", ("turn-ended", "--stdin", "--event", "AfterAgent")),
    ("Notification", "cockpit-ask", ("needs-input", "--stdin", "--event", "Notification")),
    ("BeforeAgent", "cockpit-resolved", ("resolved",)),
    ("AfterTool", "cockpit-tool", ("resolved",)),
)
# What Gemini CLI writes into its home per session: the task's own, never the person's.
OWN = frozenset({"settings.json", "trustedFolders.json", "tmp", "history", "projects.json", "state.json"})
# Comments are allowed in Gemini CLI's settings files (it strips them); strings are kept as they are.
COMMENT = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)


def person_gemini_dir(setup: Setup) -> Path:
    configured = os.environ.get("GEMINI_CLI_HOME")
    return (Path(configured) if configured else person_home(setup)) / ".gemini"


def task_home(setup: Setup) -> Path:
    """The task's GEMINI_CLI_HOME (Gemini CLI keeps its files in `<it>/.gemini`)."""
    assert setup.home is not None
    return setup.home / "gemini"


def read_settings(path: Path) -> dict[str, Any]:
    """The person's settings.json (comments allowed, as Gemini CLI allows them); {} when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc}); fix it, then retry the task") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(COMMENT.sub(lambda m: m.group(0) if m.group(0).startswith('"') else "", text))
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix it, then retry the task") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; fix it, then retry the task")
    return data


def table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def hook_command(setup: Setup, args: tuple[str, ...]) -> str:
    return f"{hook_line(setup, *args)} >/dev/null 2>&1; echo '{{}}'"


def task_settings(setup: Setup, person: dict[str, Any]) -> dict[str, Any]:
    """The person's settings with the task's hooks and the cockpit MCP server (trusted) on top."""
    data = copy.deepcopy(person)
    hooks = table(data, "hooks")
    ours = {name for _, name, _ in HOOKS}
    for event, name, args in HOOKS:
        theirs = hooks.get(event)
        groups = [g for g in (theirs if isinstance(theirs, list) else []) if isinstance(g, dict) and not any(
            isinstance(h, dict) and h.get("name") in ours for h in g.get("hooks", []))]
        mine = {"name": name, "type": "command", "command": hook_command(setup, args)}
        hooks[event] = [*groups, {"matcher": "*", "hooks": [mine]}]
    data["hooks"] = hooks
    data["hooksConfig"] = {**table(data, "hooksConfig"), "enabled": True}
    data["mcpServers"] = {**table(data, "mcpServers"), "cockpit": {**mcp_server(setup), "trust": True}}
    return data


def link_person_files(source: Path, target: Path) -> None:
    """Link the person's Gemini CLI files (the login above all) into the task's; never copy credentials."""
    if not source.is_dir() or source.resolve() == target.resolve():
        return
    for entry in source.iterdir():
        if (entry.name in OWN or entry.name.startswith(".")) and entry.name != ".env":
            continue  # the task's own files, and temporary dot-files
        link = target / entry.name
        if link.is_symlink() or link.exists():
            continue
        link.symlink_to(entry)


def prepare_home(setup: Setup) -> Path:
    """Write the task's GEMINI_CLI_HOME; returns it. Blocks."""
    home = task_home(setup)
    own = home / ".gemini"
    own.mkdir(parents=True, exist_ok=True)
    source = person_gemini_dir(setup)
    write_json(own / "settings.json", task_settings(setup, read_settings(source / "settings.json")))
    folders = source / "trustedFolders.json"
    if folders.is_file() and not (own / "trustedFolders.json").exists():
        shutil.copyfile(folders, own / "trustedFolders.json")
    link_person_files(source, own)
    agents = source.parent / ".agents"  # the person's skills and agents, beside ~/.gemini
    if agents.is_dir() and not (home / ".agents").exists():
        (home / ".agents").symlink_to(agents)
    return home


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

    def command(self, setup: Setup) -> list[str]:
        return prompt_argv(self.name, ["gemini", "-i"], setup.prompt_file)

    def prepare(self, setup: Setup) -> dict[str, str]:
        assert setup.repo_root is not None
        env = {"GEMINI_CLI_HOME": str(prepare_home(setup).absolute()), **git_identity(setup.repo_root)}
        folders = os.environ.get("GEMINI_CLI_TRUSTED_FOLDERS_PATH")
        trusted = Path(folders) if folders else person_gemini_dir(setup) / "trustedFolders.json"
        if repo_trusted(trusted, setup.repo_root):
            env["GEMINI_CLI_TRUST_WORKSPACE"] = "true"  # the worktree, trusted as its repo is
        return env

    def usage(self, setup: Setup, hint: dict[str, object], log_text: str) -> Usage | None:
        path = hint.get("transcript_path")
        return transcript_usage(Path(path)) if isinstance(path, str) and path else None
