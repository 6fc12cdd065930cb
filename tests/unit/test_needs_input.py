"""Needs-input detection from pane captures: real prompts of each agent, debounce, extra patterns."""

from __future__ import annotations

import re

import pytest

from cockpit.core.errors import UsageError
from cockpit.core.needs_input import BUILTIN_PATTERNS, NeedsInputDetector, clean_lines, matches

CLAUDE_PERMISSION = """\
● I'll run the test suite to check the change.

╭──────────────────────────────────────────────────────────────────────────╮
│ Bash command                                                             │
│                                                                          │
│   pytest -q tests/unit                                                   │
│   Run the unit tests                                                     │
│                                                                          │
│ Do you want to proceed?                                                  │
│ ❯ 1. Yes                                                                 │
│   2. Yes, and don't ask again for pytest commands in /work/repo          │
│   3. No, and tell Claude what to do differently (esc)                    │
╰──────────────────────────────────────────────────────────────────────────╯


"""

CLAUDE_EDIT = """\
 Edit file
 src/app.py
 Do you want to make this edit to app.py?
 ❯ 1. Yes
   2. Yes, allow all edits during this session (shift+tab)
   3. No, and tell Claude what to do differently (esc)

 Esc to cancel
"""

CLAUDE_WORKING = """\
● Reading src/app.py
● Update(src/app.py)
  ⎿  Updated src/app.py with 3 additions
✻ Pondering… (12s · ↑ 1.2k tokens · esc to interrupt)

╭──────────────────────────────────────────────────────────────────────────╮
│ >                                                                        │
╰──────────────────────────────────────────────────────────────────────────╯
  ? for shortcuts
"""

CODEX_APPROVAL = """\
• Running pnpm exec playwright test

  Would you like to run the following command?

  Reason: May I rerun the browser tests outside the sandbox?

  $ pnpm exec playwright test

› 1. Yes, proceed (y)
  2. Yes, and don't ask again for commands that start with `pnpm exec` (p)
  3. No, and tell Codex what to do differently (esc)

  Press enter to confirm or esc to cancel
"""

AIDER_CONFIRM = """\
Aider v0.86.1
Main model: sonnet with diff edit format
Git repo: .git with 12 files
src/app.py
Add file to the chat? (Y)es/(N)o/(A)ll/(S)kip all/(D)on't ask again [Yes]: """

GEMINI_CONFIRM = """\
╭──────────────────────────────────────────────────────────────╮
│ ?  Shell npm test (run the tests)                            │
│                                                              │
│ npm test                                                     │
│                                                              │
│ Allow execution of: 'npm'?                                   │
│                                                              │
│ ● 1. Yes, allow once                                         │
│   2. Yes, allow always ...                                   │
│   3. No, suggest changes (esc)                               │
╰──────────────────────────────────────────────────────────────╯
"""

GENERIC_PROMPTS = [
    "Removing build/ ...\nOverwrite existing files? [y/N] ",
    "about to install 3 packages\nProceed (y/n)? ",
    "Do you want to continue? [Y/n]",
    "[sudo] password for dev: ",
    "Press Enter to continue...",
    "Are you sure you want to continue connecting (yes/no/[fingerprint])? ",
]


def lines(text: str) -> list[str]:
    return text.split("\n")


def flip(detector: NeedsInputDetector, capture: list[str], times: int = 2) -> list[bool | None]:
    return [detector.feed(capture) for _ in range(times)]


@pytest.mark.parametrize(
    ("agent", "screen"),
    [
        ("claude", CLAUDE_PERMISSION),
        ("claude", CLAUDE_EDIT),
        ("codex", CODEX_APPROVAL),
        ("aider", AIDER_CONFIRM),
        ("gemini", GEMINI_CONFIRM),
    ],
)
def test_each_agents_prompt_flips_after_two_captures(agent: str, screen: str) -> None:
    detector = NeedsInputDetector(agent)
    assert flip(detector, lines(screen)) == [None, True]
    assert detector.waiting
    assert detector.last_match is not None


@pytest.mark.parametrize("screen", GENERIC_PROMPTS)
@pytest.mark.parametrize("agent", ["generic", "script", "custom", "claude", "aider"])
def test_generic_prompts_are_seen_for_any_agent(agent: str, screen: str) -> None:
    detector = NeedsInputDetector(agent)
    assert flip(detector, lines(screen)) == [None, True]


def test_script_agent_ask_prompt_is_seen() -> None:
    screen = "[step 1/2] ask Deploy? (y/n)\n    Deploy? (y/n)\n    waiting for input: answer [y/n]: "
    assert flip(NeedsInputDetector("script"), lines(screen)) == [None, True]


def test_claude_at_work_is_not_waiting() -> None:
    detector = NeedsInputDetector("claude")
    assert flip(detector, lines(CLAUDE_WORKING), 3) == [None, None, None]
    busy_over_old_dialog = CLAUDE_EDIT + "\n✻ Working… (3s · esc to interrupt)\n"
    assert detector.match(lines(busy_over_old_dialog)) is None


@pytest.mark.parametrize(
    "screen",
    [
        "collected 12 items\n\ntests/test_app.py ............ [100%]\n\n12 passed in 0.31s",
        "def proceed(items):\n    return [i for i in items]\n\n# TODO: continue later",
        "Should we continue? The answer was yes.\nWriting src/app.py\nDone.",
    ],
)
def test_ordinary_output_is_not_a_prompt(screen: str) -> None:
    for agent in BUILTIN_PATTERNS:
        detector = NeedsInputDetector(agent)
        assert flip(detector, lines(screen), 3) == [None, None, None], agent


def test_one_capture_does_not_flip_and_a_changed_screen_restarts_the_count() -> None:
    detector = NeedsInputDetector("generic")
    assert detector.feed(["working", "Continue? [y/N]"]) is None
    assert detector.feed(["working", "more output"]) is None  # the prompt was a stray line
    assert detector.feed(["a", "Continue? [y/N]"]) is None
    assert detector.feed(["b", "Continue? [y/N]"]) is None  # same prompt, different bottom text
    assert not detector.waiting
    assert detector.feed(["b", "Continue? [y/N]"]) is True
    assert detector.waiting


def test_flips_back_when_the_prompt_is_answered_and_stays_quiet_when_unchanged() -> None:
    detector = NeedsInputDetector("codex")
    assert flip(detector, lines(CODEX_APPROVAL)) == [None, True]
    assert detector.feed(lines(CODEX_APPROVAL)) is None
    answered = "• Ran pnpm exec playwright test\n  └ 14 passed\n\n› Ask Codex to do anything\n"
    assert detector.feed(lines(answered)) is False
    assert not detector.waiting
    assert detector.feed(lines(answered)) is None


def test_answered_line_prompt_no_longer_matches() -> None:
    detector = NeedsInputDetector("aider")
    assert flip(detector, lines(AIDER_CONFIRM)) == [None, True]
    assert detector.feed(lines(AIDER_CONFIRM + "y")) is False


def test_prompt_pushed_up_by_new_output_flips_back() -> None:
    detector = NeedsInputDetector("custom", [r"READY FOR REVIEW"])
    screen = ["building", "READY FOR REVIEW", ""]
    assert flip(detector, screen) == [None, True]
    assert detector.feed(["building", "READY FOR REVIEW", "resuming work", "step 2"]) is False


def test_extra_patterns_and_confirm_after() -> None:
    detector = NeedsInputDetector("custom", [r"^\s*my-agent> $", r"(?i)approve\?"], confirm_after=3)
    capture = ["my-agent output", "Approve? "]
    assert flip(detector, capture, 3) == [None, None, True]
    without = NeedsInputDetector("custom", confirm_after=1)
    assert without.feed(capture) is None, "the extra pattern is what matched"
    immediate = NeedsInputDetector("custom", [r"(?i)approve\?"], confirm_after=1)
    assert immediate.feed(capture) is True


def test_invalid_extra_regex_is_named() -> None:
    with pytest.raises(UsageError, match=r"invalid needs_input pattern '\(unclosed'"):
        NeedsInputDetector("claude", ["fine", "(unclosed"])
    with pytest.raises(UsageError, match="confirm_after"):
        NeedsInputDetector("claude", confirm_after=0)


def test_unknown_agent_uses_generic_patterns() -> None:
    detector = NeedsInputDetector("some-new-agent")
    assert flip(detector, ["Continue? [y/N]"]) == [None, True]
    assert flip(NeedsInputDetector("some-new-agent"), lines(CLAUDE_EDIT)) == [None, None]


def test_only_the_bottom_of_the_screen_counts() -> None:
    old_prompt = ["Continue? [y/N] y"] + [f"line {i}" for i in range(30)]
    assert NeedsInputDetector("generic").match(old_prompt) is None
    dialog_far_up = lines(CLAUDE_PERMISSION) + [f"scrolled {i}" for i in range(20)]
    assert NeedsInputDetector("claude").match(dialog_far_up) is None


def test_ansi_escapes_and_blank_lines_are_ignored() -> None:
    capture = ["\x1b[1mOverwrite\x1b[0m existing files? \x1b[33m[y/N]\x1b[0m ", "", "   ", ""]
    assert clean_lines(capture) == ["Overwrite existing files? [y/N]"]
    assert flip(NeedsInputDetector("generic"), capture) == [None, True]


def test_matches_returns_the_bottom_most_matching_line() -> None:
    patterns = [re.compile(r"\[y/N\]"), re.compile("proceed")]
    assert matches(["a [y/N]", "b", "proceed now", "c"], patterns) == "proceed now"
    assert matches(["nothing", "here"], patterns) is None
