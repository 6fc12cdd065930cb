"""The command protocol, with a real fake executable: the answer used, every failure falling back to the
heuristic with the reason, timeouts and cancellation killing the whole process group."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cockpit.core import classifier
from cockpit.core.classifier import (
    build_prompt,
    classify,
    classify_heuristic,
)
from tests.unit.classifier.cases import DESCRIPTION, PEERS

FAKE = Path(__file__).resolve().parents[3] / "cockpit_testkit" / "fakes" / "fake_classifier.py"


# --------------------------------------------------------------------------------------------------------
# The command protocol, with a real fake executable
# --------------------------------------------------------------------------------------------------------


def fake_command(mode: str, *extra: str) -> str:
    return shlex.join([sys.executable, str(FAKE), mode, *extra])


def pid_gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie left for init to reap counts as gone: it cannot run)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return True
    return fields[0] in ("Z", "X")


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def same_path(a: str | Path, b: str | Path) -> bool:
    return os.path.samefile(a, b)


@pytest.mark.parametrize("mode", ["good", "prose", "fence", "wrapped"])
async def test_a_good_answer_is_used(mode: str) -> None:
    c = await classify(DESCRIPTION, PEERS, command=fake_command(mode), timeout_s=20)
    assert c.classifier == f"command:{os.path.basename(sys.executable)}"
    assert c.fallback_reason is None
    assert c.scope == "large"
    assert c.title == "Add /export and update the client"
    assert [(s.n, s.verb, s.peer, s.depends_on) for s in c.plan] == [
        (1, "add", None, []),
        (2, "test", None, [1]),
        (3, "delegate", "frontend", [1]),
        (4, "verify", None, [1, 2, 3]),
    ]
    if mode == "prose":
        assert c.plan[0].description == 'Add {braces} and "quotes" \\ and a } to /export'


async def test_the_prompt_arrives_on_stdin() -> None:
    c = await classify(DESCRIPTION, PEERS, command=fake_command("good"), timeout_s=20, repo_name="backend")
    expected = build_prompt(DESCRIPTION, PEERS, repo_name="backend")
    assert c.reason == f"read {len(expected)} chars on stdin; peers: frontend, docs"


async def test_the_prompt_placeholder_is_substituted_in_argv() -> None:
    c = await classify(DESCRIPTION, PEERS, command=fake_command("argv") + " {prompt}", timeout_s=20)
    assert c.fallback_reason is None
    assert c.reason == "argv prompt ok=True"


async def test_an_executable_on_its_own_shebang(tmp_path: Path) -> None:
    exe = tmp_path / "fake classifier"
    shutil.copy(FAKE, exe)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    command = f"{shlex.quote(str(exe))} good"
    c = await classify(DESCRIPTION, PEERS, command=command, timeout_s=20, cwd=tmp_path)
    assert c.classifier == "command:fake classifier"
    assert c.fallback_reason is None


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("garbage", "classifier command printed no JSON object"),
        ("invalid-json", "classifier command printed invalid JSON ("),
        ("bad-scope", 'classifier command returned an invalid answer: scope "medium" is not one of'),
        ("bad-verb", 'classifier command returned an invalid answer: step 2 has unknown verb "deploy"'),
        ("unknown-peer", 'step 3 delegates to "mobile", which is not a peer repo (frontend, docs)'),
        ("bad-depends", "step 2 depends on step 4, which is not an earlier step"),
        ("small-delegates", "scope is small but step 3 delegates to frontend"),
        ("fail", "classifier command exited with status 3: model overloaded, try later"),
        ("flood", "classifier command printed more than 1024 KiB"),
    ],
)
async def test_a_bad_answer_falls_back_to_the_heuristic_and_says_why(mode: str, reason: str) -> None:
    c = await classify(DESCRIPTION, PEERS, command=fake_command(mode), timeout_s=20)
    assert c.classifier == "heuristic"
    assert c.fallback_reason is not None and reason in c.fallback_reason, c.fallback_reason
    expected = classify_heuristic(DESCRIPTION, PEERS)
    assert (c.scope, c.plan, c.reason) == (expected.scope, expected.plan, expected.reason)


async def test_a_missing_executable_falls_back(tmp_path: Path) -> None:
    c = await classify(DESCRIPTION, PEERS, command=str(tmp_path / "no-such-classifier") + " -p", timeout_s=5)
    assert c.classifier == "heuristic"
    assert c.fallback_reason == f"classifier command not found: {tmp_path / 'no-such-classifier'}"


async def test_a_non_executable_file_falls_back(tmp_path: Path) -> None:
    exe = tmp_path / "classifier"
    exe.write_text("#!/bin/sh\necho {}\n")
    c = await classify(DESCRIPTION, PEERS, command=str(exe), timeout_s=5)
    assert c.fallback_reason == f"classifier command is not executable: {exe}"


async def test_bad_shell_syntax_falls_back() -> None:
    c = await classify(DESCRIPTION, PEERS, command='claude -p "unterminated', timeout_s=5)
    assert c.classifier == "heuristic"
    assert c.fallback_reason is not None and "not valid shell syntax" in c.fallback_reason


async def test_no_command_means_the_heuristic_without_a_fallback_reason() -> None:
    c = await classify("fix typo in README", PEERS, command="   ")
    assert c == classify_heuristic("fix typo in README", PEERS)
    assert c.fallback_reason is None


async def test_an_empty_description_is_rejected_without_running_the_command(tmp_path: Path) -> None:
    c = await classify("  ", PEERS, command=fake_command("hang", "--pid-file", str(tmp_path / "pids")))
    assert c.scope == "reject"
    assert c.fallback_reason is None
    assert not (tmp_path / "pids").exists()


async def test_a_hung_command_is_killed_at_the_timeout_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    started = time.monotonic()
    command = fake_command("hang", "--pid-file", str(pid_file))
    c = await classify(DESCRIPTION, PEERS, command=command, timeout_s=2.0)
    elapsed = time.monotonic() - started
    assert c.classifier == "heuristic"
    assert c.fallback_reason == "classifier command timed out after 2.0s"
    assert c.scope == "large"  # the heuristic's answer
    assert 2.0 <= elapsed < 4.5  # the timeout plus a margin for a loaded machine
    assert pid_file.exists(), "the fake never started"
    leader, child = (int(x) for x in pid_file.read_text().split())
    assert pid_gone(leader), "the command itself is still alive"  # reaped by classify: no zombie
    assert wait_until(lambda: pid_gone(child)), "the command's child is still alive"


async def test_a_child_left_holding_the_output_does_not_hold_up_the_answer(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    started = time.monotonic()
    command = fake_command("straggler", "--pid-file", str(pid_file))
    c = await classify(DESCRIPTION, PEERS, command=command, timeout_s=10.0)
    assert time.monotonic() - started < 5.0
    assert c.fallback_reason is None
    assert c.classifier.startswith("command:")
    leader, child = (int(x) for x in pid_file.read_text().split())
    assert pid_gone(leader)
    assert wait_until(lambda: pid_gone(child)), "the straggler is still alive"


async def test_a_child_outside_the_group_holding_the_output_does_not_hold_it_up(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    started = time.monotonic()
    command = fake_command("escaped", "--pid-file", str(pid_file))
    try:
        c = await classify(DESCRIPTION, PEERS, command=command, timeout_s=10.0)
        assert time.monotonic() - started < 5.0
        assert c.fallback_reason is None
        assert [s.verb for s in c.plan] == ["add", "test", "delegate", "verify"]
    finally:
        if pid_file.exists():  # it left our process group, so it is the test's to clean up
            os.kill(int(pid_file.read_text().split()[1]), 9)


async def test_cancelling_classify_kills_the_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    task = asyncio.create_task(
        classify(DESCRIPTION, PEERS, command=fake_command("hang", "--pid-file", str(pid_file)), timeout_s=60)
    )
    for _ in range(500):
        if pid_file.exists():
            break
        await asyncio.sleep(0.02)
    leader, child = (int(x) for x in pid_file.read_text().split())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pid_gone(leader)
    assert wait_until(lambda: pid_gone(child))


async def test_the_command_runs_in_cwd(tmp_path: Path) -> None:
    script = tmp_path / "where.py"
    script.write_text(
        "import json, os, sys\nsys.stdin.read()\n"
        "plan = [{'verb': 'add', 'description': 'x'}]\n"
        "print(json.dumps({'scope': 'small', 'reason': os.getcwd(), 'plan': plan}))\n"
    )
    c = await classify("add x", PEERS, command=shlex.join([sys.executable, str(script)]), cwd=tmp_path)
    assert c.fallback_reason is None
    assert same_path(c.reason, tmp_path)


def test_the_output_cap_is_a_module_constant() -> None:
    assert classifier.MAX_OUTPUT_BYTES == 1024 * 1024
