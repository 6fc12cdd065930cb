"""`l`: a task's whole gate log (or its agent's log), paged: the failing gate's output beyond its tail.

The file is read in a thread worker; a failed gate's section is scrolled to when the log opens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Log, Static

from cockpit.tui.screens.keys import bar_keys
from cockpit.tui.widgets.bars import KeyBar

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
MAX_BYTES = 8 * 1024 * 1024  # the last 8 MiB of a huge log
FAILED_GATE = re.compile(r"^===== gate (\S+): failed")
GATE_START = re.compile(r"^===== gate (\S+): (?!passed|failed)")


def read_log(path: Path) -> list[str]:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - MAX_BYTES))
        data = fh.read().decode(errors="replace")
    return [ANSI.sub("", row).split("\r")[-1].rstrip() for row in data.split("\n")]


def first_failure(lines: list[str]) -> int | None:
    """The line where the first failed gate's section starts (its header), if any gate failed."""
    starts: dict[str, int] = {}
    for i, line in enumerate(lines):
        if found := GATE_START.match(line):
            starts[found.group(1)] = i
        elif found := FAILED_GATE.match(line):
            return starts.get(found.group(1), i)
    return None


class LogScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,l", "app.pop_screen", "Back"),
        Binding("f", "failure", "First failure"),
        Binding("g,home", "top", "Top", show=False),
        Binding("G,end", "bottom", "Bottom", show=False),
    ]

    @dataclass
    class Loaded(Message):
        lines: list[str]
        error: str | None = None

    def __init__(self, what: str, path: Path) -> None:
        super().__init__()
        self.what = what
        self.path = path
        self.lines: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble((self.what, "bold"), (f"   {self.path}", "dim")), id="log-head")
        yield Log(id="log-text", highlight=False, auto_scroll=False)
        yield KeyBar([*bar_keys(self.BINDINGS), ("PgUp PgDn", "page", "")], id="keys")

    def on_mount(self) -> None:
        self.query_one(Log).focus()
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="log")
    def load(self) -> None:
        try:
            lines = read_log(self.path)
        except OSError as exc:
            self.post_message(self.Loaded([], f"cannot read {self.path}: {exc.strerror}"))
            return
        self.post_message(self.Loaded(lines))

    def on_log_screen_loaded(self, message: Loaded) -> None:
        log = self.query_one(Log)
        if message.error:
            log.write_line(message.error)
            return
        self.lines = message.lines
        log.write_lines(message.lines or ["(the log is empty)"])
        self.call_after_refresh(self.action_failure)

    def action_failure(self) -> None:
        line = first_failure(self.lines)
        log = self.query_one(Log)
        if line is None:
            log.scroll_end(animate=False)
        else:
            log.scroll_to(y=line, animate=False)

    def action_top(self) -> None:
        self.query_one(Log).scroll_home(animate=False)

    def action_bottom(self) -> None:
        self.query_one(Log).scroll_end(animate=False)
