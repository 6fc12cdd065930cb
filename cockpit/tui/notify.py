"""Telling a person that something newly needs them: a terminal notification (OSC 9 and OSC 777, which
terminals such as iTerm2, kitty, WezTerm, foot and the VTE family show), the bell, and a desktop notification
through `notify-send` where it is installed. Each can be turned off per repo (`[notify]` in the config).

A burst (a dozen tasks failing at once) makes one notification naming the first few, not a dozen.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cockpit.tui.repo_model import Attention

MAX_NAMED = 3
DESKTOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class NotifySettings:
    terminal: bool = True
    bell: bool = True
    desktop: bool = True


def _clean(text: str) -> str:
    """Text safe inside an OSC sequence: no control characters (a title could end the sequence early)."""
    return "".join(ch if ch.isprintable() else " " for ch in text).replace(";", ",")


def summary(notes: Sequence[Attention]) -> tuple[str, str]:
    """(title, body) for the notes of one burst."""
    if len(notes) == 1:
        note = notes[0]
        return f"cockpit: {note.repo}#{note.task_id} {note.why or 'needs you'}", note.title
    named = ", ".join(f"{n.repo}#{n.task_id} {n.why}".strip() for n in notes[:MAX_NAMED])
    more = f" and {len(notes) - MAX_NAMED} more" if len(notes) > MAX_NAMED else ""
    return f"cockpit: {len(notes)} things need you", named + more


def terminal_sequences(title: str, body: str, settings: NotifySettings) -> str:
    """What to write to the terminal: OSC 777 (title and body), OSC 9 (one line), the bell."""
    out = ""
    if settings.terminal:
        t, b = _clean(title), _clean(body)
        out += f"\x1b]777;notify;{t};{b}\x1b\\" + f"\x1b]9;{t}: {b}\x1b\\"
    if settings.bell:
        out += "\a"
    return out


def desktop_notify(title: str, body: str, run: Callable[..., object] = subprocess.run) -> bool:
    """`notify-send` when it is installed (thread: it runs a process). False when it is not there."""
    exe = shutil.which("notify-send")
    if exe is None:
        return False
    try:
        run([exe, "--app-name=cockpit", title, body], timeout=DESKTOP_TIMEOUT_S, check=False,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return True
