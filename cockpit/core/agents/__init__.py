"""Agent adapters: one module per agent behind one small interface (`base.Agent`).

`ADAPTERS` names them; `[agent] backend` picks one (a task created with a script always runs `script`). Adding
an agent is adding a module with an `Agent` subclass and its line here. `agent_command` is the command line
alone (no per-task preparation); the daemon calls `adapter(name).launch(setup)` with a full `Setup`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cockpit.core.agents.aider import Aider
from cockpit.core.agents.base import (
    SUBMIT_STYLES,
    Agent,
    AgentCommand,
    Setup,
    SubmitStyle,
    Usage,
    prompt_wrapper,
)
from cockpit.core.agents.claude import Claude
from cockpit.core.agents.codex import Codex
from cockpit.core.agents.custom import PLACEHOLDERS, Custom, custom_command_line
from cockpit.core.agents.gemini import Gemini
from cockpit.core.agents.script import Script
from cockpit.core.errors import ConfigError

__all__ = [
    "ADAPTERS",
    "BACKENDS",
    "PLACEHOLDERS",
    "SUBMIT_STYLES",
    "Agent",
    "AgentCommand",
    "Setup",
    "SubmitStyle",
    "Usage",
    "adapter",
    "agent_command",
    "custom_command_line",
    "prompt_wrapper",
]

ADAPTERS: dict[str, Agent] = {
    agent.name: agent for agent in (Claude(), Codex(), Aider(), Gemini(), Script(), Custom())
}
BACKENDS: tuple[str, ...] = tuple(ADAPTERS)


def adapter(backend: str) -> Agent:
    try:
        return ADAPTERS[backend]
    except KeyError:
        names = ", ".join(BACKENDS)
        raise ConfigError(f"unknown agent backend {backend!r}: expected one of {names}") from None


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
    """The command that runs `backend` for a task, with nothing prepared (no per-task home).

    Raises CockpitError(code="agent_missing") when the agent is not installed, ConfigError for an unknown
    backend or a bad custom command.
    """
    setup = Setup(
        task_id=task_id,
        worktree=worktree,
        prompt_file=prompt_file,
        signals_dir=signals_dir,
        python=python,
        custom_command=custom_command,
        script_file=script_file,
        plan_file=plan_file,
        fix=fix,
    )
    return adapter(backend).launch(setup)
