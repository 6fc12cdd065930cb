"""Every merge across the workspace, live from the repos' models; u rolls back the selected one."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual.widgets.data_table import RowDoesNotExist

from cockpit.core.models import Task
from cockpit.tui.cells import state_text
from cockpit.tui.messages import Say, TaskAction
from cockpit.tui.repos import Repos
from cockpit.tui.screens.keys import bar_keys
from cockpit.tui.widgets.bars import FlashLine, KeyBar

MERGE_STYLES = {
    "merged": "green",
    "rolled_back": "magenta",
    "refused": "red",
    "needs_attention": "bold red",
    "merging": "bold cyan",
    "preflight": "cyan",
}
COLUMNS = (
    ("repo", "repo", 14),
    ("task", "#", 4),
    ("title", "title", 36),
    ("merge", "merge", 15),
    ("target", "into", 10),
    ("merge_sha", "merge", 10),
    ("rollback_sha", "rollback point", 14),
    ("method", "undone by", 9),
    ("state", "task", 15),
)


def merge_row(repo: str, task: Task) -> tuple[str, ...]:
    m = task.merge
    assert m is not None
    return (
        repo,
        str(task.id),
        task.title,
        m.state,
        m.target,
        (m.merge_sha or "")[:10],
        (m.rollback_sha or "")[:10],
        m.rollback_method or "",
        task.state.value,
    )


class MergesScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("u", "rollback", "Roll back"),
        Binding("d", "diff", "Diff"),
    ]

    def __init__(self, repos: Repos) -> None:
        super().__init__()
        self.repos = repos
        self._shown: dict[str, tuple[str, ...]] = {}

    def compose(self) -> ComposeResult:
        yield Static(
            Text.assemble(
                ("merges", "bold"), ("  u rolls back the selected merge · d shows its diff", "dim")
            ),
            id="merges-head",
        )
        table: DataTable[str | Text] = DataTable(id="merges", cursor_type="row")
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table
        yield Static(
            Text("no merges yet: m merges a task awaiting review", style="dim italic"), id="merges-empty"
        )
        yield FlashLine()
        yield KeyBar(bar_keys(self.BINDINGS), id="keys")

    def on_mount(self) -> None:
        for repo in self.repos.models:
            self.repo_changed(repo, None)
        self.repos.tasks_changed.subscribe(self, self._tasks_changed)

    def _tasks_changed(self, change: tuple[str, set[int]]) -> None:
        self.repo_changed(*change)

    def repo_changed(self, repo: str, ids: set[int] | None) -> None:
        """Add or update the rows of the repo's merged tasks (all of them when `ids` is None)."""
        table = self.query_one("#merges", DataTable)
        model = self.repos.models[repo]
        tasks = model.tasks.values() if ids is None else (model.tasks[i] for i in ids if i in model.tasks)
        for task in tasks:
            if task.merge is None or task.merge.state == "preflight":
                continue
            key = f"{repo}:{task.id}"
            plain = merge_row(repo, task)
            old = self._shown.get(key)
            if old == plain:
                continue
            self._shown[key] = plain
            cells: list[str | Text] = list(plain)
            cells[3] = Text(plain[3], style=MERGE_STYLES.get(plain[3], ""))
            cells[8] = state_text(plain[8])
            if old is None:
                table.add_row(*cells, key=key)
            else:
                for i, (a, b) in enumerate(zip(old, plain, strict=True)):
                    if a != b:
                        table.update_cell(key, COLUMNS[i][0], cells[i])
        self.query_one("#merges-empty").display = not self._shown

    def selected(self) -> tuple[str, Task] | None:
        table = self.query_one("#merges", DataTable)
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except RowDoesNotExist:
            return None
        if key is None:
            return None
        repo, _, task_id = key.rpartition(":")
        task = self.repos.models[repo].tasks.get(int(task_id))
        return (repo, task) if task is not None else None

    def action_rollback(self) -> None:
        chosen = self.selected()
        if chosen is None:
            self.post_message(Say("no merge selected", "warning"))
            return
        self.post_message(TaskAction("rollback", *chosen))

    def action_diff(self) -> None:
        chosen = self.selected()
        if chosen is not None:
            self.post_message(TaskAction("diff", *chosen))
