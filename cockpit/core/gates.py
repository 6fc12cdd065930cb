"""Gates: the checks cockpit runs itself in a task's worktree before the work may be reviewed and merged.

Built-in gates run first, in this order:

- `has-commits`: the branch has commits beyond the task's base commit;
- `clean-tree`: nothing is left uncommitted (untracked files count, ignored files do not). It is the agent's
  verdict, taken before the repo's commands run: untracked files those commands leave behind (`__pycache__/`
  from `python -m py_compile`, coverage data ...) are recorded as gate artefacts in the worktree's git admin
  folder (`cockpit-gate-artefacts`) and never count against the agent when the gates run there again (a fix
  round, `cockpit task gates`, the re-gate of a rebase before a merge);
- `tdd`: changes to source files come with changes to test files. With `enabled=None` ("auto") it only applies
  to repos that have test files; without any it passes with the reason "no tests in repo". `enabled=False`
  leaves it out.

Then each configured command (`[[gates]]`) runs with `bash -c` in the worktree, stdin closed, in a session of
its own so that a timeout kills the whole process group, and so do leftovers after it exits. Combined stdout
and stderr are appended to the log file as they come, under a header per gate, with a footer giving the
verdict.

Gates fail closed: a missing command (exit 127), a command that cannot execute (126), a timeout, a signal, a
worktree that is gone or any crash of the runner is a failure with a reason. Every gate runs even when an
earlier one failed, so the person sees the whole picture. Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import os
import re
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cockpit.core.git import porcelain_entries
from cockpit.core.models import GateResult, GateSpec
from cockpit.core.processes import kill_group

BUILTIN_GATES: tuple[str, ...] = ("has-commits", "clean-tree", "tdd")
TAIL_LINES = 50
MAX_TAIL_LINE = 1000
TAIL_BYTES = 256 * 1024
KILL_GRACE_S = 2.0

DEFAULT_SOURCE_PATTERNS: tuple[str, ...] = (
    "*.py", "*.pyi",
    "*.js", "*.jsx", "*.mjs", "*.cjs", "*.ts", "*.tsx", "*.mts", "*.cts", "*.vue", "*.svelte",
    "*.go",
    "*.rs",
)
DEFAULT_TEST_PATTERNS: tuple[str, ...] = (
    # python
    "test_*.py", "*_test.py", "tests.py", "conftest.py",
    # js / ts
    "*.test.js", "*.test.jsx", "*.test.mjs", "*.test.cjs", "*.test.ts", "*.test.tsx",
    "*.spec.js", "*.spec.jsx", "*.spec.mjs", "*.spec.ts", "*.spec.tsx",
    # go
    "*_test.go",
    # any language: test directories
    "tests/*", "*/tests/*", "test/*", "*/test/*", "__tests__/*", "*/__tests__/*", "spec/*", "*/spec/*",
)


@dataclass
class TddRule:
    """When changes to source files must come with changes to test files.

    Patterns are fnmatch globs: one without a `/` is matched against the file name, one with a `/` against
    the whole repo-relative path (where `*` also matches `/`). A file matching a test pattern is a test file,
    never a source file.
    """

    enabled: bool | None = None  # None = auto: on only if the repo has test files
    source_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_SOURCE_PATTERNS))
    test_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_TEST_PATTERNS))

    @classmethod
    def from_settings(
        cls, enabled: bool | None, source_patterns: Sequence[str] = (), test_patterns: Sequence[str] = ()
    ) -> TddRule:
        """Build from `[tdd]` settings, where an empty list means the defaults."""
        return cls(
            enabled=enabled,
            source_patterns=list(source_patterns) or list(DEFAULT_SOURCE_PATTERNS),
            test_patterns=list(test_patterns) or list(DEFAULT_TEST_PATTERNS),
        )

    def is_test(self, path: str) -> bool:
        return _matches_any(path, self.test_patterns)

    def is_source(self, path: str) -> bool:
        return not self.is_test(path) and _matches_any(path, self.source_patterns)


def _matches_any(path: str, patterns: Sequence[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    for pattern in patterns:
        target = path if "/" in pattern else name
        if fnmatch.fnmatchcase(target, pattern):
            return True
    return False


# ------------------------------------------------------------------------------------------------- plumbing


def tail_lines(text: str, n: int = TAIL_LINES) -> list[str]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    out = lines[-n:] if n > 0 else []
    return [line if len(line) <= MAX_TAIL_LINE else line[: MAX_TAIL_LINE - 1] + "…" for line in out]


async def _git(worktree: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=worktree, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


class _Log:
    """Appends to the gate log; a log that cannot be written never fails a gate (the result says it all)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.error = str(exc)

    def write(self, data: bytes | str) -> None:
        if self.error is not None:
            return
        raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
        try:
            with open(self.path, "ab") as fh:
                fh.write(raw)
        except OSError as exc:
            self.error = str(exc)

    def header(self, name: str, what: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.write(f"\n===== gate {name}: {what} ({stamp}) =====\n")

    def footer(self, result: GateResult) -> None:
        verdict = result.status if result.reason is None else f"{result.status}: {result.reason}"
        code = "" if result.exit_code is None else f", exit {result.exit_code}"
        self.write(f"===== gate {result.name}: {verdict} ({result.duration_s:.2f}s{code}) =====\n")


def _result(name: str, ok: bool, started: float, lines: Sequence[str], reason: str | None = None,
            exit_code: int | None = None) -> GateResult:
    return GateResult(
        name=name,
        status="passed" if ok else "failed",
        exit_code=exit_code,
        duration_s=round(time.monotonic() - started, 3),
        log_tail=tail_lines("\n".join(lines)),
        reason=reason,
    )


# ------------------------------------------------------------------------------------------------- built-ins


async def _has_commits(worktree: Path, base_sha: str, log: _Log) -> GateResult:
    started = time.monotonic()
    code, out, err = await _git(worktree, "rev-list", "--count", f"{base_sha}..HEAD")
    if code != 0:
        msg = f"cannot count commits beyond {base_sha[:12]}: {err.strip() or out.strip()}"
        log.write(msg + "\n")
        return _result("has-commits", False, started, [msg], msg, code)
    count = int(out.strip() or "0")
    short = base_sha[:12]
    if count == 0:
        msg = f"no commits beyond the base {short}: the agent committed nothing"
        log.write(msg + "\n")
        return _result("has-commits", False, started, [msg], msg, 0)
    _code, subjects, _err = await _git(worktree, "log", "--format=%h %s", f"{base_sha}..HEAD", "-n", "20")
    lines = [f"{count} commit{'s' if count != 1 else ''} beyond {short}", *subjects.splitlines()]
    log.write("\n".join(lines) + "\n")
    return _result("has-commits", True, started, lines, None, 0)


ARTEFACTS_FILE = "cockpit-gate-artefacts"


def _admin_dir(worktree: Path) -> Path | None:
    """The worktree's own git admin folder: `.git` itself, or where a linked worktree's `.git` file points."""
    dotgit = worktree / ".git"
    try:
        if dotgit.is_dir():
            return dotgit
        text = dotgit.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    admin = Path(text[len("gitdir:"):].strip())
    return admin if admin.is_absolute() else worktree / admin


def read_artefacts(worktree: Path) -> set[str]:
    """Untracked paths the repo's gate commands left in `worktree` (not the agent's to commit)."""
    admin = _admin_dir(worktree)
    try:
        text = (admin / ARTEFACTS_FILE).read_text(encoding="utf-8") if admin else ""
    except OSError:
        return set()
    return {line for line in text.split("\0") if line}


def _write_artefacts(worktree: Path, paths: set[str]) -> None:
    admin = _admin_dir(worktree)
    if admin is None:
        return
    with contextlib.suppress(OSError):
        (admin / ARTEFACTS_FILE).write_text("".join(f"{p}\0" for p in sorted(paths)), encoding="utf-8")


async def _status(worktree: Path) -> tuple[int, list[tuple[str, str]], str]:
    """(exit code, [(XY, path)] of `git status` with every untracked file listed, error text)."""
    code, out, err = await _git(worktree, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    return code, porcelain_entries(out), err or out


def _untracked(entries: list[tuple[str, str]]) -> set[str]:
    return {path for xy, path in entries if xy == "??"}


async def _clean_tree(worktree: Path, log: _Log, seen: set[str] | None = None) -> GateResult:
    """`seen` receives every untracked path there is now (before the repo's commands run)."""
    started = time.monotonic()
    code, entries, err = await _status(worktree)
    if code != 0:
        msg = f"git status failed: {err.strip()}"
        log.write(msg + "\n")
        return _result("clean-tree", False, started, [msg], msg, code)
    if seen is not None:
        seen.update(_untracked(entries))
    artefacts = await asyncio.to_thread(read_artefacts, worktree)
    left = [(xy, path) for xy, path in entries if not (xy == "??" and path in artefacts)]
    if len(left) < len(entries):
        log.write(f"left by earlier gate commands (not counted): {len(entries) - len(left)} untracked\n")
    changed = [f"{xy} {path}" for xy, path in left]
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        msg = f"uncommitted changes in {len(changed)} file{'s' if len(changed) != 1 else ''}: {shown}"
        log.write(msg + "\n" + "\n".join(changed) + "\n")
        return _result("clean-tree", False, started, [msg, *changed], msg, 1)
    log.write("working tree clean\n")
    return _result("clean-tree", True, started, ["working tree clean"], None, 0)


async def _tdd(worktree: Path, base_sha: str, rule: TddRule, log: _Log) -> GateResult:
    started = time.monotonic()
    if rule.enabled is None:
        code, out, err = await _git(worktree, "ls-files", "-z")
        if code != 0:
            msg = f"git ls-files failed: {err.strip() or out.strip()}"
            log.write(msg + "\n")
            return _result("tdd", False, started, [msg], msg, code)
        if not any(rule.is_test(p) for p in out.split("\0") if p):
            msg = "no tests in repo"
            log.write(f"skipped: {msg} (auto)\n")
            return _result("tdd", True, started, [f"skipped: {msg}"], msg, None)
    code, out, err = await _git(worktree, "diff", "--name-status", "--no-renames", "-z", base_sha, "HEAD")
    if code != 0:
        msg = f"cannot diff against the base {base_sha[:12]}: {err.strip() or out.strip()}"
        log.write(msg + "\n")
        return _result("tdd", False, started, [msg], msg, code)
    fields = [f for f in out.split("\0") if f]
    changes = list(zip(fields[0::2], fields[1::2], strict=False))
    sources = [path for status, path in changes if not status.startswith("D") and rule.is_source(path)]
    tests = [path for _status, path in changes if rule.is_test(path)]
    if sources and not tests:
        msg = f"source files changed without test changes: {', '.join(sources[:5])}"
        if len(sources) > 5:
            msg += f" and {len(sources) - 5} more"
        lines = ["source files changed:", *(f"  {p}" for p in sources), "test files changed: none"]
        log.write("\n".join(lines) + "\n")
        return _result("tdd", False, started, lines, msg, 1)
    lines = [f"source files changed: {len(sources)}", f"test files changed: {len(tests)}",
             *(f"  {p}" for p in tests)]
    log.write("\n".join(lines) + "\n")
    return _result("tdd", True, started, lines, None, 0)


# ------------------------------------------------------------------------------------------------- commands

_NOT_FOUND = re.compile(
    r"(?:^|: )([^:\n]+): (?:command not found|No such file or directory)\s*$", re.MULTILINE
)


def _open_output(log: _Log) -> tuple[BinaryIO, int, bool]:
    """Where a command writes: the log (appending, from an offset), or a scratch file if the log is broken."""
    if log.error is None:
        try:
            fh: BinaryIO = open(log.path, "ab")  # noqa: SIM115 - closed by the caller
            return fh, fh.seek(0, os.SEEK_END), True
        except OSError as exc:
            log.error = str(exc)
    return tempfile.TemporaryFile("w+b"), 0, False


def _read_output_tail(fh: BinaryIO, path: Path, start: int, in_log: bool) -> str:
    """The last TAIL_BYTES of what the command wrote from `start` on."""
    if in_log:
        with open(path, "rb") as reader:
            end = reader.seek(0, os.SEEK_END)
            reader.seek(max(start, end - TAIL_BYTES))
            return reader.read().decode("utf-8", "replace")
    end = fh.seek(0, os.SEEK_END)
    fh.seek(max(start, end - TAIL_BYTES))
    return fh.read().decode("utf-8", "replace")


async def _run_command(worktree: Path, spec: GateSpec, log: _Log) -> GateResult:
    started = time.monotonic()
    if not spec.command.strip():
        msg = "no command configured"
        log.write(msg + "\n")
        return _result(spec.name, False, started, [msg], msg)
    # The command writes straight into the log (O_APPEND): live output for `tail -f`, and no pipe that a
    # background job could hold open after the command itself has exited.
    out, offset, in_log = await asyncio.to_thread(_open_output, log)
    try:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", spec.command, cwd=worktree, stdin=asyncio.subprocess.DEVNULL,
            stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
        pgid = proc.pid  # start_new_session: the child leads its own process group
        timed_out = False
        try:
            try:
                await asyncio.wait_for(proc.wait(), timeout=spec.timeout_s)
            except TimeoutError:
                timed_out = True
                kill_group(pgid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), timeout=KILL_GRACE_S)
                except TimeoutError:
                    kill_group(pgid, signal.SIGKILL)
                    await proc.wait()
        finally:
            # Leftovers of the gate (background jobs) die with it, whatever happened.
            kill_group(pgid, signal.SIGKILL)
            if proc.returncode is None:
                await proc.wait()
        output = await asyncio.to_thread(_read_output_tail, out, log.path, offset, in_log)
    finally:
        out.close()
    code = proc.returncode
    lines = tail_lines(output)
    if output and not output.endswith("\n"):
        log.write("\n")  # keep the footer on a line of its own
    if timed_out:
        reason = f"timed out after {spec.timeout_s:g}s"
        log.write(f"\n[{reason}: process group killed]\n")
        return _result(spec.name, False, started, [*lines, f"[{reason}]"], reason, code)
    if code == 0:
        return _result(spec.name, True, started, lines, None, 0)
    if code == 127:
        found = _NOT_FOUND.findall(output)
        what = found[-1].strip() if found else spec.command.split()[0]
        reason = f"command not found: {what}"
    elif code == 126:
        reason = f"command cannot be executed (exit 126): {spec.command.split()[0]}"
    elif code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        reason = f"killed by {name}"
    else:
        reason = f"exited with code {code}"
    return _result(spec.name, False, started, lines, reason, code)


# --------------------------------------------------------------------------------------------- entry point


async def run_gates(
    worktree: Path,
    base_sha: str,
    specs: Sequence[GateSpec],
    *,
    tdd: TddRule,
    log_path: Path,
    on_started: Callable[[str], Awaitable[None]] | None = None,
    on_finished: Callable[[GateResult], Awaitable[None]] | None = None,
) -> list[GateResult]:
    """Run the built-in gates, then each configured command, and return every result in order."""
    log = _Log(log_path)
    before: set[str] = set()  # untracked paths before the repo's commands ran
    plan: list[tuple[str, str, Callable[[], Awaitable[GateResult]]]] = [
        ("has-commits", f"commits beyond {base_sha[:12]}", lambda: _has_commits(worktree, base_sha, log)),
        ("clean-tree", "nothing uncommitted", lambda: _clean_tree(worktree, log, before)),
    ]
    if tdd.enabled is not False:
        mode = "auto" if tdd.enabled is None else "on"
        plan.append(("tdd", f"source changes come with test changes ({mode})",
                     lambda: _tdd(worktree, base_sha, tdd, log)))
    for spec in specs:
        plan.append((spec.name, f"$ {spec.command} (timeout {spec.timeout_s:g}s)",
                     functools.partial(_run_command, worktree, spec, log)))

    results: list[GateResult] = []
    for name, what, run in plan:
        if on_started is not None:
            await on_started(name)
        log.header(name, what)
        started = time.monotonic()
        if not await asyncio.to_thread(worktree.is_dir):
            reason = f"worktree not found: {worktree}"
            log.write(reason + "\n")
            result = _result(name, False, started, [reason], reason)
        else:
            try:
                result = await run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # fail closed: a crash of the runner is a failed gate
                reason = f"crashed: {type(exc).__name__}: {exc}"
                log.write(reason + "\n")
                result = _result(name, False, started, [reason], reason)
        log.footer(result)
        results.append(result)
        if on_finished is not None:
            await on_finished(result)
    if len(specs) > 0 and await asyncio.to_thread(worktree.is_dir):
        await _record_artefacts(worktree, before)
    return results


async def _record_artefacts(worktree: Path, before: set[str]) -> None:
    """Remember the untracked files the commands left (and earlier ones still there) as gate artefacts."""
    code, entries, _err = await _status(worktree)
    if code != 0:
        return
    now = _untracked(entries)
    known = await asyncio.to_thread(read_artefacts, worktree)
    await asyncio.to_thread(_write_artefacts, worktree, (known & now) | (now - before))
