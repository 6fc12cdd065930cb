"""The top bar (workspace, inbox, clock) and the flash line (the last action's outcome, inline)."""

from __future__ import annotations

import time

from rich.text import Text
from textual import events
from textual.widgets import Static

from cockpit.tui.messages import Flash
from cockpit.tui.usage import Usage, short_text

FLASH_STYLES = {"info": "", "ok": "green", "warning": "yellow", "error": "bold red"}


class StatusBar(Static):
    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.waiting = 0
        self.repos_down = 0
        self.clock = ""
        self.usage: tuple[str, Usage, Usage] | None = None  # (active repo, its usage, the day's in all repos)

    def set_counts(self, waiting: int, repos_down: int) -> None:
        if (waiting, repos_down) != (self.waiting, self.repos_down):
            self.waiting, self.repos_down = waiting, repos_down
            self._render_bar()

    def set_usage(self, repo: str | None, repo_usage: Usage, day_usage: Usage) -> None:
        usage = (repo, repo_usage, day_usage) if repo is not None and (repo_usage or day_usage) else None
        if usage != self.usage:
            self.usage = usage
            self._render_bar()

    def set_clock(self, now: float | None) -> None:
        text = time.strftime("%H:%M", time.localtime(now)) if now is not None else ""
        if text != self.clock:
            self.clock = text
            self._render_bar()

    def on_mount(self) -> None:
        self._render_bar()

    def on_resize(self, event: events.Resize) -> None:
        self._render_bar()

    def _render_bar(self) -> None:
        width = self.size.width or 160
        bar = Text.assemble((" ◆ cockpit ", "bold reverse"), (f" {self.title}", "bold"))
        if self.waiting:
            bar.append(f"   ⚑ {self.waiting} need{'s' if self.waiting == 1 else ''} you", style="bold yellow")
            if width >= 100:
                bar.append("  (! walks them)", style="dim")
        else:
            bar.append("   nothing needs you", style="dim")
        if self.repos_down:
            bar.append(f"   {self.repos_down} daemon{'s' if self.repos_down > 1 else ''} down", style="red")
        clock = f"   {self.clock}" if self.clock else ""
        if self.usage is not None:
            repo, repo_usage, day_usage = self.usage
            # As much of it as leaves room for the clock and "? keys".
            for segment in (f"   {repo} {short_text(repo_usage)} · today {short_text(day_usage)}",
                            f"   today {short_text(day_usage)}"):
                if bar.cell_len + len(segment) + len(clock) + len("   ? keys") <= width:
                    bar.append(segment, style="cyan")
                    break
        if clock:
            bar.append(clock, style="dim")
        # The help keys go last and only whole: at 80 columns "? keys" alone, never a cut "? keys ·".
        for tail in ("   ? keys · ctrl+p commands", "   ? keys"):
            if bar.cell_len + len(tail) <= width:
                bar.append(tail, style="dim")
                break
        self.update(bar, layout=False)  # one line, always


class FlashLine(Static):
    """Shows `app.flash`; every screen that has one shows the same line."""

    def on_mount(self) -> None:
        self.watch(self.app, "flash", self._show, init=True)

    def _show(self, flash: Flash) -> None:
        self.update(Text(flash.text, style=FLASH_STYLES.get(flash.level, "")), layout=False)
        self.set_class(flash.level == "error", "-error")


class KeyBar(Static):
    """The screen's main keys on one line, as many as fit the width; a click on one runs it.

    Keys marked `keep` (help, quit) are always shown, at the end; the others are dropped from the end of the
    list when the line is too short. Textual's Footer rebuilds its keys whenever the focus moves (every tab
    switch), which costs a frame many times what a key press should; this bar is drawn once per width.
    """

    KEEP = frozenset({"app.keys", "app.quit", "app.inbox"})

    def __init__(self, keys: list[tuple[str, str, str]], *, id: str | None = None) -> None:
        """`keys`: (key as shown, what it does, action to run, e.g. "approve" or "app.inbox")."""
        super().__init__(id=id)
        self.keys = keys
        self._spans: list[tuple[int, int, str]] = []
        self._width = -1

    def on_mount(self) -> None:
        self._layout(self.size.width or 1000)

    def on_resize(self, event: events.Resize) -> None:
        self._layout(event.size.width)

    def _layout(self, width: int) -> None:
        if width == self._width:
            return
        self._width = width

        def cost(key: tuple[str, str, str]) -> int:
            return len(key[0]) + len(key[1]) + 4

        kept = [k for k in self.keys if k[2] in self.KEEP]
        room = width - 1 - sum(cost(k) for k in kept)
        shown: list[tuple[str, str, str]] = []
        for key in self.keys:
            if key in kept:
                continue
            if cost(key) > room:
                break
            shown.append(key)
            room -= cost(key)
        text = Text(" ")
        self._spans = []
        for shown_key, description, action in shown + kept:
            start = text.cell_len
            text.append(f" {shown_key} ", style="bold reverse")
            text.append(f" {description}  ")
            self._spans.append((start, text.cell_len, action))
        self.update(text, layout=False)

    async def on_click(self, event: events.Click) -> None:
        for start, end, action in self._spans:
            if start <= event.x < end and action:
                await self.screen.run_action(action)
                return
