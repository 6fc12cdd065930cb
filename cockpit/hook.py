"""`cockpit hook needs-input|resolved|done|turn-ended`: an agent's own hooks report to cockpit.

- `needs-input` / `resolved`: the agent waits for a person (a permission dialog, a question), or no longer;
- `done [--message TEXT]`: the agent's work is finished and committed (the task's gates run next);
- `turn-ended`: the agent's turn is over (Claude Code's Stop hook, Codex's `notify`, Gemini CLI's AfterAgent);
  without a done report first, cockpit flags the task as waiting for a person with the agent's last words.
  The hook's JSON payload comes on stdin (`--stdin`) or as the last argument (Codex's notify); its last
  assistant message and transcript path travel with the signal (the transcript gives the token usage).

It only writes a signal file into the repo's `.cockpit/signals/` (the daemon watches that folder), so it works
while the daemon is down or restarting. Three ways in, one behaviour: `cockpit hook ...` (the full command
line); `python -m cockpit.hook ...` (this module, which imports next to nothing); and, inside an agent's pane,
`$COCKPIT_HOOK ...`, which is `sh cockpit/hook.sh`: plain sh, a few milliseconds, falling back to this module
for anything beyond the plain verb.

Where the signal goes, first match wins: `--repo PATH`; `$COCKPIT_SIGNALS` and `$COCKPIT_REPO` (set in every
agent pane); the repo around the current directory (a task worktree `.cockpit/worktrees/task-<id>-...` counts
as its repo). The task is `--task ID`, else `$COCKPIT_TASK_ID`, else the id in the worktree's name. With no
task to speak of (an agent running outside cockpit) it says so on stderr and exits 0: a hook must never break
the agent it runs in.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

KINDS = {"needs-input": "needs_input", "resolved": "resolved", "done": "done", "turn-ended": "turn_ended"}
# Where agents put their last words and their transcript in a hook payload.
MESSAGE_KEYS = ("last_assistant_message", "last-assistant-message", "prompt_response", "message", "reason")
PAYLOAD_KEYS = ("transcript_path", "session_id", "hook_event_name", "type", "turn-id", "thread-id")
_WORKTREE = re.compile(r"^task-(\d+)(?:-|$)")
MAX_MESSAGE = 500


class HookError(Exception):
    """The hook could not work out where to write (a usage problem, exit 2)."""


def _repo_around(start: Path) -> tuple[Path | None, int | None]:
    """(repo root, task id of the worktree we are in) walking up from `start`."""
    here = start.resolve()
    parts = here.parts
    for i in range(len(parts) - 2, 0, -1):
        if parts[i] == "worktrees" and parts[i - 1] == ".cockpit" and i + 1 < len(parts):
            match = _WORKTREE.match(parts[i + 1])
            return Path(*parts[: i - 1]), int(match.group(1)) if match else None
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate, None
    return None, None


def locate(
    repo: str | None, task: int | None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[Path, int | None]:
    """The signals folder and the task id a hook reports for."""
    env = dict(os.environ) if env is None else env
    worktree_task: int | None = None
    if repo:
        root, worktree_task = _repo_around(Path(repo))
        if root is None:
            raise HookError(f"{repo} is not inside a git repository")
        signals = root / ".cockpit" / "signals"
    elif env.get("COCKPIT_SIGNALS"):
        signals = Path(env["COCKPIT_SIGNALS"])
    elif env.get("COCKPIT_REPO"):
        signals = Path(env["COCKPIT_REPO"]) / ".cockpit" / "signals"
    else:
        root, worktree_task = _repo_around(cwd or Path.cwd())
        if root is None:
            raise HookError("not inside a git repository: pass --repo PATH")
        signals = root / ".cockpit" / "signals"
    if task is None:
        raw = env.get("COCKPIT_TASK_ID", "").strip()
        task = int(raw) if raw.isdigit() else worktree_task
    return signals, task


def message_from_stdin(stream: Any) -> str | None:
    """The `message` (or `reason`) of the JSON object on stdin (Claude Code's hook payload), else None."""
    return payload_message(read_payload(stream))


def read_payload(stream: Any) -> dict[str, Any]:
    """The JSON object on `stream` (a hook's payload); {} when it is empty or not an object."""
    try:
        return parse_payload(stream.read())
    except OSError:
        return {}


def parse_payload(text: str | None) -> dict[str, Any]:
    try:
        data = json.loads(text or "null")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def payload_message(data: dict[str, Any]) -> str | None:
    """The agent's words in a hook payload (its last assistant message, a notification's text)."""
    for key in (*MESSAGE_KEYS, "hook_event_name"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:MAX_MESSAGE]
    return None


def payload_fields(data: dict[str, Any]) -> dict[str, Any]:
    """What cockpit keeps from a hook payload besides the message (transcript path, session id...)."""
    return {key: data[key] for key in PAYLOAD_KEYS if isinstance(data.get(key), str | int)}


def record(
    kind: str,
    *,
    repo: str | None = None,
    task: int | None = None,
    message: str | None = None,
    event: str | None = None,
    payload: dict[str, Any] | None = None,
) -> tuple[Path | None, int | None]:
    """Write one signal of `kind`; returns (signal file, task id), (None, None) with no task to speak of."""
    if kind not in KINDS:
        raise HookError(f"unknown hook {kind!r}: use {', '.join(KINDS)}")
    signals, task_id = locate(repo, task)
    if task_id is None:
        return None, None
    if task_id < 1:
        raise HookError(f"task ids start at 1, not {task_id}")
    from cockpit.core.signals import write_signal

    data: dict[str, Any] = {"source": "hook", **payload_fields(payload or {})}
    if message is None and payload:
        message = payload_message(payload)
    if message:
        data["message"] = message[:MAX_MESSAGE]
    if event:
        data["event"] = event
    return write_signal(signals, task_id, KINDS[kind], data), task_id


def hook_payload(argument: str | None, stream: Any) -> dict[str, Any]:
    """The payload from an argument (Codex's notify) or from stdin (Claude Code, Gemini CLI)."""
    if argument:
        return parse_payload(argument)
    return read_payload(stream) if stream is not None else {}


TITLE_TURN = "Generate a concise, single-line task title"


def skip_payload(kind: str, payload: dict[str, Any]) -> bool:
    """Codex's notify also fires for other notifications and for its own title-generation turn: skip them."""
    if kind != "turn-ended":
        return False
    kind_of = payload.get("type")
    if isinstance(kind_of, str) and kind_of != "agent-turn-complete":
        return True
    inputs = payload.get("input-messages")
    first = inputs[0] if isinstance(inputs, list) and inputs else None
    return isinstance(first, str) and first.startswith(TITLE_TURN)


def pane_closed(signals: str, task_id: int, attempt: int) -> None:
    """The agent pane's HUP trap: report that the pane was closed under a running agent.

    Only into a signals folder that still exists: a repo deleted with its tmux server still running (a test's
    temporary repo, say) must not be re-created by the hang-up that follows.
    """
    folder = Path(signals)
    if not folder.is_dir():
        return
    from cockpit.core.signals import write_signal

    data = {
        "code": 129,
        "closed": True,
        "attempt": attempt,
        "reason": "the agent's pane was closed while it ran",
    }
    write_signal(folder, task_id, "exited", data)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="cockpit hook", description="Report an agent's state to cockpit (waiting, done, end of turn)."
    )
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--task", type=int, help="the task id (default: $COCKPIT_TASK_ID)")
    parser.add_argument("--repo", help="the repository (default: $COCKPIT_REPO, else the current one)")
    parser.add_argument("--message", help="what the agent waits for, shown with the flag")
    parser.add_argument("--event", help="the agent's hook event name, for the record")
    parser.add_argument(
        "--stdin",
        action="store_true",
        help="read the hook's JSON payload on stdin and take its message (Claude Code hooks)",
    )
    parser.add_argument("payload", nargs="?", help="the hook's JSON payload as an argument (Codex's notify)")
    # Intermixed: Codex's notify appends the payload after the options of the configured command line.
    args = parser.parse_intermixed_args(argv)
    payload = hook_payload(args.payload, sys.stdin if args.stdin else None)
    if skip_payload(args.kind, payload):
        return 0
    try:
        path, _task = record(
            args.kind, repo=args.repo, task=args.task, message=args.message, event=args.event, payload=payload
        )
    except HookError as exc:
        print(f"cockpit hook: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cockpit hook: cannot write the signal: {exc}", file=sys.stderr)
        return 1
    if path is None:
        print(
            "cockpit hook: not running as a cockpit task (no --task, no $COCKPIT_TASK_ID); nothing recorded",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
