"""TaskTable: rows by task id, and its row-scoped repaint giving the same picture as a table drawn afresh."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import TabbedContent, TabPane

from cockpit.core.models import Link, Task
from cockpit.core.states import State
from cockpit.tui.widgets.task_table import TaskTable

NOW = 1_800_000_000.0


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TaskTable("repo", id="fast")
        yield TaskTable("repo", id="plain")


def tasks(count: int) -> list[Task]:
    return [Task(id=i, title=f"task {i} [does] things", description="d", state=State.PENDING, scope="small",
                 created_at=NOW - 90 * i) for i in range(1, count + 1)]


def screen_text(table: TaskTable) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


async def test_row_updates_render_like_update_cell() -> None:
    """Rows changed one by one (each repainting its line alone) show what a table given every row at once
    shows: the table's cached lines never outlive the row they were drawn from."""
    app = TableApp()
    async with app.run_test(size=(160, 48)) as pilot:
        fast = app.query_one("#fast", TaskTable)
        rows = tasks(40)
        fast.upsert_many(rows, NOW)
        await pilot.pause()
        for step in range(12):
            task = rows[(step * 7) % len(rows)]
            task.state = State.REJECTED if task.state is State.PENDING else State.PENDING
            task.agent_status = "running" if step % 2 else "idle"
            task.branch = f"cockpit/task-{task.id}-step-{step}"
            task.children = [Link("peer", step)] if step % 3 == 0 else []
            fast.upsert(task, NOW)
            if step == 5:
                fast.move_cursor(row=3)
            await pilot.pause()
            plain = app.query_one("#plain", TaskTable)
            await plain.remove()
            plain = TaskTable("repo", id="plain")
            await app.mount(plain)
            plain.upsert_many(rows, NOW)
            plain.move_cursor(row=fast.cursor_row)
            deadline = time.monotonic() + 10
            # The new table has taken its size (and fitted its title column to it).
            while plain.virtual_size != fast.virtual_size and time.monotonic() < deadline:
                await pilot.pause(0.01)
            assert screen_text(fast) == screen_text(plain), f"step {step}"
        assert "rejected" in str(fast.get_cell(str(rows[0].id), "state"))


async def test_rows_are_keyed_by_task_id_and_titles_stay_literal() -> None:
    app = TableApp()
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.query_one("#fast", TaskTable)
        rows = tasks(3)
        table.upsert_many(rows, NOW)
        table.upsert_many(rows, NOW)  # nothing changed: no new rows
        await pilot.pause()
        assert table.row_count == 3 and table.shows(2)
        title = table.get_cell("1", "title")
        assert isinstance(title, Text) and title.plain == "task 1 [does] things"  # not read as markup
        assert table.select(3) and table.selected_id == 3
        assert not table.select(99)
        assert str(table.get_cell("2", "age")) == "3m"
        table.refresh_ages(rows, NOW + 3600)
        assert str(table.get_cell("2", "age")) == "1h"



class TabsApp(App[None]):
    def compose(self) -> ComposeResult:
        with TabbedContent(id="tabs"):
            with TabPane("a", id="a"):
                yield TaskTable("a", id="ta")
            with TabPane("b", id="b"):
                yield TaskTable("b", id="tb")


async def test_a_row_changed_while_its_tab_is_hidden_is_right_when_shown() -> None:
    app = TabsApp()
    async with app.run_test(size=(160, 30)) as pilot:
        table = app.query_one("#ta", TaskTable)
        rows = tasks(5)
        table.upsert_many(rows, NOW)
        await pilot.pause()
        tabs = app.query_one("#tabs", TabbedContent)
        tabs.active = "b"
        await pilot.pause()
        rows[1].state = State.REJECTED
        table.upsert(rows[1], NOW)
        tabs.active = "a"
        await pilot.pause()
        await pilot.pause()
        assert "rejected" in app.export_screenshot()


async def test_the_selected_row_stays_in_view_when_the_window_shrinks() -> None:
    app = TableApp()
    async with app.run_test(size=(160, 60)) as pilot:
        table = app.query_one("#fast", TaskTable)
        table.upsert_many(tasks(60), NOW)
        await pilot.pause()
        table.move_cursor(row=25)
        await pilot.pause()
        await pilot.resize_terminal(100, 24)
        await pilot.pause()
        await pilot.pause()
        top = table.scroll_offset.y
        visible = table.size.height - table.header_height
        assert top <= table.cursor_row < top + visible, (top, table.cursor_row, visible)
