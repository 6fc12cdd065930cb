"""What the fake model says: scripts of steps, each one model response.

A script is chosen by a substring of the request (a task's title, say) and is stateless across requests: the
step to answer with is found from the conversation itself, since every response carries a marker
(`ck-step N`) that the agent sends back in its history. So two agents talking to one server at once, a
reworked session that continues its conversation, and an agent that retries a request all get the right step.

Actions are agent-neutral: `Write` and `Commit` become shell commands for the agents with a shell tool, and
whole-file edits (and aider's own auto-commit) for aider; `Done` runs `$COCKPIT_HOOK done`. `Tool` calls one
of an MCP server's tools by its name (for Claude Code, `mcp__SERVER__NAME`, when the request offers it).

A step with `again_if` (a regex) is answered again, same marker, while the result of the tool call it made
matches: "wait, and wait again" for a tool that returns `timed_out`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

MARKER = re.compile(r"ck-step (\d+)")


@dataclass(frozen=True)
class Shell:
    """A shell command; `ask` marks one that needs a person's approval (Codex: it asks for escalation)."""

    command: str
    ask: bool = False


@dataclass(frozen=True)
class Write:
    path: str
    content: str


@dataclass(frozen=True)
class Commit:
    message: str


@dataclass(frozen=True)
class Done:
    message: str = ""


@dataclass(frozen=True)
class Tool:
    """A call of tool `name` of the agent's MCP server `server`, with `args` as its input."""

    server: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)


Action = Shell | Write | Commit | Done | Tool


@dataclass(frozen=True)
class Step:
    """One model response: `say` as text, then the actions as tool calls (none: the turn ends)."""

    say: str = ""
    actions: tuple[Action, ...] = ()
    again_if: str = ""  # answer this step again while its tool call's result matches this regex


@dataclass
class Script:
    match: str
    steps: list[Step] = field(default_factory=list)


def shell_line(action: Shell | Write | Commit | Done) -> str:
    """The shell command an action stands for, for the agents that have a shell tool."""
    if isinstance(action, Shell):
        return action.command
    if isinstance(action, Write):
        return f"printf %s {shlex.quote(action.content)} > {shlex.quote(action.path)}"
    if isinstance(action, Commit):
        return f"git add -A && git commit -q -m {shlex.quote(action.message)}"
    hook = "$COCKPIT_HOOK done"
    return f"{hook} --message {shlex.quote(action.message)}" if action.message else hook


def step_command(step: Step) -> Shell | None:
    """A step's actions as ONE shell command (joined with &&), or None for a step that only speaks.

    One call per response: Codex runs a response's tool calls in parallel, so order holds only this way.
    """
    shell = [a for a in step.actions if not isinstance(a, Tool)]
    if not shell:
        return None
    line = " && ".join(shell_line(a) for a in shell)
    return Shell(line, ask=any(isinstance(a, Shell) and a.ask for a in shell))


def tool_calls(step: Step) -> list[Tool]:
    return [a for a in step.actions if isinstance(a, Tool)]


def next_step_index(body_text: str) -> int:
    """The step that follows the last one this conversation already holds (0 for a new conversation)."""
    seen = [int(n) for n in MARKER.findall(body_text)]
    return max(seen) + 1 if seen else 0


def text_of(step: Step, index: int | None) -> str:
    """The step's text with its marker (none for side answers, which must never look like a step)."""
    if index is None:
        return step.say or "ok"
    lead = f"ck-step {index}."
    return f"{lead} {step.say}" if step.say else lead


IDLE = Step(say="Nothing more to do here.")


class Scripts:
    """The scripts a server answers from; the first whose `match` occurs in the request wins."""

    def __init__(self) -> None:
        self._scripts: list[Script] = []

    def add(self, match: str, steps: list[Step]) -> Script:
        script = Script(match, list(steps))
        self._scripts.append(script)
        return script

    def pick(self, body_text: str, last_result: str = "") -> tuple[Step, int] | None:
        """The step to answer with; `last_result` is the text of the tool results the request ends with."""
        for script in self._scripts:
            if script.match in body_text:
                index = next_step_index(body_text)
                previous = script.steps[index - 1] if 0 < index <= len(script.steps) else None
                if previous is not None and previous.again_if and re.search(previous.again_if, last_result):
                    index -= 1
                step = script.steps[index] if index < len(script.steps) else IDLE
                return step, index
        return None
