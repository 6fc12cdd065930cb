"""The selected task: plan review (classification, steps, questions, approve / reject / clarify), the agent's
live output with its progress and a needs-input banner, and the gate results.

Everything is rendered into a few Statics from the task as folded by the model, so moving the cursor costs a
handful of `update` calls; which panels show is decided by CSS classes (`-reviewable`, `-has-agent`, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Button, Static

from cockpit.core.models import Task
from cockpit.core.printable import printable
from cockpit.core.states import State
from cockpit.tui.cells import age_text, agent_status, short_branch, state_text
from cockpit.tui.usage import Usage, long_text, short_text

WORK_STATES = frozenset(
    {
        State.EXECUTING,
        State.GATING,
        State.AWAITING_REVIEW,
        State.MERGING,
        State.FAILED,
        State.INTERRUPTED,
        State.DONE,
        State.ROLLED_BACK,
    }
)
STEP_MARKS = {
    "done": ("✓", "green"),
    "running": ("▶", "bold blue"),
    "waiting": ("…", "yellow"),
    "failed": ("✗", "bold red"),
    "pending": ("·", "dim"),
}
GATE_TAIL = 4
STRIP_CACHE = 200  # agent output lines kept drawn
STEP_PREFIX = re.compile(r"^\[(\d+)/(\d+)\]")


@dataclass
class DetailContext:
    """What the detail needs beyond the task: live states of peer tasks and the last progress event."""

    repo: str
    now: float
    peer_state: Callable[[str, int], str | None] = lambda repo, task_id: None
    progress: dict[str, Any] = field(default_factory=dict)


def head_text(repo: str, task: Task, ctx: DetailContext) -> Text:
    text = Text.assemble((f"{repo} #{task.id} ", "bold"), state_text(task.state.value))
    if task.scope:
        text.append(f"  {task.scope}", style="italic")
    age = age_text(ctx.now - task.created_at)
    text.append("  created just now" if age == "now" else f"  created {age} ago", style="dim")
    if task.branch:
        text.append(f"  ⎇ {short_branch(task.branch)}", style="dim")
    if task.usage_runs:
        text.append(f"  {short_text(Usage.of_runs(task.usage_runs))}", style="dim")
    text.append("\n")
    text.append(task.title, style="bold")
    return text


def plan_text(task: Task, ctx: DetailContext) -> Text:
    t = Text()
    if task.scope is None:
        t.append("not classified yet\n", style="dim italic")
    else:
        t.append(task.scope, style="bold")
        t.append(f" · classified by {task.classifier or '?'}", style="dim")
        if task.approved_by:
            t.append(f" · approved by {task.approved_by}", style="dim")
        t.append("\n")
    if task.reason:
        t.append("reason: ", style="dim")
        t.append(f"{task.reason}\n")
    if task.description and task.description != task.title:
        t.append(f"{task.description}\n", style="italic")
    if task.parent is not None:
        state = ctx.peer_state(task.parent.repo, task.parent.id)
        t.append(f"delegated by {task.parent.repo}#{task.parent.id}", style="magenta")
        t.append(f" ({state})\n" if state else "\n", style="dim")
    if task.plan:
        t.append("plan\n", style="bold underline")
        for step in task.plan:
            mark, style = STEP_MARKS.get(step.status, ("·", "dim"))
            t.append(f" {mark} ", style=style)
            t.append(f"{step.n}. {step.verb}", style="bold")
            if step.peer:
                t.append(f" → {step.peer}", style="magenta")
            t.append(f"  {step.description}")
            if step.peer and step.peer_task_id is not None:
                live = ctx.peer_state(step.peer, step.peer_task_id) or step.peer_state
                t.append(f"  {step.peer}#{step.peer_task_id} ", style="dim")
                if live:
                    t.append_text(state_text(live))
            elif step.peer:
                t.append("  not sent yet", style="dim")
            if step.detail:
                t.append(f"  {step.detail}", style="dim")
            t.append("\n")
    for child in task.children:
        if any(s.peer == child.repo and s.peer_task_id == child.id for s in task.plan):
            continue
        live = ctx.peer_state(child.repo, child.id) or child.state
        t.append(f" → {child.repo}#{child.id} ", style="magenta")
        if live:
            t.append_text(state_text(live))
        t.append("\n")
    if task.questions:
        t.append("questions\n", style="bold underline")
        for i, question in enumerate(task.questions, 1):
            t.append(f" {i}. {question}\n", style="yellow")
    if task.answers:
        t.append("answers\n", style="bold underline")
        for answer in task.answers:
            t.append(f" - {answer}\n")
    if task.failure:
        t.append("failure: ", style="bold red")
        t.append(f"{task.failure}\n")
    if task.child_failure:
        t.append("delegated child went wrong: ", style="bold red")
        t.append(f"{task.child_failure}\n")
    if task.merge is not None and task.merge.state != "preflight":
        m = task.merge
        t.append("merge: ", style="bold")
        t.append(f"{m.state} into {m.target}")
        if m.merge_sha:
            t.append(f"  merge {m.merge_sha[:10]}", style="dim")
        if m.rollback_sha:
            t.append(f"  rollback point {m.rollback_sha[:10]}", style="dim")
        if m.rollback_method:
            t.append(f"  ({m.rollback_method})", style="dim")
        if m.detail:
            t.append(f"\n{m.detail}", style="yellow")
        t.append("\n")
    t.rstrip()
    return t


def progress_text(task: Task, ctx: DetailContext) -> Text:
    t = Text()
    status = agent_status(task) or "idle"
    t.append("agent ", style="dim")
    t.append(task.agent or "-", style="bold")
    t.append(f"  {status}", style="bold blue" if status == "running" else "dim")
    if task.attempt:
        t.append(f"  attempt {task.attempt}", style="dim")
    if task.usage_runs:
        t.append("\nusage ", style="dim")
        t.append(long_text(Usage.of_runs(task.usage_runs)))
    step, total = ctx.progress.get("step"), ctx.progress.get("total")
    text = ctx.progress.get("text") or task.progress
    if (step is None or total is None) and text and (found := STEP_PREFIX.match(text)):
        step, total = int(found.group(1)), int(found.group(2))
    if isinstance(step, int) and isinstance(total, int) and total > 0:
        filled = round(20 * min(step, total) / total)
        t.append(f"\nstep {step}/{total} ", style="bold")
        t.append("█" * filled, style="blue")
        t.append("░" * (20 - filled), style="dim")
    if text:
        t.append(f"\n{text}")
    return t


# Lines of a failed gate's output that say why: assertions, errors, the failing test, a traceback's frames.
FAILING_LINE = re.compile(
    r"(Error|Exception|assert|FAIL|panic|fatal|expected|not ok|✗|✕|×|^E\s|^>\s)", re.IGNORECASE
)
TRACE_FRAME = re.compile(r'^\s*File "[^"]+", line \d+')
FAILING_MAX = 8


def failing_lines(lines: list[str], limit: int = FAILING_MAX) -> list[str]:
    """The lines of a failed gate's tail that explain the failure: the traceback's last frame and the lines
    matching an error or an assertion, in order; the tail's last lines when nothing matches."""
    picked: set[int] = set()
    frames = [i for i, line in enumerate(lines) if TRACE_FRAME.match(line)]
    if frames:
        last = frames[-1]
        picked.update(range(last, min(last + 2, len(lines))))
    picked.update(i for i, line in enumerate(lines) if FAILING_LINE.search(line))
    if not picked:
        return lines[-GATE_TAIL:]
    chosen = sorted(picked)
    return [lines[i] for i in chosen[-limit:]]


def gates_text(task: Task) -> Text:
    """Failed gates first, with the lines that say why; passed ones on a line each."""
    t = Text()
    if not task.gates:
        t.append("gates: none run yet" if task.state is not State.GATING else "gates: running…", style="dim")
        return t
    failed = [g for g in task.gates if g.status != "passed"]
    for gate in failed + [g for g in task.gates if g.status == "passed"]:
        ok = gate.status == "passed"
        t.append("✓ " if ok else "✗ ", style="green" if ok else "bold red")
        t.append(gate.name, style="bold")
        t.append(f"  {gate.status}", style="green" if ok else "red")
        if gate.exit_code is not None:
            t.append(f"  exit {gate.exit_code}", style="dim")
        t.append(f"  {gate.duration_s:.1f}s", style="dim")
        if gate.reason:
            t.append(f"  {gate.reason}", style="yellow")
        t.append("\n")
        if not ok:
            for line in failing_lines(gate.log_tail):
                t.append(f"  │ {line}\n", style="red" if FAILING_LINE.search(line) else "")
    if failed:
        t.append("l pages the whole gate log", style="dim italic")
    t.rstrip()
    return t


# The action buttons: (action on the screen, label, variant), and the states where each is offered.
ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("approve", "Approve (a)", "success"),
    ("clarify", "Clarify (c)", "primary"),
    ("merge", "Merge (m)", "success"),
    ("answer", "Answer (enter)", "warning"),
    ("attach", "Attach (t)", "primary"),
    ("mark_done", "Done (f)", "success"),
    ("stop", "Stop (x)", "error"),
    ("log", "Log (l)", "default"),
    ("retry", "Retry (R)", "primary"),
    ("rollback", "Roll back (u)", "error"),
    ("diff", "Diff (d)", "default"),
    ("shell", "Shell (s)", "default"),
    ("run_gates", "Gates again (g)", "default"),
    ("reject", "Reject (r)", "error"),
    ("cancel_task", "Cancel (x)", "default"),
)
S = State
OFFERED: dict[str, frozenset[State]] = {
    "approve": frozenset({S.PENDING, S.PENDING_CLARIFICATION}),
    "clarify": frozenset({S.PENDING_CLARIFICATION}),
    "reject": frozenset({S.CREATED, S.PENDING, S.PENDING_CLARIFICATION, S.AWAITING_REVIEW}),
    "attach": frozenset({S.EXECUTING, S.GATING}),
    "shell": frozenset({S.EXECUTING, S.GATING, S.AWAITING_REVIEW, S.FAILED, S.INTERRUPTED}),
    "merge": frozenset({S.AWAITING_REVIEW}),
    "diff": frozenset({S.AWAITING_REVIEW, S.DONE, S.FAILED, S.INTERRUPTED, S.ROLLED_BACK}),
    "run_gates": frozenset({S.FAILED}),
    "retry": frozenset({S.FAILED, S.INTERRUPTED, S.ROLLED_BACK}),
    "cancel_task": frozenset({S.APPROVED, S.FAILED, S.INTERRUPTED}),
    "stop": frozenset({S.EXECUTING, S.GATING}),
    "mark_done": frozenset({S.EXECUTING}),
}


def offered(task: Task) -> list[str]:
    """The actions that make sense for the task now, in button order."""
    names: list[str] = []
    for name, _, _ in ACTIONS:
        if name == "answer":
            ok = task.needs_input and task.state is State.EXECUTING
        elif name == "log":
            ok = bool(task.gates) or task.state is State.GATING or (
                task.state in WORK_STATES and (task.pane is not None or task.attempt > 0))
        elif name == "rollback":
            ok = task.merge is not None and task.merge.state == "merged"
        elif name in ("diff", "shell"):
            ok = task.state in OFFERED[name] and (task.branch is not None if name == "diff" else
                                                  task.worktree is not None)
        else:
            ok = task.state in OFFERED[name]
        if ok:
            names.append(name)
    return names



def safe_text(content: RenderableType) -> RenderableType:
    """`content` with no terminal escape sequence or control character (task text may be a peer's). Text
    that holds one is rebuilt plain: rare, and safer than keeping its styles."""
    if isinstance(content, Text) and printable(content.plain) != content.plain:
        return Text(printable(content.plain), style=content.style)
    return content

class AgentOutputView(Widget, can_focus=True):
    """The tail of the agent's pane, as many of its last lines as fit. Focused, enter opens the answer box."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "answer", "Answer the agent")]

    class AnswerRequested(Message):
        pass

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: list[str] = []
        self.note = "no output yet"
        # Each line drawn once: a streaming agent's new output moves the tail up a line, and the lines it
        # moves are not rendered again.
        self._strips: dict[str, Strip] = {}

    def set_lines(self, lines: list[str], note: str = "") -> None:
        note = note or ("" if lines else "no output yet")
        if (lines, note) == (self.lines, self.note):
            return
        self.lines = lines
        self.note = note
        if len(self._strips) > 4 * STRIP_CACHE:
            self._strips.clear()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        style = self.rich_style
        if self.note:
            if y:
                return Strip.blank(width, style)
            note = Text(self.note, style="dim italic", no_wrap=True, overflow="crop")
            return Strip(note.render(self.app.console)).apply_style(style).crop_extend(0, width, style)
        shown = self.lines[-max(1, self.size.height):]
        if y >= len(shown):
            return Strip.blank(width, style)
        line = shown[y]
        strip = self._strips.get(line)
        if strip is None:
            text = Text(printable(line), no_wrap=True, overflow="crop")
            strip = self._strips[line] = Strip(text.render(self.app.console))
        return strip.apply_style(style).crop_extend(0, width, style)

    def action_answer(self) -> None:
        self.post_message(self.AnswerRequested())


class TaskDetail(Vertical):
    class ActionPressed(Message):
        """A task action button was pressed: the screen runs `action` on the selected task."""

        def __init__(self, action: str) -> None:
            super().__init__()
            self.action = action

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: dict[str, Text] = {}
        self._buttons: list[Button] | None = None  # the action buttons, looked up once
        self._statics: dict[str, Static] = {}
        self._heights: dict[str, tuple[int, int]] = {}  # (width, lines) each Static's text last wrapped to

    def compose(self) -> ComposeResult:
        yield Static(id="detail-head")
        with Horizontal(id="detail-body"):
            with Vertical(id="plan-panel"):
                with VerticalScroll(id="plan-scroll"):
                    yield Static(id="plan-text")
                with Horizontal(id="task-actions"):
                    for name, label, variant in ACTIONS:
                        yield Button(label, id=name, name=name, variant=variant,  # type: ignore[arg-type]
                                     compact=True, classes="task-action")
            with Vertical(id="work-panel"):
                yield Static(id="needs-input")
                yield Static(id="agent-progress")
                yield AgentOutputView(id="agent-output")
                with VerticalScroll(id="gates-scroll"):
                    yield Static(id="gates")

    def on_mount(self) -> None:
        self.query_one("#plan-panel").border_title = "task"
        self.query_one("#work-panel").border_title = "agent · gates"
        self.show(None, None)

    @on(Button.Pressed, ".task-action")
    def _action_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.name:
            self.post_message(self.ActionPressed(event.button.name))

    def _put(self, widget_id: str, content: Text, *, layout: bool = True) -> None:
        """Update a Static only when its content changed: an update that may change its height lays out the
        whole screen, which is most of what moving the cursor costs, so a text that wraps to as many lines
        as the one before at the Static's width is only repainted."""
        if self._shown.get(widget_id) == content:
            return
        self._shown[widget_id] = content
        widget = self._statics.get(widget_id)
        if widget is None:
            widget = self._statics[widget_id] = self.query_one(f"#{widget_id}", Static)
        shown = safe_text(content)
        if layout:
            width = widget.content_region.width
            height = len(shown.wrap(self.app.console, width)) if width > 0 and isinstance(shown, Text) else -1
            layout = height < 0 or (width, height) != self._heights.get(widget_id)
            self._heights[widget_id] = (width, height)
        widget.update(shown, layout=layout)

    def _set_classes(self, wanted: dict[str, bool]) -> None:
        """Change the panel classes in one go: a change restyles the whole detail, so once, not per class."""
        changed = False
        for name, add in wanted.items():
            if self.has_class(name) != add:
                self.set_class(add, name, update=False)
                changed = True
        if changed:
            self.update_node_styles()

    def show(self, task: Task | None, ctx: DetailContext | None) -> None:
        if task is None or ctx is None:
            self._set_classes({"-empty": True, "-has-agent": False, "-has-gates": False,
                               "-needs-input": False, "-gates-failed": False})
            self._put("detail-head", Text("no task selected: n creates one", style="dim"), layout=False)
            self._put("plan-text", Text(""))
            return
        self._put("detail-head", head_text(ctx.repo, task, ctx), layout=False)  # two lines, always
        self._put("plan-text", plan_text(task, ctx))
        shown = set(offered(task))
        if self._buttons is None:
            self._buttons = list(self.query(".task-action").results(Button))
        for button in self._buttons:
            wanted = button.name in shown
            if button.display != wanted:
                button.display = wanted
        has_agent = task.state in WORK_STATES and (
            task.agent is not None or task.pane is not None or task.attempt > 0
        )
        has_gates = bool(task.gates) or task.state is State.GATING
        waiting = task.needs_input and task.state is State.EXECUTING
        self._set_classes({"-empty": False, "-has-agent": has_agent, "-has-gates": has_gates,
                           "-gates-failed": any(g.status != "passed" for g in task.gates),
                           "-needs-input": waiting})
        # Hidden sections are not updated: they are when they show.
        if waiting:
            self._put("needs-input", Text.assemble(("  ⚠ the agent is waiting for your answer  ", "bold"),
                                                   ("enter answers it · t attaches", "")), layout=False)
        if has_agent:
            self._put("agent-progress", progress_text(task, ctx))
        if has_gates:
            self._put("gates", gates_text(task))

    def show_output(self, lines: list[str], error: str | None = None) -> None:
        self.query_one("#agent-output", AgentOutputView).set_lines(lines, error or "")
