"""The agent adapter interface: what cockpit needs to know to run one kind of coding agent in a pane.

An adapter is a small object (one module per agent, listed in `cockpit.core.agents.ADAPTERS`) that says:

- `command(setup)`: the argv that runs the agent in the task's pane (the prompt is always a file);
- `prepare(setup)`: what to write before start (trust, onboarding, hooks, the cockpit MCP server, a per-task
  home) and the extra environment of the pane; it blocks (files), so the daemon calls it in a thread;
- how its end of turn and its questions are signalled: `turn_hooks` (it reports the end of each turn through
  `cockpit hook turn-ended`) and `patterns` (the needs-input screen patterns, `cockpit.core.needs_input`);
- `interactive`: it stays open after its work (so an end of turn without a done report means it waits for a
  person) instead of exiting by itself (exit 0 is then done);
- `submit`: how typed text is submitted ("enter": text and Enter at once; "pause": text, a short pause, then
  Enter, for composers that drop an Enter that arrives with the text; "paste": a bracketed paste, then Enter);
- `exit_text`: what to type to end it gracefully (None: Ctrl-D); `composer`: the mark of its input line, to
  check that typed text was submitted (its input line no longer holds it);
- `usage(setup, hint)`: its token usage so far in this run, from its own files (the hint is the data of the
  hook signal that triggered the read: a transcript path, for instance);
- `progress(screen)`: the agent's own words on a captured screen, not its status bar;
- `marker(setup)`: an environment entry that marks this task's processes outside the pane (Codex's
  background server), so a stop can end them too.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from cockpit.core.errors import CockpitError

SubmitStyle = Literal["enter", "pause", "paste"]
SUBMIT_STYLES: tuple[str, ...] = ("enter", "pause", "paste")


@dataclass(frozen=True)
class Setup:
    """Everything an adapter may use to build and prepare one run of a task's agent."""

    task_id: int
    worktree: Path
    prompt_file: Path
    repo_root: Path | None = None  # the main checkout (None: a bare command line, nothing prepared)
    home: Path | None = None  # the task's own folder for agent files: .cockpit/agents/task-<id>/
    signals_dir: Path | None = None
    git_dir: Path | None = None  # the main repo's git directory: a worktree's commits write there
    hook: str = ""  # the fast hook command line (`sh .../hook.sh`), as $COCKPIT_HOOK
    python: str = sys.executable
    custom_command: str = ""
    script_file: Path | None = None
    plan_file: Path | None = None
    fix: bool = False
    person_home: Path | None = None  # the person's home (for their agent config and auth); None: $HOME
    sandbox: str = "none"  # the sandbox the run gets ("bwrap": the person's home is read-only inside)

    @property
    def prepared(self) -> bool:
        return self.home is not None and self.repo_root is not None


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cost_usd: float | None = None
    source: str = ""

    def to_json(self, run: int) -> dict[str, object]:
        return {
            "run": run,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "source": self.source,
        }


@dataclass(frozen=True)
class AgentCommand:
    backend: str
    argv: list[str]
    shell: str  # the single command line for the tmux pane: shlex.join(argv), whatever the user's shell
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the pane (a per-task home)


# Lines of the agents' full-screen UIs that say nothing about the work: hints, footers, boxes, spinners.
FURNITURE: tuple[str, ...] = (
    r"\?\s+for shortcuts",
    r"←\s+for agents",
    r"^[\s│|╭╮╰╯─━═┌┐└┘├┤┬┴┼▔▁]*$",
    r"(esc|ctrl\+c) to (interrupt|cancel)",
    r"^\s*[>❯›]\s*$",
    r"^\s*[>❯›]\s+(Try|Type|Ask|Write|Implement|Find)\b",
    r"(bypass|accept edits|plan mode|auto-accept).*(on|off)\b",
    r"shift\+tab to",
    r"context left|tokens? (used|left)|% context",
    r"^\s*(Using:|YOLO|no sandbox|sandbox|~/|/)\S*.*\b(model|sandbox|context)\b",
    r"Type your message",
    r"send\s+.*newline",
    r"⏎\s+send",
    r"^\s*\d+(\.\d+)?[kKmM]?\s+tokens?\b",
)


class Agent:
    """Defaults shared by the adapters; each agent module overrides what differs."""

    name: ClassVar[str] = ""
    executable: ClassVar[str | None] = None
    interactive: ClassVar[bool] = False
    turn_hooks: ClassVar[bool] = False
    reads_log: ClassVar[bool] = False  # its usage is read from its pane output (`usage` gets the text)
    submit: ClassVar[SubmitStyle] = "enter"
    exit_text: ClassVar[str | None] = None
    # The mark at the start of the agent's input line: typed text still behind it was not submitted.
    composer: ClassVar[str | None] = None
    # Lines starting with one of these are the agent speaking or acting (preferred for progress).
    speech_marks: ClassVar[tuple[str, ...]] = ()
    furniture: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self._furniture = [re.compile(p, re.IGNORECASE) for p in (*FURNITURE, *self.furniture)]

    @property
    def patterns(self) -> str:
        """The group of built-in needs-input screen patterns this agent uses."""
        return self.name

    def require(self, setup: Setup) -> None:
        """Raise CockpitError(code="agent_missing") when the agent is not installed."""
        if self.executable is not None:
            require(self.name, self.executable)

    def command(self, setup: Setup) -> list[str]:
        raise NotImplementedError

    def prepare(self, setup: Setup) -> dict[str, str]:
        """Write what the agent needs before it starts; return extra environment for its pane. Blocks."""
        return {}

    def launch(self, setup: Setup) -> AgentCommand:
        """The checked command, with the per-task preparation done when `setup` names a home. Blocks."""
        self.require(setup)
        env = self.prepare(setup) if setup.prepared else {}
        argv = self.command(setup)
        return AgentCommand(self.name, argv, shlex.join(argv), env)

    def usage(self, setup: Setup, hint: dict[str, object], log_text: str) -> Usage | None:
        """Token usage of this run so far; `log_text` is the run's part of the pane log."""
        return None

    def marker(self, setup: Setup) -> tuple[str, str] | None:
        return None

    def is_furniture(self, line: str) -> bool:
        return any(p.search(line) for p in self._furniture)

    def progress(self, screen: Sequence[str]) -> str | None:
        """The agent's latest own words on the screen (its last message or tool action), else None."""
        lines = [line.strip() for line in screen if line.strip()]
        if self.speech_marks:
            for line in reversed(lines):
                if line.startswith(self.speech_marks) and not self.is_furniture(line):
                    return line.lstrip("".join(self.speech_marks)).strip() or None
        for line in reversed(lines):
            if not self.is_furniture(line):
                return line
        return None


def missing(backend: str, exe: str, setting: str) -> CockpitError:
    return CockpitError(
        f"agent backend {backend!r} is not installed: `{exe}` was not found on PATH; "
        f"install it or set [agent] {setting}",
        code="agent_missing",
    )


def require(backend: str, exe: str, setting: str = "backend") -> None:
    if shutil.which(exe) is None:
        raise missing(backend, exe, setting)


def prompt_wrapper(agent_argv: list[str]) -> str:
    """The `bash -c` script that reads the prompt file ($1) and execs the agent with its text as argument."""
    return f'p=$(cat -- "$1") || exit 66; exec {shlex.join(agent_argv)} "$p"'


def prompt_argv(name: str, agent_argv: list[str], prompt_file: Path) -> list[str]:
    """Run `agent_argv PROMPT-TEXT` through the wrapper, so the prompt never travels through tmux."""
    return ["bash", "-c", prompt_wrapper(agent_argv), f"cockpit-{name}", str(prompt_file.absolute())]


def mcp_server(setup: Setup) -> dict[str, object]:
    """How an agent starts the task's cockpit MCP server (`cockpit mcp`, scoped to this repo and task)."""
    from cockpit.core.mcp_config import task_server_entry

    assert setup.repo_root is not None
    return task_server_entry(setup.repo_root, setup.task_id, python=setup.python).to_json()


def hook_line(setup: Setup, verb: str, *extra: str) -> str:
    """A hook command for the agent's config: the fast hook with the task named on its command line."""
    hook = setup.hook or shlex.join([setup.python, "-m", "cockpit.hook"])
    return " ".join([hook, verb, *(shlex.quote(x) for x in extra)])


def person_home(setup: Setup) -> Path:
    return setup.person_home or Path.home()
