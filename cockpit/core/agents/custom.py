"""The custom backend: `[agent] command`, a template run with `bash -c`.

LINE is the template with `{prompt_file}`, `{worktree}` and `{task_id}` replaced by their shell-quoted values
(write the placeholders bare, not inside quotes). Its first word (after any `VAR=value` assignments and
`exec`/`command`) must be an installed command. The agent is done when it exits 0, or when it reports done
itself (`$COCKPIT_HOOK done`).
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

from cockpit.core.agents.base import Agent, Setup, missing
from cockpit.core.errors import ConfigError

PLACEHOLDERS: tuple[str, ...] = ("prompt_file", "worktree", "task_id")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def first_command(line: str) -> str | None:
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


class Custom(Agent):
    name = "custom"
    executable = None

    @property
    def patterns(self) -> str:
        return "generic"

    def line(self, setup: Setup) -> str:
        return custom_command_line(
            setup.custom_command,
            prompt_file=setup.prompt_file.absolute(),
            worktree=setup.worktree.absolute(),
            task_id=setup.task_id,
        )

    def require(self, setup: Setup) -> None:
        first = first_command(self.line(setup))
        if first is None:
            raise ConfigError(f"[agent] command {setup.custom_command!r} names no command to run")
        if shutil.which(first) is None:
            raise missing(self.name, first, "command")

    def command(self, setup: Setup) -> list[str]:
        return ["bash", "-c", self.line(setup)]
