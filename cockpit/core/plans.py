"""The human-readable plan of a task: `.cockpit/plans/task-<id>.md`, rewritten on every (re)classification.

The file is for people (and for the agent's prompt); the events and projections stay the source of truth.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cockpit.core.errors import UsageError
from cockpit.core.models import Classification, PlanStep

__all__ = ["plan_path", "render_plan", "write_plan"]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _quote(text: str) -> list[str]:
    lines = text.strip().splitlines() or [""]
    return [f"> {line}".rstrip() for line in lines]


def _step_line(step: PlanStep) -> str:
    target = f" → {step.peer}" if step.verb == "delegate" and step.peer else ""
    line = f"{step.n}. **{step.verb}**{target}: {_one_line(step.description)}"
    if step.depends_on:
        line += f" _(depends on {', '.join(str(d) for d in step.depends_on)})_"
    return line


def render_plan(
    task_id: int, title: str, description: str, c: Classification, *, answers: Sequence[str] = ()
) -> str:
    """The plan as markdown: title, scope, classifier (and why it fell back), reason, steps, Q&A."""
    classifier = c.classifier
    if c.fallback_reason:
        classifier += f" (fallback: {_one_line(c.fallback_reason)})"
    out = [
        f"# Task {task_id}: {_one_line(title) or '(untitled)'}",
        "",
        f"- Scope: **{c.scope}**",
        f"- Classifier: {classifier}",
        f"- Reason: {_one_line(c.reason)}",
        "",
        "## Description",
        "",
        *_quote(description),
        "",
        "## Plan",
        "",
    ]
    if c.plan:
        out += [_step_line(s) for s in c.plan]
    elif c.scope == "reject":
        out.append("_No steps: the task is rejected._")
    elif c.scope == "ambiguous":
        out.append("_No steps yet: the task needs answers to the questions below._")
    else:
        out.append("_No steps._")
    if c.questions:
        out += ["", "## Questions", ""]
        out += [f"{i}. {_one_line(q)}" for i, q in enumerate(c.questions, start=1)]
    if answers:
        out += ["", "## Answers", ""]
        out += [f"{i}. {_one_line(a)}" for i, a in enumerate(answers, start=1)]
    return "\n".join(out) + "\n"


def plan_path(plans_dir: Path, task_id: int) -> Path:
    """Where the plan of `task_id` lives (`plans_dir/task-<id>.md`)."""
    if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id < 1:
        raise UsageError(f"task ids are positive integers, not {task_id!r}")
    return Path(plans_dir) / f"task-{task_id}.md"


def write_plan(plans_dir: Path, task_id: int, text: str) -> Path:
    """Write `text` to `plans_dir/task-<id>.md` atomically (temporary file + os.replace); return the path.

    Creates `plans_dir` when missing. A reader sees either the old plan or the new one, never half of one.
    """
    path = plan_path(plans_dir, task_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
