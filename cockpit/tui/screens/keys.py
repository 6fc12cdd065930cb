"""`?`: every key, read from the screens' own bindings so the list cannot drift from what the keys do."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_NAMES = {
    "exclamation_mark": "!",
    "question_mark": "?",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "escape": "esc",
    "enter": "enter",
}


def key_label(keys: str) -> str:
    return " / ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in keys.split(","))


def bar_keys(bindings: Iterable[BindingType], namespace: str = "") -> list[tuple[str, str, str]]:
    """(key, description, action) of the bindings meant to be shown, for a KeyBar."""
    prefix = f"{namespace}." if namespace else ""
    return [(key_label(b.key), b.description, prefix + b.action) for b in bindings
            if isinstance(b, Binding) and b.show and b.description]


def binding_rows(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for binding in bindings:
        if isinstance(binding, Binding) and binding.description:
            rows.append((key_label(binding.key), binding.description))
    return rows


class KeysScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, pad_edge=False, expand=True)
        table.add_column("key", style="bold cyan", no_wrap=True, width=12)
        table.add_column("does")
        for title, rows in self.sections:
            table.add_row(Text(title, style="bold underline"), "")
            for key, description in rows:
                table.add_row(key, description)
            table.add_row("", "")
        with Vertical(classes="form", id="keys-form") as form:
            form.border_title = "keys"
            with VerticalScroll(id="keys-scroll"):
                yield Static(table)
            yield Static(Text("↑ ↓ PgUp PgDn scroll · esc closes · ctrl+p searches every action",
                              style="dim"))

    def on_mount(self) -> None:
        self.query_one("#keys-scroll", VerticalScroll).focus()
