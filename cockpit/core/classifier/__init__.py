"""Classify a task (small / large / ambiguous / reject) and plan it.

Two classifiers share one result type, `Classification`:

* **An external command** (`[classifier] command` in `.cockpit/config.toml`, e.g. ``claude -p``). The command
  string is split with `shlex.split` and run without a shell, in its own session (process group). The prompt
  from `build_prompt` is **always written to its stdin**; in addition, every argument that contains the
  placeholder ``{prompt}`` gets the prompt substituted there (``claude -p {prompt}`` passes it as an argument
  too). Whatever the command prints on stdout is searched for the first balanced JSON object that parses
  (prose before and after it, a ```` ```json ```` fence and braces inside strings are fine; a wrapper of the
  form ``{"result": "<text>"}`` such as ``claude -p --output-format json`` prints is unwrapped once).
  The object must look like::

      {"scope": "small|large|ambiguous|reject", "reason": "...", "title": "... (optional)",
       "plan": [{"n": 1, "verb": "add", "description": "...", "peer": null, "depends_on": []}],
       "questions": ["..."]}

  Lenient where nothing depends on it: a missing ``n`` is the step's position, missing ``depends_on`` /
  ``plan`` / ``questions`` are empty, a missing title comes from the description, verbs, scopes and peer
  names are case-insensitive, a rejected task's plan is dropped. Strict where the rest of the system
  depends on it: the scope must be one of `SCOPES`, every verb one of `VERBS`, every step needs a
  description, step numbers are unique, ``depends_on`` names only earlier steps, a ``delegate`` step names a
  peer of the workspace (and only delegate steps name one), a small task may not delegate, a small or large
  task has at least one step and an ambiguous one at least one question. A valid answer is returned with
  ``classifier="command:<argv[0]'s base name>"`` (``command:claude``).

  On **any** failure (bad command syntax, executable missing, non-zero exit, timeout, output over 1 MiB, no
  JSON, invalid JSON, schema violation) the result is the heuristic's, with ``classifier="heuristic"`` and
  ``fallback_reason`` saying exactly what went wrong. On timeout (or when the caller is cancelled) the whole
  process group is killed with SIGKILL and the command is reaped, so nothing is left behind. A command that
  answers and exits but leaves a child holding its stdout is not a hang: after a short grace the rest of its
  group is killed and what it printed is the answer.
* **The built-in heuristic** (`classify_heuristic`, in `heuristic`): deterministic, offline, no model.

The package, by duty: `heuristic` (the rules and the plan they make), `clauses` (the text read as clauses),
`vocabulary` (the words the rules know), `danger` (what is rejected or never small), `prompt` (what the
command is asked), `schema` (reading and checking its answer), `runner` (running it), `titles`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from cockpit.core.classifier.clauses import normalise_text
from cockpit.core.classifier.heuristic import classify_heuristic
from cockpit.core.classifier.prompt import build_prompt
from cockpit.core.classifier.runner import MAX_OUTPUT_BYTES, run_command
from cockpit.core.classifier.schema import (
    Unusable,
    extract_json,
    extract_json_object,
    parse_classification,
    validate_answer,
)
from cockpit.core.classifier.titles import make_title
from cockpit.core.models import Classification

__all__ = [
    "MAX_OUTPUT_BYTES",
    "PROMPT_PLACEHOLDER",
    "build_prompt",
    "classify",
    "classify_heuristic",
    "extract_json_object",
    "make_title",
    "normalise_text",
    "parse_classification",
]

log = logging.getLogger(__name__)

PROMPT_PLACEHOLDER = "{prompt}"
INLINE_CLASSIFY_CHARS = 2048  # longer texts are classified in a thread, off the caller's event loop


async def classify(
    description: str,
    peers: Sequence[str],
    *,
    command: str = "",
    timeout_s: float = 60.0,
    cwd: Path | None = None,
    answers: Sequence[str] = (),
    repo_name: str = "",
) -> Classification:
    """Classify with `command` (see the module docstring), or with the heuristic when it is empty or fails.

    Never raises for a misbehaving command: the heuristic's answer comes back with `fallback_reason` set.
    An empty description is rejected by the heuristic without running the command.
    """
    # Off the caller's loop when it could take a moment (linear, but 64 KiB is about a second); a short
    # text takes well under a millisecond, less than the hop to a thread.
    if len(description) + sum(len(a) for a in answers) > INLINE_CLASSIFY_CHARS:
        heuristic = await asyncio.to_thread(classify_heuristic, description, peers, answers=answers)
    else:
        heuristic = classify_heuristic(description, peers, answers=answers)
    if not command.strip() or not description.strip():
        return heuristic

    def fallback(reason: str) -> Classification:
        log.warning("classifier fell back to the heuristic: %s", reason)
        return replace(heuristic, classifier="heuristic", fallback_reason=reason)

    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return fallback(f"classifier command is not valid shell syntax ({exc}): {command}")
    if not argv:
        return fallback("classifier command is empty after parsing")
    prompt = build_prompt(description, peers, repo_name=repo_name, answers=answers)
    argv = [arg.replace(PROMPT_PLACEHOLDER, prompt) for arg in argv]
    label = f"command:{os.path.basename(argv[0]) or argv[0]}"
    try:
        output = await run_command(argv, prompt, timeout_s, cwd)
        obj = extract_json(output)
        try:
            result = validate_answer(obj, peers, description=description, classifier=label)
        except Unusable as exc:
            raise Unusable(f"classifier command returned an invalid answer: {exc}") from None
    except Unusable as exc:
        return fallback(str(exc))
    return result
