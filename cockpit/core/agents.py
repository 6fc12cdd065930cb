"""Agent backends: the command line that runs a task's agent in its tmux pane.

The pane starts in the task's worktree (the tmux layer sets its start directory); `AgentCommand.shell` is the
one command line to give tmux and `argv` the same command as a list. The prompt is always a file (see
`prompts.py`): a prompt can be long and full of quotes, so it never travels through tmux's command line. For
the agents that take the prompt as an argument, a small `bash -c` wrapper reads the file and `exec`s the agent
with its text as one argument (exit 66 if the file cannot be read), so the agent owns the pane and stays
interactive: a person can attach, watch, and answer its questions, and the needs-input detector sees its
prompts.

The exact command lines (PROMPT is the absolute prompt file, PYTHON the interpreter running cockpit):

- claude::

      bash -c 'p=$(cat -- "$1") || exit 66; exec claude "$p"' cockpit-claude PROMPT

  Claude Code's interactive REPL started with an initial prompt (`claude "query"`). Permission prompts stay
  on (no `--dangerously-skip-permissions`): the person answers them in the pane. The REPL stays open when the
  work is done; the person (or the agent, told so by the prompt) ends it.
- codex::

      bash -c 'p=$(cat -- "$1") || exit 66; exec codex "$p"' cockpit-codex PROMPT

  Codex's interactive TUI with an initial prompt (`codex "prompt"`) and its default approval policy, so
  command approvals show in the pane. (`codex exec` would be headless: nothing to attach to.)
- aider::

      aider --message-file PROMPT

  aider sends the file's text as one message, applies the edits, auto-commits and exits. `--yes-always` is
  not given: its confirmations ("Add file to the chat? (Y)es/(N)o ...") stay visible for the person to
  answer, and the needs-input detector flags them. For unattended runs use the custom backend with
  `aider --yes-always --message-file {prompt_file}`.
- gemini::

      bash -c 'p=$(cat -- "$1") || exit 66; exec gemini -i "$p"' cockpit-gemini PROMPT

  `-i/--prompt-interactive` runs the prompt and continues interactively; tool confirmations stay on.
- script::

      PYTHON -m cockpit.core.script_agent --task-id N [--script S] [--signals D] [--plan-file P] [--fix]

  the deterministic script agent (`script_agent.py`); with no script it commits the plan.
- custom::

      bash -c LINE

  LINE is the `[agent] command` template with `{prompt_file}`, `{worktree}` and `{task_id}` replaced by their
  shell-quoted values (write the placeholders bare, not inside quotes). Its first word (after any
  `VAR=value` assignments and `exec`/`command`) must be an installed command.

A fix attempt gets the same command with the fix prompt in PROMPT; only the script backend takes `--fix`.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from cockpit.core.errors import CockpitError, ConfigError

BACKENDS: tuple[str, ...] = ("claude", "codex", "aider", "gemini", "script", "custom")
PLACEHOLDERS: tuple[str, ...] = ("prompt_file", "worktree", "task_id")

# Agents that take the prompt text as an argument: the executable and the flags before the prompt.
_PROMPT_ARG: dict[str, list[str]] = {
    "claude": ["claude"],
    "codex": ["codex"],
    "gemini": ["gemini", "-i"],
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class AgentCommand:
    backend: str
    argv: list[str]
    shell: str  # the single command line for the tmux pane: shlex.join(argv), whatever the user's shell


def _missing(backend: str, exe: str, setting: str) -> CockpitError:
    return CockpitError(
        f"agent backend {backend!r} is not installed: `{exe}` was not found on PATH; "
        f"install it or set [agent] {setting}",
        code="agent_missing",
    )


def _require(backend: str, exe: str, setting: str = "backend") -> None:
    if shutil.which(exe) is None:
        raise _missing(backend, exe, setting)


def prompt_wrapper(agent_argv: list[str]) -> str:
    """The `bash -c` script that reads the prompt file ($1) and execs the agent with its text as argument."""
    return f'p=$(cat -- "$1") || exit 66; exec {shlex.join(agent_argv)} "$p"'


def _first_command(line: str) -> str | None:
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise ConfigError(f"[agent] command is not a valid shell command line: {exc}") from None
    for word in words:
        if _ASSIGNMENT.match(word) or word in ("exec", "command"):
            continue
        return word
    return None


def custom_command_line(template: str, *, prompt_file: Path, worktree: Path, task_id: int) -> str:
    """The custom template with its placeholders replaced by shell-quoted values."""
    if not template.strip():
        raise ConfigError(
            '[agent] command is empty: backend = "custom" needs a command line, e.g. '
            '"my-agent --prompt {prompt_file}" (placeholders: {prompt_file} {worktree} {task_id})'
        )
    unknown = sorted({name for name in _PLACEHOLDER.findall(template) if name not in PLACEHOLDERS})
    if unknown:
        raise ConfigError(
            f"[agent] command has an unknown placeholder {{{unknown[0]}}}: "
            f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
        )
    values = {"prompt_file": str(prompt_file), "worktree": str(worktree), "task_id": str(task_id)}
    return _PLACEHOLDER.sub(lambda m: shlex.quote(values[m.group(1)]), template)


def agent_command(
    backend: str,
    *,
    prompt_file: Path,
    worktree: Path,
    task_id: int,
    custom_command: str = "",
    script_file: Path | None = None,
    signals_dir: Path | None = None,
    plan_file: Path | None = None,
    fix: bool = False,
    python: str = sys.executable,
) -> AgentCommand:
    """The command that runs `backend` for a task.

    Raises CockpitError(code="agent_missing") when the agent is not installed, ConfigError for an unknown
    backend or a bad custom command.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown agent backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    prompt = prompt_file.absolute()
    argv: list[str]
    if backend in _PROMPT_ARG:
        agent = _PROMPT_ARG[backend]
        _require(backend, agent[0])
        argv = ["bash", "-c", prompt_wrapper(agent), f"cockpit-{backend}", str(prompt)]
        return AgentCommand(backend, argv, shlex.join(argv))
    if backend == "aider":
        _require(backend, "aider")
        argv = ["aider", "--message-file", str(prompt)]
        return AgentCommand(backend, argv, shlex.join(argv))
    if backend == "script":
        if not python or shutil.which(python) is None:
            raise _missing(backend, python or "python", "backend")
        argv = [python, "-m", "cockpit.core.script_agent", "--task-id", str(task_id)]
        if script_file is not None:
            argv += ["--script", str(script_file.absolute())]
        if signals_dir is not None:
            argv += ["--signals", str(signals_dir.absolute())]
        if plan_file is not None:
            argv += ["--plan-file", str(plan_file.absolute())]
        if fix:
            argv.append("--fix")
        return AgentCommand(backend, argv, shlex.join(argv))
    # custom
    line = custom_command_line(
        custom_command, prompt_file=prompt, worktree=worktree.absolute(), task_id=task_id
    )
    first = _first_command(line)
    if first is None:
        raise ConfigError(f"[agent] command {custom_command!r} names no command to run")
    if shutil.which(first) is None:
        raise _missing(backend, first, "command")
    argv = ["bash", "-c", line]
    return AgentCommand(backend, argv, shlex.join(argv))
