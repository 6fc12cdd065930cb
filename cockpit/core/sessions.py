"""An agent's live session in its pane: typing into it so the text is submitted, and ending it.

Typing (`submit`): agents' composers differ. "enter" types the text and presses Enter; "pause" waits a moment
between the text and the Enter (Codex's and Gemini CLI's composers drop an Enter that arrives with fast typed
text); "paste" sends the text as one bracketed paste, then Enter (multi-line text never submits half-way).
For full-screen agents the Enter is verified: when the screen has not changed shortly after it (the pane log
did not grow), or the agent's input line (the bottom-most line behind its composer mark) still holds the
text, Enter is pressed again, after a longer pause each time. Line-based programs get one Enter only.

Ending (`end_agent`): the agent's own exit first (its exit command, or Ctrl-D), then SIGTERM, then SIGKILL to
every process of the pane's session and every process carrying the agent's marker (a per-task home in its
environment), each after a grace period. Waiting uses pidfds; nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from cockpit.core import filewatch, processes
from cockpit.core.errors import TmuxError
from cockpit.core.tmux import PaneRef, TmuxPanes

PAUSE_S = 0.15  # between typed text and its Enter, for composers that drop an Enter arriving with the text
VERIFY_S = 1.5  # how long the screen may take to react to an Enter before it is pressed again
RETRIES = 3
KILL_WAIT_S = 2.0


async def _log_grows(log_path: Path, size: int, timeout: float) -> bool:  # noqa: ASYNC109
    """Wait until the pane's log is bigger than `size` (the screen changed), at most `timeout` seconds."""

    def bigger() -> bool:
        try:
            return log_path.stat().st_size > size
        except OSError:
            return False

    if bigger():
        return True
    stop = asyncio.Event()
    watcher = filewatch.awatch(log_path.parent, watch_filter=lambda _c, p: Path(p).name == log_path.name,
                               stop_event=stop, debounce=10)

    async def watch() -> bool:
        async for _ in watcher:
            if bigger():
                return True
        return False

    try:
        return await asyncio.wait_for(watch(), timeout)
    except TimeoutError:
        return bigger()
    finally:
        stop.set()
        with contextlib.suppress(BaseException):
            await watcher.aclose()


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def still_in_composer(screen: list[str], mark: str, text: str) -> bool:
    """Whether the agent's input line (the bottom-most line starting with `mark`) still holds `text`."""
    probe = " ".join(text.split())[:24]
    for line in reversed(screen):
        stripped = line.strip().lstrip("│|").strip()
        if stripped.startswith(mark):
            return bool(probe) and probe in " ".join(stripped[len(mark):].split())
    return False


async def submit(
    panes: TmuxPanes,
    pane: PaneRef,
    text: str,
    style: str,
    *,
    enter: bool = True,
    log_path: Path | None = None,
    composer: str | None = None,
) -> bool:
    """Type `text` into the agent's composer the agent's way; True when it was seen submitted."""
    if "\n" in text.strip() and style != "enter":
        style = "paste"
    if text:
        if style == "paste":
            await asyncio.to_thread(panes.paste, pane, text)
        else:
            await asyncio.to_thread(panes.send_text, pane, text, enter=False)
    if not enter:
        return True
    pause = PAUSE_S if text and style in ("pause", "paste") else 0.0
    for attempt in range(RETRIES):
        if pause:
            await asyncio.sleep(pause)  # the composer's own debounce, not a wait for a condition
        before = _size(log_path)
        try:
            await asyncio.to_thread(panes.send_keys, pane, "Enter")
        except TmuxError:
            return False
        if log_path is None or not text or composer is None:
            # A line-based program reads the Enter as typed: pressing it again would answer what comes next.
            return True
        if await _log_grows(log_path, before, VERIFY_S):
            try:
                screen = await asyncio.to_thread(panes.capture, pane, 40)
            except TmuxError:
                return False
            if not still_in_composer(screen, composer, text):
                return True
        # The Enter was swallowed (a composer that took the text as a paste burst): again, a little later.
        pause = max(pause, PAUSE_S) * (attempt + 2)
    return False


def _members(sid: int | None, marker: tuple[str, str] | None, *, live: bool) -> list[int]:
    found: set[int] = set()
    # A dead pane's session may still hold what its program left running. The kernel reuses no pid that is
    # still some live process's session id, so a live process of that pid now leads someone else's session.
    if sid and (live or not processes.alive(sid)):
        found.update(processes.session_members(sid))
    if marker is not None:
        found.update(processes.with_env(*marker))
    return sorted(found)


async def end_agent(
    panes: TmuxPanes,
    pane: PaneRef,
    *,
    exit_text: str | None,
    marker: tuple[str, str] | None = None,
    grace_s: float = 5.0,
    term_s: float = 3.0,
    graceful: bool = True,
    log_path: Path | None = None,
    composer: str | None = None,
) -> str:
    """End the agent of `pane`; return how it ended: "gone", "exit", "term" or "kill"."""
    try:
        sid = await asyncio.to_thread(panes.pane_pid, pane)
        live = await asyncio.to_thread(panes.pane_alive, pane)
    except TmuxError:
        sid, live = None, False
    pids = await asyncio.to_thread(_members, sid, marker, live=live)
    if not pids:
        return "gone"
    if graceful and live:
        try:
            if exit_text:
                await submit(panes, pane, exit_text, "pause", log_path=log_path, composer=composer)
            else:
                await asyncio.to_thread(panes.send_keys, pane, "C-d")
        except TmuxError:
            pass
        if not await processes.wait_gone(pids, grace_s):
            return "exit"
    pids = await asyncio.to_thread(_members, sid, marker, live=live) or pids
    processes.send(pids, signal.SIGTERM)
    left = await processes.wait_gone(pids, term_s)
    if not left:
        return "term"
    left = sorted(set(left) | set(await asyncio.to_thread(_members, sid, marker, live=live)))
    processes.send(left, signal.SIGKILL)
    await processes.wait_gone(left, KILL_WAIT_S)
    return "kill"
