"""A task's diff against its target, file by file, syntax-highlighted. git runs in a thread worker.

For a repo on another host the diff comes from its daemon (`task_diff`), never from files read here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from cockpit.core import git
from cockpit.core.config import load_settings
from cockpit.core.errors import CockpitError
from cockpit.core.models import JSON, Task
from cockpit.core.states import State
from cockpit.tui.screens.keys import bar_keys
from cockpit.tui.widgets.bars import KeyBar


@dataclass(frozen=True)
class FileDiff:
    path: str
    text: str
    added: int
    removed: int


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


def diff_base(task: Task, target: str) -> str:
    """What to diff against: the target, or once merged the target's tip before the merge."""
    if task.state in (State.DONE, State.ROLLED_BACK) and task.merge and task.merge.rollback_sha:
        return task.merge.rollback_sha
    return task.merge.target if task.merge else target


class DiffScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,d", "app.pop_screen", "Back"),
        Binding("right_square_bracket", "step(1)", "Next file"),
        Binding("left_square_bracket", "step(-1)", "Previous file"),
    ]

    @dataclass
    class Loaded(Message):
        files: list[FileDiff]
        base: str
        error: str | None = None

    def __init__(self, repo: str, root: Path, task: Task,
                 remote: Callable[[str, dict[str, Any]], Awaitable[JSON]] | None = None) -> None:
        super().__init__()
        self.repo = repo
        self.root = root
        self.remote = remote
        self.subject = task
        self.files: list[FileDiff] = []

    def compose(self) -> ComposeResult:
        yield Static(
            Text.assemble((f"{self.repo} #{self.subject.id} ", "bold"), self.subject.title), id="diff-head"
        )
        with Horizontal(id="diff-body"):
            yield OptionList(id="diff-files")
            with VerticalScroll(id="diff-scroll"):
                yield Static(Text("loading the diff…", style="dim italic"), id="diff-text")
        yield KeyBar(bar_keys(self.BINDINGS), id="keys")

    def on_mount(self) -> None:
        if self.remote is not None:
            self.load_remote()
        else:
            self.load()

    @work(exclusive=True, exit_on_error=False, group="diff")
    async def load_remote(self) -> None:
        assert self.remote is not None
        try:
            result = await self.remote("task_diff", {"id": self.subject.id})
        except CockpitError as exc:
            self.post_message(self.Loaded([], "", exc.message))
            return
        self.post_message(self.Loaded(split_diff(str(result.get("text", ""))), str(result.get("base", ""))))

    @work(thread=True, exclusive=True, exit_on_error=False, group="diff")
    def load(self) -> None:
        task = self.subject
        if not task.branch:
            self.post_message(self.Loaded([], "", f"task {task.id} has no branch yet: nothing to diff"))
            return
        try:
            target = load_settings(self.root / ".cockpit" / "config.toml").target_branch
            base = diff_base(task, target)
            text = git.diff(self.root, base, task.branch)
        except CockpitError as exc:
            self.post_message(self.Loaded([], "", exc.message))
            return
        self.post_message(self.Loaded(split_diff(text), base))

    def on_diff_screen_loaded(self, message: Loaded) -> None:
        self.files = message.files
        head = self.query_one("#diff-head", Static)
        shown = message.base[:12] if len(message.base) == 40 else message.base
        head.update(
            Text.assemble(
                (f"{self.repo} #{self.subject.id} ", "bold"),
                self.subject.title,
                (f"   {shown}...{self.subject.branch or ''}" if message.base else "", "dim"),
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
        view = self.query_one("#diff-text", Static)
        view.update(Syntax(self.files[index].text, "diff", theme="ansi_dark", word_wrap=False))
        self.query_one("#diff-scroll", VerticalScroll).scroll_home(animate=False)

    def action_step(self, delta: int) -> None:
        files = self.query_one("#diff-files", OptionList)
        if self.files:
            files.highlighted = ((files.highlighted or 0) + delta) % len(self.files)
