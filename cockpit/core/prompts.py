"""The prompts an agent starts with: the task itself, and a fix attempt after failed gates.

Both are Markdown written to a file (`.cockpit/prompts/...`) that the agent command reads (see `agents.py`).
They state the task, its plan, the gates cockpit will run itself, and the rules of the worktree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from cockpit.core.models import GateResult, GateSpec, PlanStep, Task

MAX_PROMPT_LINE = 500
# Unquoted: $COCKPIT_HOOK is a command line ("sh /path/hook.sh"), split by the shell.
DONE_COMMAND = "$COCKPIT_HOOK done"
DONE_RULES = [
    "- When the work is done and committed, report it: run `" + DONE_COMMAND + "` in a shell (add "
    "`--message \"what you did\"` if you like), or call the cockpit MCP tool `report_done`. Then stop and "
    "wait: cockpit runs the gates, and a reviewer may ask for changes in this same conversation. Do not "
    "report done before your work is committed.",
]


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks inside `text`."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _step_line(step: PlanStep) -> str:
    if step.verb == "delegate":
        peer = step.peer or "a peer repository"
        return (
            f"{step.n}. [delegate to {peer}] {step.description} "
            "(cockpit sends this to that repository; do not do it here)"
        )
    after = f" (after step {', '.join(str(d) for d in step.depends_on)})" if step.depends_on else ""
    return f"{step.n}. [{step.verb}] {step.description}{after}"


def _gate_lines(gates: Sequence[GateSpec]) -> list[str]:
    lines = [
        "- has-commits: your branch must have at least one commit beyond where it started.",
        "- clean-tree: nothing may be left uncommitted; untracked files count.",
        "- tdd: if the repository has tests, changes to source files must come with changes to test files.",
    ]
    for gate in gates:
        lines.append(f"- {gate.name}: `{gate.command}` must exit 0 within {gate.timeout_s:g}s.")
    return lines


def _approval(by: str | None) -> str:
    """Who approved the plan, said plainly: an automatic approval is not a person's."""
    if by == "person":
        return "approved by a person"
    if by and by.startswith("auto:"):
        return f"approved automatically as a small task ({by}); no person reviewed it"
    if by and by.startswith("remote:"):
        return f"approved by the peer repo {by.removeprefix('remote:')}; no person reviewed it here"
    return f"approved by {by}" if by else "not yet approved"


def _task_section(task: Task) -> list[str]:
    lines = [f"# Task {task.id}: {task.title}", "", task.description.strip() or "(no description)", ""]
    if task.answers and task.questions:
        lines += ["## Clarifications", ""]
        for question, answer in zip(task.questions, task.answers, strict=False):
            lines += [f"- Q: {question}", f"  A: {answer}"]
        lines.append("")
    if task.plan:
        lines += [f"## Plan ({_approval(task.approved_by)})", ""]
        lines += [_step_line(step) for step in sorted(task.plan, key=lambda s: s.n)]
        lines.append("")
    return lines


def _where_you_are(repo_name: str, worktree: Path, target_branch: str, branch: str | None) -> list[str]:
    lines = [
        "## Where you are",
        "",
        f"Repository `{repo_name}`, worktree `{worktree}`; the target branch is `{target_branch}`.",
        "",
    ]
    return lines + _rules(worktree, target_branch, branch)


def _rules(worktree: Path, target_branch: str, branch: str | None) -> list[str]:
    on_branch = f" on branch `{branch}`" if branch else ""
    return [
        "## Rules",
        "",
        f"- Work only in this git worktree: `{worktree}`{on_branch}. Do not read from or write to other "
        "checkouts, other repositories or the main working copy.",
        "- Commit your work on the current branch as you go (`git add -A && git commit -m ...`), and leave "
        "nothing uncommitted when you finish.",
        f"- Never merge, never push, never switch or create branches, never rewrite history, and never touch "
        f"`{target_branch}`: a person reviews your commits and cockpit merges them.",
        "- Write or update tests with your change and run them before you finish.",
        "- If you need a decision from a person, ask it plainly and wait for the answer.",
        *DONE_RULES,
        "",
    ]


def render_prompt(
    task: Task, gates: Sequence[GateSpec], *, repo_name: str, worktree: Path, target_branch: str
) -> str:
    """The prompt for a task's first run: the task, its plan, the gates that will run, and the rules."""
    lines = _task_section(task)
    lines += [
        "## Where you are",
        "",
        f"Repository `{repo_name}`, worktree `{worktree}`. Your commits will be reviewed and merged into "
        f"`{target_branch}` by a person, through cockpit.",
        "",
        "## Gates",
        "",
        "When you finish, cockpit runs these checks itself in this worktree. The work is only accepted when "
        "all of them pass:",
        "",
        *_gate_lines(gates),
        "",
    ]
    lines += _rules(worktree, target_branch, task.branch)
    return "\n".join(lines)


def render_rework_prompt(
    task: Task, message: str, *, repo_name: str, worktree: Path, target_branch: str
) -> str:
    """A reviewer's request for changes, for an agent that continues (or restarts) in the same worktree."""
    lines = [
        f"# Changes requested for task {task.id}: {task.title}",
        "",
        "A person reviewed your commits and asks for these changes:",
        "",
        *[f"> {line}" if line.strip() else ">" for line in message.strip().splitlines()],
        "",
        "Make them in this worktree, commit them, and report done again.",
        "",
        "## The original task",
        "",
    ]
    lines += [("#" + line) if line.startswith("#") else line for line in _task_section(task)]
    lines += _where_you_are(repo_name, worktree, target_branch, task.branch)
    return "\n".join(lines)


def typed_request(kind: str, prompt_file: Path, message: str = "") -> str:
    """The one line typed into a live agent session: short words inline, the details in the prompt file."""
    done = f"Commit your work, then report done again (`{DONE_COMMAND}` or the `report_done` tool)."
    if kind == "fix":
        return (
            f"Cockpit's gates failed on your work. Read {prompt_file} (the failures and what to do) and fix "
            f"it. {done}"
        )
    one_line = " ".join(message.split())
    if one_line and "\n" not in message.strip() and len(one_line) <= 300:
        return f"A reviewer asks for changes: {one_line} (details: {prompt_file}). {done}"
    return f"A reviewer asks for changes: read {prompt_file}. {done}"


def _tail_block(result: GateResult) -> list[str]:
    limit = MAX_PROMPT_LINE
    tail = [line if len(line) <= limit else line[: limit - 1] + "…" for line in result.log_tail]
    if not tail:
        return ["(no output)"]
    body = "\n".join(tail)
    fence = _fence(body)
    return [fence, body, fence]


def render_fix_prompt(
    task: Task,
    failed: Sequence[GateResult],
    gates: Sequence[GateSpec],
    *,
    repo_name: str,
    worktree: Path,
    target_branch: str,
) -> str:
    """The prompt for a fix attempt: the gates that failed with their log tails, then the original task."""
    names = ", ".join(r.name for r in failed) or "(none recorded)"
    lines = [
        f"# Fix attempt for task {task.id}: {task.title}",
        "",
        f"The work in this worktree did not pass cockpit's gates. Failed: {names}.",
        "",
        "Do not trust the earlier self-report that the work was done: read the failures below, reproduce "
        "them, find the root cause and fix it. Do not weaken, skip or delete tests or checks to make them "
        "pass. "
        "Commit the fix; the gates run again when you finish.",
        "",
        "## Failed gates",
        "",
    ]
    commands = {g.name: g.command for g in gates}
    for result in failed:
        code = result.exit_code
        reason = result.reason or (f"exit code {code}" if code is not None else "failed")
        command = commands.get(result.name)
        how = f" (`{command}`)" if command else ""
        lines += [f"### {result.name}{how}: {reason}", "", "Last lines of its output:", ""]
        lines += _tail_block(result)
        lines.append("")
    lines += ["## All gates", "", *_gate_lines(gates), "", "## The original task", ""]
    original = _task_section(task)
    # Demote the original task's headings one level so they sit under "The original task".
    lines += [("#" + line) if line.startswith("#") else line for line in original]
    lines += _where_you_are(repo_name, worktree, target_branch, task.branch)
    return "\n".join(lines)
