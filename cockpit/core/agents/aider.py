"""aider: one message from the prompt file, edits applied and committed, then it exits by itself.

Command line::

    aider --no-gitignore --no-check-update --no-show-release-notes --no-show-model-warnings \\
        --message-file PROMPT

`--no-gitignore` keeps aider from writing `.aider*` into the repo's `.gitignore` (which the clean-tree gate
would reject); cockpit lists `.aider*` in `.git/info/exclude` instead (at `cockpit init`, and before each
aider run for repos initialised earlier), so its chat history files stay untracked and invisible. Its
confirmations ("Add file to the chat? (Y)es/(N)o ... [Yes]:") stay on for the person to answer and are
flagged from the screen. For unattended runs use the custom backend with `aider --yes-always --message-file
{prompt_file}`.

Usage: aider prints `Tokens: 2.3k sent, 180 received. Cost: $0.01 message, $0.02 session.` after each reply.
"""

from __future__ import annotations

import re
from pathlib import Path

from cockpit.core.agents.base import Agent, Setup, Usage
from cockpit.core.excludes import exclude

EXCLUDE = ".aider*"
# No question that is about aider itself rather than the task (release notes, model warnings, updates).
FLAGS = ("--no-gitignore", "--no-check-update", "--no-show-release-notes", "--no-show-model-warnings")
# "Tokens: 2.3k sent, 1.1k cache write, 180 received. Cost: $0.01 message, $0.02 session."
_TOKENS = re.compile(r"Tokens:\s*([\d.,]+)([kKmM]?)\s+sent\b.*?([\d.,]+)([kKmM]?)\s+received")
_COST = re.compile(r"Cost:\s*\$([\d.]+)\s+message(?:,\s*\$([\d.]+)\s+session)?")


def _number(digits: str, suffix: str) -> int:
    value = float(digits.replace(",", ""))
    return round(value * {"": 1, "k": 1e3, "m": 1e6}[suffix.lower()])


def log_usage(text: str) -> Usage | None:
    """Sum aider's per-message `Tokens:` lines; the cost is the sum of the per-message costs."""
    tokens_in = tokens_out = 0
    cost = 0.0
    seen = costed = False
    for line in text.splitlines():
        found = _TOKENS.search(line)
        if found is None:
            continue
        seen = True
        tokens_in += _number(found.group(1), found.group(2))
        tokens_out += _number(found.group(3), found.group(4))
        priced = _COST.search(line)
        if priced is not None:
            costed = True
            cost += float(priced.group(1))
    if not seen:
        return None
    return Usage(tokens_in, tokens_out, round(cost, 6) if costed else None, source="aider-log")


def exclude_aider_files(git_dir: Path) -> bool:
    """List `.aider*` in the repo's `.git/info/exclude` (shared by its worktrees); True if it was added."""
    return exclude(git_dir, EXCLUDE)


class Aider(Agent):
    name = "aider"
    executable = "aider"
    reads_log = True

    def command(self, setup: Setup) -> list[str]:
        return ["aider", *FLAGS, "--message-file", str(setup.prompt_file.absolute())]

    def prepare(self, setup: Setup) -> dict[str, str]:
        if setup.git_dir is not None:
            exclude_aider_files(setup.git_dir)
        return {}

    def usage(self, setup: Setup, hint: dict[str, object], log_text: str) -> Usage | None:
        return log_usage(log_text)
