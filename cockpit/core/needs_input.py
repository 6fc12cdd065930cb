"""Tell "the agent waits for a person" from "the agent is working" by reading its pane.

The daemon captures the agent's pane (`capture-pane -p`) and feeds the lines to a `NeedsInputDetector`. Only
the bottom of the screen matters, where a prompt sits; each pattern group has its own window, counted in
non-empty lines from the bottom:

- full-screen agents (claude, codex, gemini) draw a permission dialog of several lines with a footer, so their
  patterns look at the last 15 lines; the dialog disappears once answered, so a stale match cannot linger;
- line-based prompts (aider's `(Y)es/(N)o ... [Yes]:`, a shell's `[y/N]`, `Password:`) are anchored at the end
  of the line and looked for in the last few lines only: once answered the answer follows the prompt on its
  line and later output pushes it up, so an answered prompt stops matching;
- a repo's extra patterns (`[agent] needs_input_patterns`) look at the last 15 lines, as written (add `(?i)`
  for case-insensitivity).

Claude Code, Codex and Gemini also show "esc to interrupt" (or ctrl+c) while they work: when that is on the
last lines the agent is busy, whatever else is on screen. The idle input box of these agents is not treated as
waiting: it is on screen while they work too.

Detection is debounced: a match must be seen in `confirm_after` consecutive captures with the same bottom text
before the state flips to waiting, so one stray line printed in passing never does. It flips back as soon as
no prompt matches, or when new output has pushed the prompt line up (the prompt was answered).

Prompt texts come from the agents' own UIs: Claude Code's permission dialogs ("Do you want to proceed?", "❯ 1.
Yes", "No, and tell Claude what to do differently", "Esc to cancel"); Codex's approval overlay ("Would you
like to run the following command?", "Yes, proceed (y)", "No, and tell Codex what to do differently", "Press
enter to confirm or esc to cancel"); aider's confirm_ask ("Add file to the chat? (Y)es/(N)o/...[Yes]:");
Gemini CLI's tool confirmation ("Allow execution of ...?", "Apply this change?", "Allow once").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from cockpit.core.errors import UsageError

BUILTIN_PATTERNS: dict[str, list[str]] = {
    "claude": [
        r"Do you want to (proceed|make this edit|create|allow|run|use)\b",
        r"No, and tell Claude what to do differently",
        r"❯\s*1\.\s*Yes",
        r"\b1\.\s*Yes, (proceed|allow|and)\b",
        r"Yes, allow (once|always)",
        r"Do you trust the files in this folder\?",
        r"Esc to cancel",
        r"Enter to (confirm|select)",
        r"Allow this MCP server",
        r"Would you like to proceed\?",
        r"Do you want to use this API key\?",
    ],
    "codex": [
        r"Would you like to (run the following command|make the following edits|grant these permissions)\?",
        r"Allow command\?",
        r"Yes, proceed\b",
        r"No, and tell Codex what to do differently",
        r"Press enter to confirm or esc to cancel",
        r"Approve (this|the) (command|patch|change)s?\?",
        # The trust dialog of a folder Codex has not seen (every new worktree of an untrusted repo).
        r"Trust this folder\?",
        r"Do you trust the (contents|files) (of|in) this (directory|folder)\?",
    ],
    "gemini": [
        r"Allow execution( of)?\b.*\?",
        r"Apply this change\?",
        r"Do you want to proceed\?",
        r"\b\d\.\s*(Yes, )?allow (once|always|for this session)",
        r"No, suggest changes",
        r"Waiting for user confirmation",
        # The folder trust dialog (every new worktree of a repo the person has not trusted).
        r"Do you trust (the files in )?this folder\?",
        r"Trust (this )?folder",
    ],
    "aider": [
        # confirm_ask: "Add file to the chat? (Y)es/(N)o/(A)ll/(S)kip all/(D)on't ask again [Yes]: "
        r"\(Y\)es/\(N\)o\b.*:\s*$",
        r"\[(Yes|No|All|Skip all|Don't ask again)\]:\s*$",
        r"\b(Add .+ to the chat|Create new file|Run shell commands?|Attempt to fix .+|Fix .+ errors)\?\s*$",
    ],
    "generic": [
        r"[\[(]\s*y(es)?\s*/\s*n(o)?\s*[\])]\s*[:?>]?\s*$",
        r"\byes/no\b\??\s*[:?>]?\s*$",
        r"\b(continue|proceed|overwrite|are you sure)\b[^\n]*\?\s*[:>]?\s*$",
        r"press (enter|return|any key)\b.*$",
        r"\b(password|passphrase|pin)( for [^:]*)?:\s*$",
        r"waiting for input\b.*[:?]\s*$",
    ],
}

# How many non-empty lines from the bottom each builtin group looks at.
WINDOWS: dict[str, int] = {"claude": 15, "codex": 15, "gemini": 15, "aider": 3, "generic": 2}
EXTRA_WINDOW = 15
BUSY_PATTERNS: dict[str, list[str]] = {
    "claude": [r"(esc|ctrl\+c) to interrupt"],
    "codex": [r"(esc|ctrl\+c) to interrupt"],
    "gemini": [r"esc to cancel, \d+s"],
}
BUSY_WINDOW = 6
SCREEN_LINES = 15

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def clean_lines(lines: Sequence[str], limit: int = SCREEN_LINES) -> list[str]:
    """The last `limit` non-empty lines, without ANSI escapes, trailing spaces or non-breaking spaces."""
    out: list[str] = []
    for raw in reversed(lines):
        for part in reversed(raw.split("\n")):
            line = _ANSI.sub("", part).replace("\u00a0", " ").replace("\r", "").rstrip()
            if line.strip():
                out.append(line)
                if len(out) >= limit:
                    return out[::-1]
    return out[::-1]


def matches(lines: Sequence[str], patterns: Sequence[re.Pattern[str]]) -> str | None:
    """The bottom-most line that any pattern matches (searched anywhere in the line), or None."""
    for line in reversed(lines):
        if any(p.search(line) for p in patterns):
            return line
    return None


def _compile(patterns: Sequence[str], flags: int = re.IGNORECASE) -> list[re.Pattern[str]]:
    return [re.compile(p, flags) for p in patterns]


@dataclass(frozen=True)
class _Match:
    line: str
    from_bottom: int  # 0 = the last non-empty line


class NeedsInputDetector:
    """Debounced needs-input state for one agent pane; feed it each capture."""

    def __init__(self, agent: str, extra_patterns: Sequence[str] = (), *, confirm_after: int = 2) -> None:
        if confirm_after < 1:
            raise UsageError(f"confirm_after must be at least 1, not {confirm_after}")
        self.agent = agent
        self.confirm_after = confirm_after
        groups = [agent, "generic"] if agent in BUILTIN_PATTERNS and agent != "generic" else ["generic"]
        self._groups: list[tuple[int, list[re.Pattern[str]]]] = [
            (WINDOWS[g], _compile(BUILTIN_PATTERNS[g])) for g in groups
        ]
        extras: list[re.Pattern[str]] = []
        for pattern in extra_patterns:
            try:
                extras.append(re.compile(pattern))
            except re.error as exc:
                raise UsageError(f"invalid needs_input pattern {pattern!r}: {exc}") from None
        if extras:
            self._groups.append((EXTRA_WINDOW, extras))
        self._busy = _compile(BUSY_PATTERNS.get(agent, []))
        self._waiting = False
        self._candidate: tuple[str, ...] | None = None
        self._seen = 0
        self._confirmed: _Match | None = None
        self._confirmed_screen: tuple[str, ...] = ()
        self.last_match: str | None = None

    @property
    def waiting(self) -> bool:
        return self._waiting

    def match(self, lines: Sequence[str]) -> str | None:
        """The prompt line visible in this capture, ignoring debounce (None while busy or with no prompt)."""
        found = self._match(clean_lines(lines))
        return found.line if found else None

    def _match(self, screen: list[str]) -> _Match | None:
        if self._busy and matches(screen[-BUSY_WINDOW:], self._busy) is not None:
            return None
        best: _Match | None = None
        for window, patterns in self._groups:
            tail = screen[-window:]
            for offset, line in enumerate(reversed(tail)):
                if any(p.search(line) for p in patterns):
                    if best is None or offset < best.from_bottom:
                        best = _Match(line, offset)
                    break
        return best

    def feed(self, lines: Sequence[str]) -> bool | None:
        """Feed one capture. True when the state flips to waiting, False when it flips back, else None."""
        screen = clean_lines(lines)
        found = self._match(screen)
        key = tuple(screen)
        self.last_match = found.line if found else None
        if self._waiting:
            answered = (
                found is not None
                and self._confirmed is not None
                and key != self._confirmed_screen
                and found.line == self._confirmed.line
                and found.from_bottom > self._confirmed.from_bottom
            )
            if found is None or answered:
                self._waiting = False
                self._confirmed = None
                self._candidate, self._seen = None, 0
                return False
            return None
        if found is None:
            self._candidate, self._seen = None, 0
            return None
        if key == self._candidate:
            self._seen += 1
        else:
            self._candidate, self._seen = key, 1
        if self._seen >= self.confirm_after:
            self._waiting = True
            self._confirmed = found
            self._confirmed_screen = key
            self._candidate, self._seen = None, 0
            return True
        return None
