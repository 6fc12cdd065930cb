"""The `script` agent backend: deterministic automation for demos, tests and scripted chores.

A script is TOML attached to a task at creation (`cockpit task create --script FILE`)::

    [[step]]
    say = "adding the greeting"
    [[step]]
    write = { path = "src/hello.py", content = "print('hello')\\n" }
    [[step]]
    run = "python src/hello.py"
    [[step]]
    commit = "add hello"

    [[fix]]                      # optional: runs instead of the steps on a fix attempt (--fix)
    append = { path = "src/hello.py", content = "# fixed\\n" }
    [[fix]]
    commit = "fix hello"

Each `[[step]]` (or `[[fix]]`) table holds exactly one action:

- `say = "text"` prints the text.
- `write = { path, content }` / `append = { path, content }` write or append a file; the path is relative to
  the worktree and may not leave it (no absolute paths, no `..`, nothing under `.git`).
- `run = "shell command"` runs it with `bash -c` in the worktree (stdin closed); a non-zero exit fails the
  agent.
- `commit = "message"` stages everything (`git add -A`) and commits; with nothing to commit it says so and
  goes on.
- `ask = "question (y/n)"` prints the question and an `answer [y/n]:` prompt, then reads one line from stdin;
  a line starting with `n` is a "no": the step after the question is skipped and the agent goes on (a no is
  an answer, not a failure). End of input fails the agent; anything else goes on.
- `sleep = 0.5` waits that many seconds.
- `fail = "reason"` fails the agent with that reason.
- `done = "message"` reports that the work is done (a `done` signal, like `$COCKPIT_HOOK done`), and goes on.
- `turn = "message"` reports the end of a turn with those last words (a `turn_ended` signal, like an
  interactive agent's hook): without a done report the task then waits for a person.

`session = true` (top level) keeps the agent open after its steps, like an interactive agent's session: it
reads one line at a time from its pane, runs `[[fix]]` for a line that names a fix prompt (`...-fix.md`) and
`[[rework]]` for any other line (a reviewer's request), and exits 0 at end of input or on `/exit`.

Run as `python -m cockpit.core.script_agent --script FILE --task-id N --signals DIR [--fix] [--plan-file F]`
with the worktree as the current directory. Each action is printed (`[step 2/5] write src/app.py`), and each
step writes a `progress` signal `{"step": i, "total": n, "text": ...}` to `--signals`; `ask` also writes
`needs_input` and then `resolved`, and the run ends with an `exited` signal `{"code": rc, "reason": ...}`.
Exit status: 0 on success, 1 when the agent failed (the reason is printed), 2 for a bad command line or
script.

With no `--script`, the agent writes the plan (the text of `--plan-file`, else a stub) to
`docs/tasks/task-<id>.md` and commits it. With `--fix` it runs `[[fix]]`, or the steps again if there is none.
Commits use the configured git identity, or "cockpit script agent" when none is configured, and are never
signed.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from cockpit.core.errors import UsageError
from cockpit.core.signals import write_signal

ACTIONS: tuple[str, ...] = (
    "say", "write", "append", "run", "commit", "ask", "sleep", "fail", "done", "turn",
)  # fmt: skip
TOP_LEVEL: tuple[str, ...] = ("step", "fix", "rework", "session")
FILE_KEYS: tuple[str, ...] = ("path", "content")
FALLBACK_NAME = "cockpit script agent"
FALLBACK_EMAIL = "script-agent@cockpit.invalid"


@dataclass(frozen=True)
class Action:
    kind: str
    text: str = ""
    path: str = ""
    content: str = ""
    seconds: float = 0.0

    def describe(self) -> str:
        """One legible line for the pane and the progress signal."""
        if self.kind in ("write", "append"):
            return f"{self.kind} {self.path}"
        if self.kind == "sleep":
            return f"sleep {self.seconds:g}s"
        first = self.text.strip().splitlines()[0] if self.text.strip() else ""
        if len(first) > 72:
            first = first[:71] + "…"
        return f"{self.kind} {first}".rstrip()


@dataclass(frozen=True)
class Script:
    steps: tuple[Action, ...]
    fix: tuple[Action, ...] = ()
    rework: tuple[Action, ...] = ()
    session: bool = False


class AgentFailed(Exception):
    """The script agent failed; the message says why."""


# --------------------------------------------------------------------------------------------------- parsing


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return "a date/time"


def check_relative_path(path: str) -> str | None:
    """Why `path` may not be written by a script, or None when it is a plain path inside the worktree."""
    if not path.strip():
        return "path is empty"
    if "\\" in path or "\0" in path:
        return f"path {path!r} has a backslash or NUL byte"
    pure = PurePosixPath(path)
    if pure.is_absolute() or path.startswith("~"):
        return f"path {path!r} is absolute: give a path relative to the worktree"
    if ".." in pure.parts:
        return f"path {path!r} leaves the worktree (..)"
    if not pure.parts or pure.parts == (".",):
        return f"path {path!r} does not name a file"
    if pure.parts[0] == ".git":
        return f"path {path!r} is inside .git"
    return None


def _parse_action(table: Any, where: str) -> Action:
    if not isinstance(table, dict):
        raise UsageError(f"{where}: must be a table holding one action, not {_type_name(table)}")
    keys = list(table)
    if not keys:
        raise UsageError(f"{where}: empty step: give exactly one action ({', '.join(ACTIONS)})")
    unknown = [k for k in keys if k not in ACTIONS]
    if unknown:
        raise UsageError(f"{where}: unknown action {unknown[0]!r} (expected one of {', '.join(ACTIONS)})")
    if len(keys) > 1:
        count = "two" if len(keys) == 2 else str(len(keys))
        raise UsageError(
            f"{where}: {count} actions in one step ({', '.join(keys)}): put each action in its own table"
        )
    kind = keys[0]
    value = table[kind]
    if kind in ("write", "append"):
        if not isinstance(value, dict):
            shape = '{ path = "...", content = "..." }'
            raise UsageError(f"{where}: {kind} must be a table {shape}, not {_type_name(value)}")
        extra = [k for k in value if k not in FILE_KEYS]
        if extra:
            raise UsageError(f"{where}: {kind}: unknown key {extra[0]!r} (expected path and content)")
        for key in FILE_KEYS:
            if key not in value:
                raise UsageError(f"{where}: {kind}: missing {key}")
            if not isinstance(value[key], str):
                raise UsageError(f"{where}: {kind}: {key} must be a string, not {_type_name(value[key])}")
        problem = check_relative_path(value["path"])
        if problem:
            raise UsageError(f"{where}: {kind}: {problem}")
        return Action(kind, path=value["path"], content=value["content"])
    if kind == "sleep":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{where}: sleep must be a number of seconds, not {_type_name(value)}")
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"{where}: sleep must be zero or more seconds, not {value}")
        return Action(kind, seconds=float(value))
    if not isinstance(value, str):
        raise UsageError(f"{where}: {kind} must be a string, not {_type_name(value)}")
    if kind in ("run", "commit", "ask", "fail") and not value.strip():
        raise UsageError(f"{where}: {kind} must not be empty")
    return Action(kind, text=value)


def _parse_list(doc: dict[str, Any], key: str, source: str) -> tuple[Action, ...]:
    raw = doc.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise UsageError(
            f"{source}: {key} must be an array of tables: write [[{key}]], not {_type_name(raw)}"
        )
    return tuple(_parse_action(table, f"{source}: {key} {i}") for i, table in enumerate(raw, 1))


def parse_script(text: str, *, source: str = "script") -> Script:
    """Parse and validate a script; a UsageError names the step at fault ("script.toml: step 3: ...")."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML: {exc}") from None
    unknown = [k for k in doc if k not in TOP_LEVEL]
    if unknown:
        raise UsageError(
            f"{source}: unknown top-level key {unknown[0]!r} "
            "(a script holds [[step]] tables, optional [[fix]] and [[rework]] tables, and session)"
        )
    steps = _parse_list(doc, "step", source)
    if not steps:
        raise UsageError(f"{source}: no steps: a script needs at least one [[step]] table")
    session = doc.get("session", False)
    if not isinstance(session, bool):
        raise UsageError(f"{source}: session must be true or false, not {_type_name(session)}")
    return Script(
        steps=steps, fix=_parse_list(doc, "fix", source), rework=_parse_list(doc, "rework", source),
        session=session,
    )  # fmt: skip


def load_script(path: Path) -> Script:
    """Read and parse a script file; errors name the file (and the step)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"script file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read script {path}: {exc}") from None
    return parse_script(text, source=path.name)


def plan_script(task_id: int, plan_text: str) -> Script:
    """What the agent does with no script: write the plan to docs/tasks/task-<id>.md and commit it."""
    return Script(
        steps=(
            Action("write", path=f"docs/tasks/task-{task_id}.md", content=plan_text),
            Action("commit", text=f"task {task_id}: add the plan"),
        )
    )


def stub_plan(task_id: int) -> str:
    return f"# Task {task_id}\n\nNo plan was given to the script agent.\n"


# --------------------------------------------------------------------------------------------------- running


class Runner:
    """Runs actions in `cwd`, printing each one and reporting progress through signal files."""

    def __init__(
        self,
        task_id: int,
        *,
        cwd: Path,
        signals_dir: Path | None = None,
        out: TextIO | None = None,
        inp: TextIO | None = None,
    ) -> None:
        self.task_id = task_id
        self.cwd = cwd
        self.signals_dir = signals_dir
        self.out = out if out is not None else sys.stdout
        self.inp = inp if inp is not None else sys.stdin
        self._git_env: dict[str, str] | None = None

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def signal(self, kind: str, data: dict[str, Any]) -> None:
        if self.signals_dir is None:
            return
        try:
            write_signal(self.signals_dir, self.task_id, kind, data)
        except OSError as exc:  # reporting must never break the work itself
            self.say(f"(could not write a {kind} signal: {exc})")

    def run(self, actions: Sequence[Action], label: str = "step") -> None:
        total = len(actions)
        skip_next = False
        for i, action in enumerate(actions, 1):
            text = action.describe()
            if skip_next:
                skip_next = False
                self.say(f"[{label} {i}/{total}] skipped (answered no): {text}")
                skipped = {"step": i, "total": total, "text": f"skipped: {text}", "phase": label}
                self.signal("progress", skipped)
                continue
            self.say(f"[{label} {i}/{total}] {text}")
            self.signal("progress", {"step": i, "total": total, "text": text, "phase": label})
            try:
                if action.kind == "ask":
                    skip_next = not self._do_ask(action, i)
                else:
                    self._do(action, i)
            except AgentFailed as exc:
                raise AgentFailed(f"{label} {i}/{total}: {exc}") from None

    # Each action -----------------------------------------------------------------------------------------

    def _do(self, action: Action, index: int) -> None:
        handler = getattr(self, f"_do_{action.kind}")
        handler(action, index)

    def _do_say(self, action: Action, index: int) -> None:
        # The step line shows the first line; print the whole text when that was not all of it.
        if action.describe() != f"say {action.text.strip()}".rstrip():
            for line in action.text.splitlines():
                self.say(f"    {line}")

    def _target(self, rel: str) -> Path:
        problem = check_relative_path(rel)
        if problem:
            raise AgentFailed(problem)
        target = self.cwd / rel
        root = self.cwd.resolve()
        # The whole path, its last part included: a committed symlink may be the file itself.
        resolved = target.resolve()
        if resolved == root or root not in resolved.parents:
            raise AgentFailed(f"path {rel!r} leaves the worktree through a symbolic link")
        return resolved

    def _do_write(self, action: Action, index: int) -> None:
        self._write(action, "w")

    def _do_append(self, action: Action, index: int) -> None:
        self._write(action, "a")

    def _write(self, action: Action, mode: str) -> None:
        target = self._target(action.path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a link put in place after the check above is not followed either.
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if mode == "a" else os.O_TRUNC)
            with open(os.open(target, flags, 0o666), mode, encoding="utf-8", newline="") as fh:
                fh.write(action.content)
        except OSError as exc:
            raise AgentFailed(f"cannot {action.kind} {action.path}: {exc.strerror or exc}") from None
        self.say(f"    {len(action.content.encode())} bytes {'written to' if mode == 'w' else 'appended to'} "
                 f"{action.path}")

    def _do_run(self, action: Action, index: int) -> None:
        self.say(f"    $ {action.text}")
        try:
            self.out.fileno()
            direct = True
        except (AttributeError, OSError, ValueError):
            direct = False  # not a real file (a test's StringIO): capture and print instead
        try:
            proc = subprocess.run(
                ["bash", "-c", action.text], cwd=self.cwd, stdin=subprocess.DEVNULL,
                stdout=self.out if direct else subprocess.PIPE, stderr=subprocess.STDOUT,
                text=not direct, check=False,
            )
        except OSError as exc:
            raise AgentFailed(f"cannot run `{action.text}`: {exc}") from None
        if not direct and proc.stdout:
            print(proc.stdout, end="", file=self.out, flush=True)
        if proc.returncode == 127:
            raise AgentFailed(f"`{action.text}` failed: command not found (exit 127)")
        if proc.returncode != 0:
            raise AgentFailed(f"`{action.text}` exited with code {proc.returncode}")

    def _env_for_git(self) -> dict[str, str]:
        if self._git_env is None:
            env = dict(os.environ)
            for key, env_vars, fallback in (
                ("user.name", ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"), FALLBACK_NAME),
                ("user.email", ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"), FALLBACK_EMAIL),
            ):
                configured = subprocess.run(
                    ["git", "config", "--get", key], cwd=self.cwd, capture_output=True, text=True, check=False
                )
                if configured.returncode != 0 or not configured.stdout.strip():
                    for var in env_vars:
                        env.setdefault(var, fallback)
            self._git_env = env
        return self._git_env

    def _git(self, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["git", *args], cwd=self.cwd, env=self._env_for_git(), stdin=subprocess.DEVNULL,
                capture_output=True, text=True, check=False,
            )
        except OSError as exc:
            raise AgentFailed(f"cannot run git: {exc}") from None

    def _do_commit(self, action: Action, index: int) -> None:
        added = self._git("add", "-A")
        if added.returncode != 0:
            raise AgentFailed(f"git add failed: {(added.stderr or added.stdout).strip()}")
        staged = self._git("diff", "--cached", "--quiet")
        if staged.returncode == 0:
            self.say("    nothing to commit; going on")
            return
        done = self._git("commit", "-q", "--no-gpg-sign", "-m", action.text)
        if done.returncode != 0:
            raise AgentFailed(f"git commit failed: {(done.stderr or done.stdout).strip()}")
        sha = self._git("rev-parse", "--short", "HEAD").stdout.strip()
        self.say(f"    committed {sha}: {action.text.splitlines()[0]}")

    def _do_ask(self, action: Action, index: int) -> bool:
        """Ask and read the answer; False for a no."""
        self.say(f"    {action.text}")
        self.signal("needs_input", {"question": action.text, "step": index})
        print("    waiting for input: answer [y/n]: ", end="", file=self.out, flush=True)
        line = self.inp.readline()
        if not line:
            self.say("")
            raise AgentFailed(f"no answer to {action.text!r}: input closed")
        answer = line.strip()
        self.signal("resolved", {"answer": answer, "step": index})
        if not self._is_tty():
            self.say(answer)  # echo what was read when no terminal did it
        if answer.lower().startswith("n"):
            self.say(f"    answered {answer!r}: skipping the next step")
            return False
        self.say("    going on")
        return True

    def _is_tty(self) -> bool:
        try:
            return self.inp.isatty()
        except (AttributeError, ValueError):
            return False

    def _do_sleep(self, action: Action, index: int) -> None:
        time.sleep(action.seconds)

    def _do_fail(self, action: Action, index: int) -> None:
        raise AgentFailed(action.text)

    def _do_done(self, action: Action, index: int) -> None:
        data: dict[str, Any] = {"source": "agent"}
        if action.text.strip():
            data["message"] = action.text.strip()
        self.signal("done", data)

    def _do_turn(self, action: Action, index: int) -> None:
        self.signal("turn_ended", {"source": "hook", "message": action.text.strip()})

    def session(self, script: Script) -> None:
        """Stay open like an interactive agent: each line read is a new request (a fix or a rework)."""
        while True:
            self.say("script agent: waiting for a request (end of input or /exit ends the session)")
            line = self.inp.readline()
            if not line or line.strip() == "/exit":
                return
            request = line.strip()
            if not request:
                continue
            self.signal("resolved", {"source": "agent"})
            if "-fix.md" in request:
                actions, label = (script.fix or script.steps), "fix"
            else:
                actions, label = script.rework, "rework"
            self.say(f"script agent: request: {request[:200]}")
            self.run(actions, label)


# --------------------------------------------------------------------------------------------------- main


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cockpit.core.script_agent",
        description="Run a cockpit task script (or commit the plan) in the current worktree.",
    )
    parser.add_argument("--script", type=Path, help="the TOML script; without it the plan is committed")
    parser.add_argument("--task-id", type=int, required=True)
    parser.add_argument("--signals", type=Path, help="the signals directory to report progress to")
    parser.add_argument("--fix", action="store_true", help="run the [[fix]] steps (or the steps again)")
    parser.add_argument("--plan-file", type=Path, help="with no --script: the plan to write and commit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    task_id: int = args.task_id
    cwd = Path.cwd()
    runner = Runner(task_id, cwd=cwd, signals_dir=args.signals)
    try:
        if args.script is not None:
            script = load_script(args.script)
            source = args.script.name
        else:
            if args.plan_file is not None:
                try:
                    plan_text = args.plan_file.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    raise UsageError(f"cannot read the plan file {args.plan_file}: {exc}") from None
            else:
                plan_text = stub_plan(task_id)
            script = plan_script(task_id, plan_text)
            source = "the built-in plan script"
    except UsageError as exc:
        print(f"script agent: {exc.message}", file=sys.stderr, flush=True)
        runner.signal("exited", {"code": 2, "reason": exc.message})
        return 2

    if args.fix:
        actions, label = (script.fix, "fix") if script.fix else (script.steps, "step")
    else:
        actions, label = script.steps, "step"
    mode = "fix attempt" if args.fix else "run"
    runner.say(f"cockpit script agent: task {task_id}, {mode}: {len(actions)} {label}s from {source}")
    try:
        runner.run(actions, label)
        if script.session:
            runner.session(script)
    except AgentFailed as exc:
        reason = str(exc)
        runner.say(f"script agent FAILED: {reason}")
        runner.signal("exited", {"code": 1, "reason": reason})
        return 1
    except KeyboardInterrupt:
        runner.say("script agent interrupted")
        runner.signal("exited", {"code": 130, "reason": "interrupted"})
        return 130
    runner.say(f"script agent done: {len(actions)} {label}s")
    runner.signal("exited", {"code": 0, "reason": None})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
