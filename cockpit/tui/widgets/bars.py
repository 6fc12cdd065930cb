"""The top bar (workspace, inbox, clock) and the flash line (the last action's outcome, inline)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.widgets import Static

if TYPE_CHECKING:
    from cockpit.tui.app import Flash

FLASH_STYLES = {"info": "", "ok": "green", "warning": "yellow", "error": "bold red"}


class StatusBar(Static):
    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.waiting = 0
        self.repos_down = 0
        self.clock = ""

    def set_counts(self, waiting: int, repos_down: int) -> None:
        if (waiting, repos_down) != (self.waiting, self.repos_down):
            self.waiting, self.repos_down = waiting, repos_down
            self._render_bar()

    def set_clock(self, now: float | None) -> None:
        text = time.strftime("%H:%M", time.localtime(now)) if now is not None else ""
        if text != self.clock:
            self.clock = text
            self._render_bar()

    def on_mount(self) -> None:
        self._render_bar()

    def _render_bar(self) -> None:
        bar = Text.assemble((" ◆ cockpit ", "bold reverse"), (f" {self.title}", "bold"))
        if self.waiting:
            bar.append(f"   ⚑ {self.waiting} need{'s' if self.waiting == 1 else ''} you", style="bold yellow")
            bar.append("  (! jumps)", style="dim")
        else:
            bar.append("   nothing needs you", style="dim")
        if self.repos_down:
            bar.append(f"   {self.repos_down} daemon{'s' if self.repos_down > 1 else ''} down", style="red")
        if self.clock:
            bar.append(f"   {self.clock}", style="dim")
        bar.append("   ? keys · ctrl+p commands", style="dim")
        self.update(bar, layout=False)  # one line, always


class FlashLine(Static):
    """Shows `app.flash`; every screen that has one shows the same line."""

    def on_mount(self) -> None:
        self.watch(self.app, "flash", self._show, init=True)

    def _show(self, flash: Flash) -> None:
        self.update(Text(flash.text, style=FLASH_STYLES.get(flash.level, "")), layout=False)
        self.set_class(flash.level == "error", "-error")


class KeyBar(Static):
    """The screen's main keys on one line; a click on one runs it.

    Textual's Footer rebuilds its keys whenever the focus moves (every tab switch), which costs a frame many
    times what a key press should; this bar is drawn once.
    """

    def __init__(self, keys: list[tuple[str, str, str]], *, id: str | None = None) -> None:
        """`keys`: (key as shown, what it does, action to run, e.g. "approve" or "app.inbox")."""
        super().__init__(id=id)
        self.keys = keys
        self._spans: list[tuple[int, int, str]] = []

    def on_mount(self) -> None:
        text = Text(" ")
        for shown, description, action in self.keys:
            start = text.cell_len
            text.append(f" {shown} ", style="bold reverse")
            text.append(f" {description}  ")
            self._spans.append((start, text.cell_len, action))
        self.update(text, layout=False)

    async def on_click(self, event: events.Click) -> None:
        for start, end, action in self._spans:
            if start <= event.x < end:
                await self.screen.run_action(action)
                return
