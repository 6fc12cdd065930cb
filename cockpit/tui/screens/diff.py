"""Review a task like a pull request: its diff against the target with a file list, file by file and hunk by
hunk, the plan, classification, approval and gates beside it, and a comment box whose text goes back to the
agent as a rework request.

The diff comes from the repo's daemon (`task_diff`; its store's ops while it is down), so the cockpit runs
no git itself, and a repo on another host reads the same as one here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.syntax import Syntax
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from cockpit.core.errors import CockpitError
from cockpit.core.models import Task
from cockpit.tui.messages import TaskAction
from cockpit.tui.repos import Repos
from cockpit.tui.screens.forms import CommentScreen
from cockpit.tui.screens.keys import bar_keys
from cockpit.tui.widgets.bars import FlashLine, KeyBar
from cockpit.tui.widgets.task_detail import DetailContext, gates_text, plan_text


@dataclass(frozen=True)
class FileDiff:
    path: str
    text: str
    added: int
    removed: int

    @property
    def hunks(self) -> list[int]:
        """The line of each hunk header (`@@ ... @@`) in `text`."""
        return [i for i, line in enumerate(self.text.split("\n")) if line.startswith("@@")]

    def hunk_header(self, line: int) -> str:
        """The hunk around `line`, as `@@ -a,b +c,d @@`, or "" before the first."""
        lines = self.text.split("\n")
        for i in reversed(self.hunks):
            if i <= line:
                return lines[i].split("@@")[1].strip() if lines[i].count("@@") >= 2 else lines[i]
        return ""


def split_diff(text: str) -> list[FileDiff]:
    """Cut a unified diff into one piece per file."""
    files: list[FileDiff] = []
    current: list[str] = []

    def flush() -> None:
        if not current:
            return
        header = current[0]
        path = header.split(" b/", 1)[1] if " b/" in header else header.removeprefix("diff --git ")
        for line in current[1:6]:
            if line.startswith("+++ b/"):
                path = line[6:]
        added = sum(1 for ln in current if ln.startswith("+") and not ln.startswith("+++"))
        removed = sum(1 for ln in current if ln.startswith("-") and not ln.startswith("---"))
        files.append(FileDiff(path, "\n".join(current), added, removed))

    for line in text.splitlines():
        if line.startswith("diff --git ") and current:
            flush()
            current = []
        current.append(line)
    flush()
    return files


class DiffScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,d", "app.pop_screen", "Back"),
        Binding("right_square_bracket", "step(1)", "Next file"),
        Binding("left_square_bracket", "step(-1)", "Previous file"),
        Binding("n", "hunk(1)", "Next hunk"),
        Binding("p", "hunk(-1)", "Previous hunk"),
        Binding("c", "comment", "Comment: send it back to the agent"),
        Binding("m", "merge", "Merge"),
        Binding("i", "toggle_info", "Plan and gates", show=False),
    ]

    @dataclass
    class Loaded(Message):
        files: list[FileDiff]
        base: str
        error: str | None = None

    def __init__(self, repos: Repos, repo: str, task: Task) -> None:
        super().__init__()
        self.repos = repos
        self.repo = repo
        self.subject = task
        self.files: list[FileDiff] = []
        self.current = 0
        self.hunk = -1  # index in the current file's hunks; -1: its top

    def compose(self) -> ComposeResult:
        yield Static(
            Text.assemble((f"{self.repo} #{self.subject.id} ", "bold"), self.subject.title), id="diff-head"
        )
        with Horizontal(id="diff-body"):
            yield OptionList(id="diff-files")
            with VerticalScroll(id="diff-scroll"):
                yield Static(Text("loading the diff…", style="dim italic"), id="diff-text")
            with Vertical(id="diff-info"), VerticalScroll(id="diff-info-scroll"):
                yield Static(id="diff-plan")
                yield Static(id="diff-gates")
        yield FlashLine(id="flash")
        yield KeyBar(bar_keys(self.BINDINGS), id="keys")

    def on_mount(self) -> None:
        self.query_one("#diff-info").border_title = "plan · gates"
        self.show_info()
        self.repos.tasks_changed.subscribe(self, self._tasks_changed)
        self.load()

    def _tasks_changed(self, change: tuple[str, set[int]]) -> None:
        repo, ids = change
        if repo == self.repo and self.subject.id in ids:
            self.task_changed()

    @work(exclusive=True, exit_on_error=False, group="diff")
    async def load(self) -> None:
        """The diff as the repo's daemon (or its store's ops) reads it from git (`task_diff`)."""
        try:
            result = await self.repos.links[self.repo].call("task_diff", {"id": self.subject.id})
        except CockpitError as exc:
            self.post_message(self.Loaded([], "", exc.message))
            return
        if result.get("message") and not result.get("text"):
            self.post_message(self.Loaded([], "", str(result["message"])))
            return
        self.post_message(self.Loaded(split_diff(str(result.get("text", ""))), str(result.get("base", ""))))

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < 120, "-narrow")

    def show_info(self) -> None:
        """The task's plan, classification reason, who approved it and its gates, from the live model."""
        task = self.repos.models[self.repo].tasks.get(self.subject.id, self.subject)
        self.subject = task
        ctx = DetailContext(repo=self.repo, now=self.repos.now())
        self.query_one("#diff-plan", Static).update(plan_text(task, ctx))
        gates = gates_text(task)
        gates.append("\n")
        self.query_one("#diff-gates", Static).update(gates)

    def on_diff_screen_loaded(self, message: Loaded) -> None:
        self.files = message.files
        head = self.query_one("#diff-head", Static)
        shown = message.base[:12] if len(message.base) == 40 else message.base
        added = sum(f.added for f in message.files)
        removed = sum(f.removed for f in message.files)
        head.update(
            Text.assemble(
                (f"{self.repo} #{self.subject.id} ", "bold"),
                self.subject.title,
                (f"   {shown}...{self.subject.branch or ''}" if message.base else "", "dim"),
                (f"   {len(message.files)} file{'s' if len(message.files) != 1 else ''}", "dim"),
                (f" +{added}", "green"),
                (f" -{removed}", "red"),
            )
        )
        files = self.query_one("#diff-files", OptionList)
        if message.error or not message.files:
            self.query_one("#diff-text", Static).update(
                Text(message.error or "no changes against the target", style="dim italic")
            )
            return
        files.add_options(
            Option(Text.assemble(f.path, (f" +{f.added}", "green"), (f" -{f.removed}", "red")), id=str(i))
            for i, f in enumerate(message.files)
        )
        files.highlighted = 0
        files.focus()
        self._show(0)

    @on(OptionList.OptionHighlighted, "#diff-files")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show(event.option_index)

    def _show(self, index: int) -> None:
        if not 0 <= index < len(self.files):
            return
        if index != self.current or self.hunk != -1:
            self.hunk = -1
        self.current = index
        view = self.query_one("#diff-text", Static)
        view.update(Syntax(self.files[index].text, "diff", theme="ansi_dark", word_wrap=False))
        self.query_one("#diff-scroll", VerticalScroll).scroll_home(animate=False)

    def action_step(self, delta: int) -> None:
        files = self.query_one("#diff-files", OptionList)
        if self.files:
            files.highlighted = ((files.highlighted or 0) + delta) % len(self.files)

    def action_hunk(self, delta: int) -> None:
        """The next (or previous) hunk, on to the next file's first hunk after a file's last."""
        if not self.files:
            return
        hunks = self.files[self.current].hunks
        target = self.hunk + delta
        if 0 <= target < len(hunks):
            self.hunk = target
            self.query_one("#diff-scroll", VerticalScroll).scroll_to(y=hunks[target], animate=False)
            return
        if len(self.files) == 1:
            return
        index = (self.current + (1 if delta > 0 else -1)) % len(self.files)
        self.query_one("#diff-files", OptionList).highlighted = index
        self._show(index)
        if delta < 0 and self.files[index].hunks:
            self.hunk = len(self.files[index].hunks) - 1
            self.call_after_refresh(self.query_one("#diff-scroll", VerticalScroll).scroll_to,
                                    y=self.files[index].hunks[-1], animate=False)
        else:
            self.hunk = 0 if self.files[index].hunks else -1

    def where(self) -> str:
        """`path (hunk -a,b +c,d)` of what is on screen, for the comment's first line."""
        if not self.files:
            return ""
        current = self.files[self.current]
        hunks = current.hunks
        header = current.hunk_header(hunks[self.hunk]) if 0 <= self.hunk < len(hunks) else ""
        return f"{current.path}" + (f" ({header})" if header else "")

    def action_comment(self) -> None:
        task = self.repos.models[self.repo].tasks.get(self.subject.id, self.subject)
        where = self.where()

        def done(text: str | None) -> None:
            if text:
                self.post_message(TaskAction("rework", self.repo, task, message=text))

        self.app.push_screen(
            CommentScreen(f"{self.repo}#{task.id}", where, blink=self.repos.config.cursor_blink), done
        )

    def action_merge(self) -> None:
        task = self.repos.models[self.repo].tasks.get(self.subject.id, self.subject)
        self.post_message(TaskAction("merge", self.repo, task))

    def action_toggle_info(self) -> None:
        self.toggle_class("-no-info")

    def task_changed(self) -> None:
        self.show_info()
