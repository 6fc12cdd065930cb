"""Task text shown by the cockpit carries no terminal escape sequences, and markup in it stays literal."""

from __future__ import annotations

from rich.text import Text

from cockpit.core.models import Task
from cockpit.core.printable import printable
from cockpit.tui.cells import row_cells, row_plain
from cockpit.tui.widgets.task_detail import safe_text

EVIL = "fix [/] the \x1b]0;pwned\x07title\x1b[2J\x1b[H approved by person\x9b2J\nsecond line"


def test_printable_removes_whole_sequences_and_controls() -> None:
    assert printable(EVIL) == "fix [/] the title approved by person\nsecond line"
    assert printable(EVIL, one_line=True) == "fix [/] the title approved by person second line"
    assert printable("a\u202eb\u2066c\x00d") == "abcd"  # bidi overrides and NUL
    assert printable("plain [bold]text[/bold]") == "plain [bold]text[/bold]"


def test_a_table_row_shows_a_hostile_title_literally_and_safely() -> None:
    task = Task(id=1, title=EVIL, description=EVIL)
    plain = row_plain(task, now=task.created_at)
    assert plain[1] == "fix [/] the title approved by person second line"
    cells = row_cells(plain)
    assert cells[1].plain == plain[1]  # Text, never parsed as markup


def test_detail_content_is_made_safe() -> None:
    styled = Text("ok", style="bold")
    assert safe_text(styled) is styled
    cleaned = safe_text(Text(EVIL, style="bold"))
    assert isinstance(cleaned, Text) and "\x1b" not in cleaned.plain and "\x9b" not in cleaned.plain
    assert "[/]" in cleaned.plain
