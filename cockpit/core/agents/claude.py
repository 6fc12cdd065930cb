"""Claude Code: its interactive REPL started with the task's prompt, hooks and MCP server wired per task.

Command line (PROMPT is the prompt file; SETTINGS and MCP are per-task files in
`.cockpit/agents/task-<id>/`)::

    bash -c 'p=$(cat -- "$1") || exit 66; exec claude --settings SETTINGS --mcp-config MCP "$p"' \\
        cockpit-claude PROMPT

- `--settings` adds the task's hooks to whatever the person's own settings say: Stop -> `turn-ended` (with the
  payload: the last assistant message and `transcript_path`, which gives the usage), PermissionRequest and
  Notification -> `needs-input` (Notification fires seconds after a dialog if at all; the screen patterns stay
  the fast path),
  UserPromptSubmit and PostToolUse -> `resolved`, SessionEnd -> a last usage read. It also allows the cockpit
  MCP server's tools, the done hook and `git add|commit|status|diff|log`, so finishing needs no dialog.
  `--permission-mode default`: 2.1's "auto mode" would ask a model about every tool call instead.
- `--mcp-config` starts `cockpit mcp` for this repo and task (no tracked `.mcp.json`).
- Trust: the worktree is a sub-folder of the repo root (`.cockpit/worktrees/...`); where the person has
  accepted the repo root in `~/.claude.json`, the worktree gets the same acceptance before start. A trust
  dialog that shows anyway is flagged by its screen pattern.
- Under the sandbox the person's home is read-only, and Claude Code keeps its state there (`~/.claude.json`,
  transcripts in `~/.claude/projects/`): without writing them it writes no transcript (so no usage) and shows
  a notice dialog at every end of turn. So a sandboxed run gets a config folder of its own,
  `CLAUDE_CONFIG_DIR=HOME/claude/` in the task's home: a copy of the person's `.claude.json` (made once per
  task) and links to their settings, memory, agents, commands, skills, plugins and credentials (read-only
  inside). Unsandboxed, Claude Code uses the person's own config as always.
- Usage: the transcript (JSON lines; each assistant message carries `usage`), summed per message id.
"""

from __future__ import annotations

import json
import os
import tempfile
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
from cockpit.core.mcp_config import claude_tool_names


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file, then rename), mode 0600: it may name the person's paths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


ALLOWED = (
    "mcp__cockpit",
    "Bash($COCKPIT_HOOK done:*)",
    'Bash("$COCKPIT_HOOK" done:*)',
    "Bash(git add:*)",
    "Bash(git commit:*)",
    "Bash(git status:*)",
    "Bash(git diff:*)",
    "Bash(git log:*)",
)


# What a per-task config folder links from the person's: their configuration, never Claude Code's state.
LINKED = (
    "settings.json",
    "CLAUDE.md",
    "agents",
    "commands",
    "skills",
    "output-styles",
    "plugins",
    "keybindings.json",
    ".credentials.json",
)


def hooks_settings(setup: Setup) -> dict[str, Any]:
    def entry(command: str, matcher: str | None = None) -> dict[str, Any]:
        item: dict[str, Any] = {"hooks": [{"type": "command", "command": command}]}
        if matcher is not None:
            item["matcher"] = matcher
        return item

    return {
        "hooks": {
            "Stop": [entry(hook_line(setup, "turn-ended", "--stdin", "--event", "Stop"))],
            # PermissionRequest fires the moment a dialog shows; Notification only seconds later, if at all.
            "PermissionRequest": [
                entry(hook_line(setup, "needs-input", "--stdin", "--event", "PermissionRequest"), "*")
            ],
            "Notification": [entry(hook_line(setup, "needs-input", "--stdin", "--event", "Notification"))],
            "UserPromptSubmit": [entry(hook_line(setup, "resolved"))],
            "PostToolUse": [entry(hook_line(setup, "resolved"), "*")],
            "SessionEnd": [entry(hook_line(setup, "turn-ended", "--stdin", "--event", "SessionEnd"))],
        },
        # The cockpit tools, the done report and the commits the prompt asks for need no dialog.
        "permissions": {"allow": [*ALLOWED, *claude_tool_names()]},
    }


def trust_worktree(config: Path, repo_root: Path, worktree: Path) -> bool:
    """Give the worktree the trust the person gave the repo root in ~/.claude.json; True if written."""
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    projects = data.get("projects") if isinstance(data, dict) else None
    if not isinstance(projects, dict):
        return False
    root = projects.get(str(repo_root))
    if not isinstance(root, dict) or not root.get("hasTrustDialogAccepted"):
        return False
    entry = projects.get(str(worktree))
    if isinstance(entry, dict) and entry.get("hasTrustDialogAccepted"):
        return False
    projects[str(worktree)] = {
        **(entry if isinstance(entry, dict) else {}),
        "hasTrustDialogAccepted": True,
        "hasCompletedProjectOnboarding": True,
    }
    write_json(config, data)
    return True


def transcript_usage(path: Path) -> Usage | None:
    """Tokens of every assistant message in a Claude Code transcript (the last record per message id)."""
    per_message: dict[str, tuple[int, int]] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                message = record.get("message") if isinstance(record, dict) else None
                if not isinstance(message, dict) or not isinstance(message.get("usage"), dict):
                    continue
                usage = message["usage"]
                tokens_in = sum(
                    int(usage.get(k) or 0)
                    for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
                )
                per_message[str(message.get("id") or n)] = (tokens_in, int(usage.get("output_tokens") or 0))
    except OSError:
        return None
    if not per_message:
        return None
    return Usage(
        input_tokens=sum(i for i, _ in per_message.values()),
        output_tokens=sum(o for _, o in per_message.values()),
        source="transcript",
    )


def person_config(setup: Setup) -> tuple[Path, Path]:
    """(the person's Claude Code config folder, their `.claude.json`), honouring `CLAUDE_CONFIG_DIR`."""
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
    if config_dir:
        return Path(config_dir), Path(config_dir) / ".claude.json"
    home = person_home(setup)
    return home / ".claude", home / ".claude.json"


def seed_config_dir(own: Path, person_dir: Path, person_json: Path) -> Path:
    """Make the per-task config folder `own` from the person's; returns its `.claude.json`. Blocks.

    The `.claude.json` copy is made once per task (Claude Code then keeps this task's state in it); what the
    person configured is linked, so it stays theirs (and read-only to a sandboxed agent).
    """
    own.mkdir(parents=True, exist_ok=True)
    own.chmod(0o700)
    config = own / ".claude.json"
    if not config.exists():
        try:
            data = json.loads(person_json.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        write_json(config, data if isinstance(data, dict) else {})
    for name in LINKED:
        source, link = person_dir / name, own / name
        if source.exists() and not os.path.lexists(link):
            link.symlink_to(source)
    return config


class Claude(Agent):
    name = "claude"
    executable = "claude"
    interactive = True
    turn_hooks = True
    submit: ClassVar[SubmitStyle] = "pause"
    exit_text = "/exit"
    speech_marks = ("●", "⏺")
    composer = "❯"
    furniture = (r"manual mode on", r"auto mode on", r"^✻ ", r"Resume this session with")

    def files(self, setup: Setup) -> tuple[Path, Path]:
        assert setup.home is not None
        return setup.home / "claude-settings.json", setup.home / "claude-mcp.json"

    def command(self, setup: Setup) -> list[str]:
        argv = ["claude"]
        if setup.prepared:
            settings, mcp = self.files(setup)
            # Claude Code 2.1 defaults to "auto mode" (a model classifier per tool call, and a notice dialog
            # on other endpoints); the default mode asks in the pane, where cockpit flags the dialog.
            argv += ["--settings", str(settings), "--mcp-config", str(mcp), "--permission-mode", "default"]
        return prompt_argv(self.name, argv, setup.prompt_file)

    def prepare(self, setup: Setup) -> dict[str, str]:
        assert setup.repo_root is not None and setup.home is not None
        settings, mcp = self.files(setup)
        write_json(settings, hooks_settings(setup))
        write_json(mcp, {"mcpServers": {"cockpit": mcp_server(setup)}})
        person_dir, config = person_config(setup)
        env: dict[str, str] = {}
        if setup.sandbox != "none":
            own = setup.home / "claude"
            config = seed_config_dir(own, person_dir, config)
            env["CLAUDE_CONFIG_DIR"] = str(own)
        trust_worktree(config, setup.repo_root, setup.worktree.absolute())
        return env

    def usage(self, setup: Setup, hint: dict[str, object], log_text: str) -> Usage | None:
        path = hint.get("transcript_path")
        return transcript_usage(Path(path)) if isinstance(path, str) and path else None
