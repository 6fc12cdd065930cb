"""A repo's task list: a DataTable keyed by task id, changed cell by cell, never cleared and refilled."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowDoesNotExist

from cockpit.core.models import Task
from cockpit.tui.cells import COLUMNS, row_cells, row_plain

AGE_COLUMN = next(i for i, (key, _, _) in enumerate(COLUMNS) if key == "age")
TITLE_MIN = 24
SCROLLBAR = 1


class TaskTable(DataTable[str | Text]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(self, repo: str, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, header_height=1)
        self.repo = repo
        # What each row shows now, as plain strings: an update touches only the cells that differ.
        self._shown: dict[int, tuple[str, ...]] = {}
        for key, label, width in COLUMNS:
            self.add_column(label, width=width, key=key)

    def on_resize(self, event: events.Resize) -> None:
        """The title column takes the width the other (fixed) columns leave."""
        width = event.size.width
        if width <= 0:
            return
        fixed = sum(w for key, _, w in COLUMNS if key != "title") + 2 * self.cell_padding * len(COLUMNS)
        title = self.columns[ColumnKey("title")]
        wanted = max(TITLE_MIN, width - fixed - SCROLLBAR)
        if wanted != title.width:
            title.width = wanted
            # The table recomputes its virtual size on idle when this is set (as after add_column).
            self._require_update_dimensions = True
            self.refresh()

    def upsert(self, task: Task, now: float) -> None:
        plain = row_plain(task, now)
        old = self._shown.get(task.id)
        if old == plain:
            return
        self._shown[task.id] = plain
        key = str(task.id)
        cells = row_cells(plain)
        if old is None:
            self.add_row(*cells, key=key)
            return
        for index, (before, after) in enumerate(zip(old, plain, strict=True)):
            if before != after:
                self.update_cell(key, COLUMNS[index][0], cells[index])

    def upsert_many(self, tasks: Iterable[Task], now: float) -> None:
        for task in tasks:
            self.upsert(task, now)

    def refresh_ages(self, tasks: Iterable[Task], now: float) -> None:
        """Rewrite the age cells whose text changed (most do not, minute to minute)."""
        for task in tasks:
            old = self._shown.get(task.id)
            if old is None:
                continue
            plain = row_plain(task, now)
            if plain[AGE_COLUMN] != old[AGE_COLUMN]:
                self.upsert(task, now)

    @property
    def selected_id(self) -> int | None:
        if self.row_count == 0:
            return None
        try:
            row_key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except RowDoesNotExist:
            return None
        return int(row_key.value) if row_key.value is not None else None

    def select(self, task_id: int) -> bool:
        """Move the cursor to the task's row; False when the task has no row."""
        try:
            index = self.get_row_index(str(task_id))
        except RowDoesNotExist:
            return False
        self.move_cursor(row=index)
        return True

    def shows(self, task_id: int) -> bool:
        return task_id in self._shown
