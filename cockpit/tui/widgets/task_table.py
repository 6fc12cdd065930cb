"""A repo's task list: a DataTable keyed by task id, changed cell by cell, never cleared and refilled."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import events
from textual.cache import LRUCache
from textual.geometry import Size
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowDoesNotExist, RowKey

from cockpit.core.models import Task
from cockpit.tui.cells import COLUMNS, row_cells, row_plain

AGE_COLUMN = next(i for i, (key, _, _) in enumerate(COLUMNS) if key == "age")
TITLE_MIN = 24
SCROLLBAR = 1


class TaskTable(DataTable[Text]):
    # The tables never take the focus: the screen moves the active one's cursor. A DataTable whose focus
    # changes drops every render cache (its styles change), so a tab switch would redraw every visible cell.
    can_focus = False

    def __init__(self, repo: str, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, header_height=1)
        self.repo = repo
        # What each row shows now, as plain strings: an update touches only the cells that differ.
        self._shown: dict[int, tuple[str, ...]] = {}
        self._drawn_size = Size(0, 0)
        for key, label, width in COLUMNS:
            self.add_column(label, width=width, key=key)

    def _on_resize(self, event: events.Resize) -> None:
        if event.size == self._drawn_size:
            # Shown again at the size it had (its tab was switched to): DataTable's own handler would
            # invalidate every render cache, making the switch render every visible cell again.
            event.prevent_default()
            return
        self._drawn_size = event.size
        self._fit_title(event.size.width)
        if self.row_count:
            # A smaller window must not leave the selected row out of sight (as after a terminal resize).
            self.call_after_refresh(self.move_cursor, row=self.cursor_row, scroll=True)

    def _fit_title(self, width: int) -> None:
        """The title column takes the width the other (fixed) columns leave."""
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
        changed = {COLUMNS[i][0]: cells[i] for i, (a, b) in enumerate(zip(old, plain, strict=True)) if a != b}
        if not self._update_row(key, changed):
            for column, cell in changed.items():
                self.update_cell(key, column, cell)

    def _update_row(self, key: str, cells: dict[str, Text]) -> bool:
        """Change cells of one row and re-render that row alone; False when this DataTable cannot (then the
        caller uses `update_cell`).

        `update_cell` bumps a table-wide counter that every render cache is keyed on, so one changed cell
        re-renders every visible cell on the next frame (a dozen milliseconds at 160 columns, for each pushed
        event). Dropping only the changed row's entries from those caches gives the same picture for a
        fraction of it. It reaches into DataTable's caches; `test_task_table` checks it against
        `update_cell`, and any missing piece falls back to it.
        """
        row_key = RowKey(key)
        try:
            data = self._data[row_key]
            index = self._row_locations.get(row_key)
            by_row: list[LRUCache[Any, Any]] = [self._cell_render_cache, self._row_render_cache]
            by_index: LRUCache[Any, Any] = self._row_renderable_cache
            by_line: LRUCache[Any, Any] = self._line_cache
        except (AttributeError, KeyError):
            return False
        if index is None or not all(isinstance(c, LRUCache) for c in (*by_row, by_index, by_line)):
            return False
        for column, cell in cells.items():
            data[ColumnKey(column)] = cell
        for cache in by_row:  # keyed (row key, ...)
            for cache_key in [k for k in cache.keys() if k[0] == row_key]:  # noqa: SIM118 (a copy: we discard)
                cache.discard(cache_key)
        for cache_key in [k for k in by_index.keys() if k[1] == index]:  # noqa: SIM118 - keyed (count, row index)
            by_index.discard(cache_key)
        for cache_key in list(by_line.keys()):  # keyed (line y, ...)
            try:
                owner = self._get_offsets(int(cache_key[0]))[0]
            except LookupError:
                continue
            if owner == row_key:
                by_line.discard(cache_key)
        if self.window_region.area and self.is_on_screen:
            self.refresh_row(index)
        else:
            # Hidden (its tab is not shown): `refresh_row` skips rows outside the window, so the lines painted
            # before would come back when the tab is shown. A full refresh costs nothing until then.
            self.refresh()
        return True

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
