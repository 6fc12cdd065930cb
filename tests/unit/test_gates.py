"""Gates run in a real worktree: built-ins, commands, timeouts, missing commands, the log and callbacks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cockpit.core import gates as gates_mod
from cockpit.core.gates import BUILTIN_GATES, TddRule, run_gates
from cockpit.core.models import GateResult, GateSpec
from cockpit_testkit.gitrepos import git

AUTO = TddRule()
OFF = TddRule(enabled=False)


def commit(path: Path, files: dict[str, str], message: str = "change") -> None:
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", message)


@pytest.fixture
def worktree(repo_factory: Callable[..., Path], short_tmp: Path) -> tuple[Path, str]:
    """A task worktree on its own branch and the base commit it started from (the repo has tests)."""
    repo = repo_factory("repo", {"README.md": "# demo\n", "src/app.py": "x = 1\n", "tests/test_app.py": "\n"})
    base = git(repo, "rev-parse", "HEAD")
    path = short_tmp / "wt"
    git(repo, "worktree", "add", "-q", "-b", "cockpit/task-1-demo", str(path), base)
    return path, base


def by_name(results: list[GateResult]) -> dict[str, GateResult]:
    return {r.name: r for r in results}


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_until(condition: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


async def test_all_gates_pass_and_are_logged(worktree: tuple[Path, str], short_tmp: Path) -> None:
    path, base = worktree
    commit(path, {"src/app.py": "x = 2\n", "tests/test_app.py": "def test_x(): pass\n"})
    log = short_tmp / "logs" / "task-1-gates.log"
    specs = [GateSpec("tests", "echo running tests; echo all good >&2"), GateSpec("lint", "true")]
    results = await run_gates(path, base, specs, tdd=AUTO, log_path=log)
    assert [r.name for r in results] == [*BUILTIN_GATES, "tests", "lint"]
    assert [r.status for r in results] == ["passed"] * 5, [(r.name, r.reason) for r in results]
    tests = by_name(results)["tests"]
    assert tests.exit_code == 0 and tests.reason is None
    assert tests.log_tail == ["running tests", "all good"], "stdout and stderr are combined"
    assert tests.duration_s >= 0
    text = log.read_text()
    for name in [*BUILTIN_GATES, "tests", "lint"]:
        assert f"===== gate {name}:" in text
    assert "$ echo running tests" in text
    assert "running tests\nall good\n" in text
    assert "===== gate tests: passed" in text


async def test_log_is_appended_not_replaced(worktree: tuple[Path, str], short_tmp: Path) -> None:
    path, base = worktree
    log = short_tmp / "gates.log"
    log.write_text("earlier run\n")
    await run_gates(path, base, [GateSpec("one", "echo first-run")], tdd=OFF, log_path=log)
    await run_gates(path, base, [GateSpec("one", "echo second-run")], tdd=OFF, log_path=log)
    text = log.read_text()
    assert text.startswith("earlier run\n")
    assert text.index("first-run") < text.index("second-run")


async def test_has_commits_fails_without_commits(worktree: tuple[Path, str], short_tmp: Path) -> None:
    path, base = worktree
    result = by_name(await run_gates(path, base, [], tdd=OFF, log_path=short_tmp / "g.log"))["has-commits"]
    assert result.status == "failed"
    assert result.reason is not None and "no commits beyond the base" in result.reason
    commit(path, {"notes.txt": "n\n"}, "add notes")
    again = by_name(await run_gates(path, base, [], tdd=OFF, log_path=short_tmp / "g.log"))["has-commits"]
    assert again.status == "passed"
    assert any("add notes" in line for line in again.log_tail)


async def test_has_commits_with_an_unknown_base_fails_closed(
    worktree: tuple[Path, str], short_tmp: Path
) -> None:
    path, _base = worktree
    result = by_name(await run_gates(path, "f" * 40, [], tdd=OFF, log_path=short_tmp / "g.log"))[
        "has-commits"
    ]
    assert result.status == "failed" and result.reason is not None and "cannot count commits" in result.reason


@pytest.mark.parametrize(
    ("dirty", "expected"),
    [
        ({"untracked.txt": "new\n"}, "?? untracked.txt"),
        ({"README.md": "changed\n"}, " M README.md"),
    ],
)
async def test_clean_tree_fails_on_uncommitted_work(
    worktree: tuple[Path, str], short_tmp: Path, dirty: dict[str, str], expected: str
) -> None:
    path, base = worktree
    commit(path, {"notes.txt": "n\n"})
    for name, content in dirty.items():
        (path / name).write_text(content)
    result = by_name(await run_gates(path, base, [], tdd=OFF, log_path=short_tmp / "g.log"))["clean-tree"]
    assert result.status == "failed"
    assert result.reason is not None and "uncommitted changes in 1 file" in result.reason
    assert expected in result.log_tail


async def test_clean_tree_ignores_ignored_files(worktree: tuple[Path, str], short_tmp: Path) -> None:
    path, base = worktree
    commit(path, {".gitignore": "*.log\n"})
    (path / "debug.log").write_text("noise\n")
    result = by_name(await run_gates(path, base, [], tdd=OFF, log_path=short_tmp / "g.log"))["clean-tree"]
    assert result.status == "passed"


async def test_tdd_fails_when_source_changes_without_tests(
    worktree: tuple[Path, str], short_tmp: Path
) -> None:
    path, base = worktree
    commit(path, {"src/app.py": "x = 3\n", "src/new.py": "y = 1\n", "README.md": "docs\n"})
    result = by_name(await run_gates(path, base, [], tdd=AUTO, log_path=short_tmp / "g.log"))["tdd"]
    assert result.status == "failed"
    assert result.reason is not None
    assert "source files changed without test changes" in result.reason
    assert (
        "src/app.py" in result.reason and "src/new.py" in result.reason and "README.md" not in result.reason
    )


async def test_tdd_passes_with_test_changes_or_without_source_changes(
    worktree: tuple[Path, str], short_tmp: Path
) -> None:
    path, base = worktree
    commit(path, {"README.md": "only docs\n"})
    docs_only = by_name(await run_gates(path, base, [], tdd=AUTO, log_path=short_tmp / "g.log"))["tdd"]
    assert docs_only.status == "passed"
    commit(path, {"src/app.py": "x = 4\n", "tests/test_more.py": "def test_more(): pass\n"})
    with_tests = by_name(await run_gates(path, base, [], tdd=AUTO, log_path=short_tmp / "g.log"))["tdd"]
    assert with_tests.status == "passed" and with_tests.reason is None


async def test_tdd_auto_is_skipped_in_a_repo_without_tests(
    repo_factory: Callable[..., Path], short_tmp: Path
) -> None:
    repo = repo_factory("notests", {"main.go": "package main\n"})
    base = git(repo, "rev-parse", "HEAD")
    commit(repo, {"main.go": "package main\n\nfunc main() {}\n"})
    auto = by_name(await run_gates(repo, base, [], tdd=AUTO, log_path=short_tmp / "g.log"))["tdd"]
    assert (auto.status, auto.reason) == ("passed", "no tests in repo")
    forced = by_name(await run_gates(repo, base, [], tdd=TddRule(enabled=True), log_path=short_tmp / "g.log"))
    assert forced["tdd"].status == "failed"
    off = await run_gates(repo, base, [], tdd=OFF, log_path=short_tmp / "g.log")
    assert "tdd" not in by_name(off)


def test_tdd_patterns() -> None:
    rule = TddRule()
    assert (
        rule.is_source("src/app.py") and rule.is_source("web/src/App.tsx") and rule.is_source("cmd/main.go")
    )
    assert not rule.is_source("tests/test_app.py") and rule.is_test("tests/test_app.py")
    assert rule.is_test("pkg/thing_test.go") and rule.is_test("web/src/App.test.tsx")
    assert rule.is_test("crates/core/tests/it.rs") and rule.is_test("lib/__tests__/x.js")
    assert not rule.is_source("README.md") and not rule.is_test("README.md")
    custom = TddRule.from_settings(True, ["*.rb"], ["spec/*_spec.rb"])
    assert custom.is_source("app/models/user.rb") and not custom.is_source("x.py")
    assert custom.is_test("spec/user_spec.rb")
    assert TddRule.from_settings(None).source_patterns == TddRule().source_patterns


async def test_failing_command_does_not_stop_later_gates(worktree: tuple[Path, str], short_tmp: Path) -> None:
    path, base = worktree
    commit(path, {"notes.txt": "n\n"})
    specs = [GateSpec("tests", "echo boom; exit 3"), GateSpec("lint", "echo lint ok")]
    results = by_name(await run_gates(path, base, specs, tdd=OFF, log_path=short_tmp / "g.log"))
    assert results["tests"].status == "failed"
    assert results["tests"].exit_code == 3
    assert results["tests"].reason == "exited with code 3"
    assert results["tests"].log_tail == ["boom"]
    assert results["lint"].status == "passed"


async def test_missing_command_is_named(worktree: tuple[Path, str], short_tmp: Path) -> None:
    path, base = worktree
    specs = [GateSpec("tests", "definitely-not-installed-xyz --all"), GateSpec("empty", "  ")]
    results = by_name(await run_gates(path, base, specs, tdd=OFF, log_path=short_tmp / "g.log"))
    assert results["tests"].status == "failed"
    assert results["tests"].exit_code == 127
    assert results["tests"].reason == "command not found: definitely-not-installed-xyz"
    assert (results["empty"].status, results["empty"].reason) == ("failed", "no command configured")


async def test_timeout_kills_the_whole_process_group(worktree: tuple[Path, str], short_tmp: Path) -> None:
    path, base = worktree
    pids = short_tmp / "pids"
    command = f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; echo started; wait"
    started = time.monotonic()
    results = by_name(
        await run_gates(
            path, base, [GateSpec("slow", command, timeout_s=1)], tdd=OFF, log_path=short_tmp / "g.log"
        )
    )
    assert time.monotonic() - started < 30
    slow = results["slow"]
    assert slow.status == "failed"
    assert slow.reason == "timed out after 1s"
    assert "started" in slow.log_tail
    assert "timed out after 1s" in (short_tmp / "g.log").read_text()
    recorded = [int(p) for p in pids.read_text().split()]
    assert len(recorded) == 2
    assert await wait_until(lambda: not any(alive(pid) for pid in recorded)), "a gate process survived"


async def test_background_leftovers_are_killed_and_do_not_hang_the_gate(
    worktree: tuple[Path, str], short_tmp: Path
) -> None:
    path, base = worktree
    pid_file = short_tmp / "bg.pid"
    command = f"sleep 60 & echo $! > {pid_file}; echo done"
    started = time.monotonic()
    results = by_name(
        await run_gates(
            path, base, [GateSpec("bg", command, timeout_s=30)], tdd=OFF, log_path=short_tmp / "g.log"
        )
    )
    assert results["bg"].status == "passed"
    assert time.monotonic() - started < 20, "the gate waited for its background job"
    pid = int(pid_file.read_text())
    assert await wait_until(lambda: not alive(pid))


async def test_log_tail_keeps_the_last_50_lines(worktree: tuple[Path, str], short_tmp: Path) -> None:
    path, base = worktree
    log = short_tmp / "g.log"
    results = by_name(
        await run_gates(path, base, [GateSpec("many", "seq 1 500; exit 1")], tdd=OFF, log_path=log)
    )
    tail = results["many"].log_tail
    assert len(tail) == 50
    assert tail[0] == "451" and tail[-1] == "500"
    text = log.read_text()
    assert "\n1\n2\n3\n" in text and "\n500\n" in text, "the log keeps the whole output"
    assert all(len(r.log_tail) <= 50 for r in results.values())


async def test_callbacks_see_every_gate_in_order(worktree: tuple[Path, str], short_tmp: Path) -> None:
    path, base = worktree
    seen: list[str] = []

    async def started(name: str) -> None:
        seen.append(f"start {name}")

    async def finished(result: GateResult) -> None:
        seen.append(f"end {result.name} {result.status}")

    await run_gates(
        path,
        base,
        [GateSpec("t", "true")],
        tdd=OFF,
        log_path=short_tmp / "g.log",
        on_started=started,
        on_finished=finished,
    )
    assert seen == [
        "start has-commits",
        "end has-commits failed",
        "start clean-tree",
        "end clean-tree passed",
        "start t",
        "end t passed",
    ]


async def test_gates_do_not_block_the_event_loop(worktree: tuple[Path, str], short_tmp: Path) -> None:
    path, base = worktree
    began, go = short_tmp / "began", short_tmp / "go"
    command = f"touch {began}; for i in $(seq 1 500); do [ -f {go} ] && exit 0; sleep 0.02; done; exit 9"

    async def release() -> None:
        # Runs on the same loop: only possible while the gate's command runs if nothing blocks the loop.
        assert await wait_until(began.exists, within=30)
        go.touch()

    helper = asyncio.create_task(release())
    results = by_name(
        await run_gates(
            path, base, [GateSpec("wait", command, timeout_s=30)], tdd=OFF, log_path=short_tmp / "g.log"
        )
    )
    await helper
    assert results["wait"].status == "passed", results["wait"].reason


async def test_missing_worktree_fails_every_gate(short_tmp: Path) -> None:
    gone = short_tmp / "gone"
    results = await run_gates(gone, "0" * 40, [GateSpec("t", "true")], tdd=AUTO, log_path=short_tmp / "g.log")
    assert [r.name for r in results] == [*BUILTIN_GATES, "t"]
    assert all(r.status == "failed" and r.reason == f"worktree not found: {gone}" for r in results)


async def test_a_crashing_gate_fails_closed(
    worktree: tuple[Path, str], short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, base = worktree

    async def boom(*_args: object) -> GateResult:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(gates_mod, "_clean_tree", boom)
    results = by_name(
        await run_gates(path, base, [GateSpec("t", "true")], tdd=OFF, log_path=short_tmp / "g.log")
    )
    assert results["clean-tree"].status == "failed"
    assert results["clean-tree"].reason == "crashed: RuntimeError: disk on fire"
    assert results["t"].status == "passed"


async def test_signal_death_is_reported(worktree: tuple[Path, str], short_tmp: Path) -> None:
    path, base = worktree
    results = by_name(
        await run_gates(path, base, [GateSpec("seg", "kill -SEGV $$")], tdd=OFF, log_path=short_tmp / "g.log")
    )
    assert results["seg"].status == "failed"
    assert results["seg"].reason == "killed by SIGSEGV"


async def test_an_unwritable_log_does_not_fail_the_gates(worktree: tuple[Path, str], short_tmp: Path) -> None:
    path, base = worktree
    blocker = short_tmp / "not-a-dir"
    blocker.write_text("a file where the log directory should be\n")
    specs = [GateSpec("tests", "echo still captured; exit 4"), GateSpec("ok", "true")]
    results = by_name(await run_gates(path, base, specs, tdd=OFF, log_path=blocker / "gates.log"))
    assert results["tests"].log_tail == ["still captured"]
    assert results["tests"].reason == "exited with code 4"
    assert results["ok"].status == "passed"


async def test_footer_starts_on_its_own_line(worktree: tuple[Path, str], short_tmp: Path) -> None:
    path, base = worktree
    log = short_tmp / "g.log"
    await run_gates(path, base, [GateSpec("nonl", "printf 'no newline at the end'")], tdd=OFF, log_path=log)
    assert "no newline at the end\n===== gate nonl: passed" in log.read_text()


async def test_clean_tree_is_the_agents_verdict_not_the_gates_artefacts(
    worktree: tuple[Path, str], short_tmp: Path
) -> None:
    path, base = worktree
    commit(path, {"src/app.py": "x = 2\n", "tests/test_app.py": "# changed\n"})
    compile_gate = [GateSpec("compile", "python3 -m py_compile src/app.py", 30)]
    first = by_name(await run_gates(path, base, compile_gate, tdd=OFF, log_path=short_tmp / "g.log"))
    assert first["clean-tree"].status == "passed" and first["compile"].status == "passed"
    assert any((path / "src" / "__pycache__").iterdir())  # the gate left bytecode behind, untracked
    # Run again (a fix round, `cockpit task gates`, the re-gate of a rebase): the bytecode is the gates' own.
    again = by_name(await run_gates(path, base, compile_gate, tdd=OFF, log_path=short_tmp / "g.log"))
    assert again["clean-tree"].status == "passed", again["clean-tree"].reason
    # What the agent leaves uncommitted still counts.
    (path / "forgotten.txt").write_text("not committed\n")
    dirty = by_name(await run_gates(path, base, [], tdd=OFF, log_path=short_tmp / "g.log"))["clean-tree"]
    assert dirty.status == "failed" and "forgotten.txt" in " ".join(dirty.log_tail)
    assert "__pycache__" not in " ".join(dirty.log_tail)
