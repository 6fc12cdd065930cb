"""A repo's task list: rows keyed by task id, changed row by row, never cleared and refilled.

The cockpit's own line widget (a `ScrollView` drawing one line per row) rather than a DataTable: a DataTable
re-renders every visible cell after any `update_cell` (its render caches are keyed on a table-wide counter),
which costs each pushed event a dozen milliseconds at 160 columns, and it holds a row object and a styled
cell for every task of every tab. Here a row is kept as the plain strings it shows; a changed row drops its
one cached line and repaints that line alone, and only rows drawn are ever styled.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from cockpit.core.models import Task
from cockpit.tui.cells import COLUMNS, row_cells, row_plain

AGE_COLUMN = next(i for i, (key, _, _) in enumerate(COLUMNS) if key == "age")
TITLE_COLUMN = next(i for i, (key, _, _) in enumerate(COLUMNS) if key == "title")
COLUMN_KEYS = [key for key, _, _ in COLUMNS]
TITLE_MIN = 24
SCROLLBAR = 1
CELL_PADDING = 1
HEADER_HEIGHT = 1


class TaskTable(ScrollView, can_focus=False):
    """The tables never take the focus: the screen moves the active one's cursor."""

    DEFAULT_CSS = """
    TaskTable {
        background: $surface;
        color: $foreground;
        & > .task-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .task-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"task-table--header", "task-table--cursor"}

    class Highlighted(Message):
        """The cursor moved to another row (or onto the first one)."""

        def __init__(self, table: TaskTable, task_id: int | None) -> None:
            super().__init__()
            self.table = table
            self.task_id = task_id

        @property
        def control(self) -> TaskTable:
            return self.table

    class Selected(Message):
        """Enter (or a click) on the cursor's row."""

        def __init__(self, table: TaskTable, task_id: int | None) -> None:
            super().__init__()
            self.table = table
            self.task_id = task_id

        @property
        def control(self) -> TaskTable:
            return self.table

    header_height = HEADER_HEIGHT

    def __init__(self, repo: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.repo = repo
        # What each row shows now, as plain strings: an update touches only the rows that differ.
        self._shown: dict[int, tuple[str, ...]] = {}
        self._order: list[int] = []  # task ids, in row order (as they came)
        self._index: dict[int, int] = {}
        self._widths = [width for _, _, width in COLUMNS]
        self._lines: dict[int, Strip] = {}  # rendered rows (not the cursor's), by task id
        self._base: Style | None = None
        self.cursor_row = 0
        self._update_virtual_size()

    # -- size and columns ------------------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._order)

    def _row_width(self) -> int:
        return sum(w + 2 * CELL_PADDING for w in self._widths)

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self._row_width(), len(self._order) + self.header_height)

    def on_resize(self, event: events.Resize) -> None:
        self._fit_title(event.size.width)
        if self._order:
            # A smaller window must not leave the selected row out of sight (as after a terminal resize).
            self.call_after_refresh(self._scroll_to_cursor)

    def _fit_title(self, width: int) -> None:
        """The title column takes the width the other (fixed) columns leave."""
        if width <= 0:
            return
        fixed = sum(w for i, w in enumerate(self._widths) if i != TITLE_COLUMN)
        wanted = max(TITLE_MIN, width - fixed - 2 * CELL_PADDING * len(COLUMNS) - SCROLLBAR)
        if wanted != self._widths[TITLE_COLUMN]:
            self._widths[TITLE_COLUMN] = wanted
            self._lines.clear()
            self._update_virtual_size()
            self.refresh()

    # -- rows ------------------------------------------------------------------------------------------------

    def upsert(self, task: Task, now: float) -> None:
        plain = row_plain(task, now)
        old = self._shown.get(task.id)
        if old == plain:
            return
        self._shown[task.id] = plain
        self._lines.pop(task.id, None)
        if old is None:
            self._index[task.id] = len(self._order)
            self._order.append(task.id)
            self._update_virtual_size()
            if len(self._order) == 1:
                self.post_message(self.Highlighted(self, task.id))
            self._refresh_index(len(self._order) - 1)
            return
        self._refresh_index(self._index[task.id])

    def upsert_many(self, tasks: Iterable[Task], now: float) -> None:
        for task in tasks:
            self.upsert(task, now)

    def refresh_ages(self, tasks: Iterable[Task], now: float) -> None:
        """Rewrite the rows whose age text changed (most do not, minute to minute)."""
        for task in tasks:
            old = self._shown.get(task.id)
            if old is not None and row_plain(task, now)[AGE_COLUMN] != old[AGE_COLUMN]:
                self.upsert(task, now)

    def get_cell(self, task_id: str | int, column: str) -> Text:
        """The styled cell the row shows in `column` (raises KeyError for a task without a row)."""
        return row_cells(self._shown[int(task_id)])[COLUMN_KEYS.index(column)]

    def get_row_index(self, task_id: str | int) -> int:
        """The row of the task (raises KeyError for a task without a row)."""
        return self._index[int(task_id)]

    def shows(self, task_id: int) -> bool:
        return task_id in self._shown

    @property
    def selected_id(self) -> int | None:
        if not self._order:
            return None
        return self._order[min(self.cursor_row, len(self._order) - 1)]

    def select(self, task_id: int) -> bool:
        """Move the cursor to the task's row; False when the task has no row."""
        index = self._index.get(task_id)
        if index is None:
            return False
        self.move_cursor(row=index)
        return True

    # -- the cursor ------------------------------------------------------------------------------------------

    def move_cursor(self, *, row: int, scroll: bool = True, animate: bool = False) -> None:
        if not self._order:
            return
        row = max(0, min(row, len(self._order) - 1))
        if row != self.cursor_row:
            old, self.cursor_row = self.cursor_row, row
            self._refresh_index(old)
            self._refresh_index(row)
            self.post_message(self.Highlighted(self, self._order[row]))
        if scroll:
            self._scroll_to_cursor(animate)

    def _scroll_to_cursor(self, animate: bool = False) -> None:
        visible = max(1, self.scrollable_content_region.height - self.header_height)
        top = int(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=animate, immediate=True)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=animate, immediate=True)

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - self.header_height)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self.cursor_row + 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self.cursor_row - 1)

    def action_page_down(self) -> None:
        self.move_cursor(row=self.cursor_row + self._page())

    def action_page_up(self) -> None:
        self.move_cursor(row=self.cursor_row - self._page())

    def action_scroll_top(self) -> None:
        self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        self.move_cursor(row=len(self._order) - 1)

    def action_select_cursor(self) -> None:
        if self._order:
            self.post_message(self.Selected(self, self.selected_id))

    def on_click(self, event: events.Click) -> None:
        row = event.y - self.header_height + int(self.scroll_y)
        if event.y < self.header_height or not 0 <= row < len(self._order):
            return
        if row == self.cursor_row:
            self.action_select_cursor()
        else:
            self.move_cursor(row=row)

    # -- drawing ---------------------------------------------------------------------------------------------

    def _refresh_index(self, index: int) -> None:
        """Repaint one row's line (if it is in the window; the others are drawn when scrolled to)."""
        if not (self.window_region.area and self.is_on_screen):
            # Hidden (its tab is not shown): lines painted before would come back when the tab is shown. A
            # full refresh costs nothing until then.
            self.refresh()
            return
        y = index - int(self.scroll_y) + self.header_height
        if self.header_height <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()
        self._base = None

    @property
    def _base_style(self) -> Style:
        """The table's own style (looked up once per restyle: it walks every ancestor's background)."""
        if self._base is None:
            self._base = self.rich_style
        return self._base

    def _line(self, cells: list[Text], style: Style, post: Style | None = None, *,
              header: bool = False) -> Strip:
        line = Text(no_wrap=True, overflow="crop", end="")
        pad = " " * CELL_PADDING
        for (key, _, _), cell, width in zip(COLUMNS, cells, self._widths, strict=True):
            shown = cell.copy()
            if key == "id" and not header:
                shown.align("right", width)
            else:
                shown.truncate(width, overflow="ellipsis", pad=True)
            line.append(pad)
            line.append_text(shown)
            line.append(pad)
        segments = Segment.apply_style(line.render(self.app.console), style, post)
        return Strip(segments, self._row_width())

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x = int(self.scroll_x)
        base = self._base_style
        if y < self.header_height:
            header = self.get_component_rich_style("task-table--header")
            labels = [Text(label) for _, label, _ in COLUMNS]
            strip = self._line(labels, base + header, header=True)
            return strip.crop_extend(scroll_x, scroll_x + width, base + header)
        index = y - self.header_height + int(self.scroll_y)
        if index >= len(self._order):
            return Strip.blank(width, base)
        task_id = self._order[index]
        if index == self.cursor_row:
            cursor = self.get_component_rich_style("task-table--cursor")
            # The cursor's colours win over the cells' own (as a DataTable's do).
            post = Style.from_color(cursor.color, cursor.bgcolor)
            strip = self._line(row_cells(self._shown[task_id]), base + cursor, post)
            return strip.crop_extend(scroll_x, scroll_x + width, base + cursor)
        line = self._lines.get(task_id)
        if line is None:
            line = self._lines[task_id] = self._line(row_cells(self._shown[task_id]), base)
        return line.crop_extend(scroll_x, scroll_x + width, base)
