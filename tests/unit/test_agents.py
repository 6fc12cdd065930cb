"""Agent command lines (run for real against fake agents on PATH) and the prompts they are given."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.core.agents import BACKENDS, AgentCommand, agent_command
from cockpit.core.errors import CockpitError, ConfigError
from cockpit.core.models import GateResult, GateSpec, PlanStep, Task
from cockpit.core.prompts import render_fix_prompt, render_prompt
from cockpit_testkit.gitrepos import git

FAKE_AGENT = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["FAKE_AGENT_LOG"], "a") as fh:
    call = {"name": os.path.basename(sys.argv[0]), "args": sys.argv[1:], "cwd": os.getcwd()}
    fh.write(json.dumps(call) + "\\n")
"""

TRICKY_PROMPT = (
    '# Task 3: fix "quoting" in the parser\n\n'
    "Don't break `echo $HOME` or $(rm -rf /) or 'single' quotes; keep \\backslashes\\ and a tab\there.\n"
    "-p --dangerously-skip-permissions\n"
    "ünïcode ✓\n"
)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding fake claude/codex/aider/gemini/my-agent that log their argv as JSON lines."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "codex", "aider", "gemini", "my-agent"):
        exe = bin_dir / name
        exe.write_text(FAKE_AGENT)
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_AGENT_LOG", str(tmp_path / "calls.jsonl"))
    return bin_dir


def run_in_pane(command: AgentCommand, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the pane's command line the way tmux does: through a shell."""
    return subprocess.run(
        ["sh", "-c", command.shell], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def calls(tmp_path: Path) -> list[dict[str, object]]:
    log = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def prompt_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts dir" / "task-3 'quoted'.md"
    path.parent.mkdir()
    path.write_text(TRICKY_PROMPT)
    return path


@pytest.mark.parametrize(
    ("backend", "expected_args"),
    [
        ("claude", [TRICKY_PROMPT.rstrip("\n")]),
        ("codex", [TRICKY_PROMPT.rstrip("\n")]),
        ("gemini", ["-i", TRICKY_PROMPT.rstrip("\n")]),
    ],
)
def test_prompt_argument_agents_get_the_file_text_as_one_argument(
    backend: str, expected_args: list[str], fake_bin: Path, prompt_file: Path, tmp_path: Path
) -> None:
    wt = tmp_path / "wt"
    wt.mkdir()
    cmd = agent_command(backend, prompt_file=prompt_file, worktree=wt, task_id=3)
    assert cmd.backend == backend
    assert cmd.argv[:2] == ["bash", "-c"]
    assert f"exec {backend}" in cmd.argv[2]
    assert cmd.argv[-1] == str(prompt_file)
    assert shlex.split(cmd.shell) == cmd.argv
    proc = run_in_pane(cmd, wt)
    assert proc.returncode == 0, proc.stderr
    assert calls(tmp_path) == [{"name": backend, "args": expected_args, "cwd": str(wt)}]


def test_a_missing_prompt_file_stops_before_the_agent(fake_bin: Path, tmp_path: Path) -> None:
    cmd = agent_command("claude", prompt_file=tmp_path / "nope.md", worktree=tmp_path, task_id=1)
    proc = run_in_pane(cmd, tmp_path)
    assert proc.returncode == 66
    assert calls(tmp_path) == []


def test_aider_reads_the_message_file(fake_bin: Path, prompt_file: Path, tmp_path: Path) -> None:
    cmd = agent_command("aider", prompt_file=prompt_file, worktree=tmp_path, task_id=3)
    # --no-gitignore: aider must not write .aider* into .gitignore (the clean-tree gate would fail on it).
    flags = ["--no-gitignore", "--no-check-update", "--no-show-release-notes", "--no-show-model-warnings"]
    assert cmd.argv == ["aider", *flags, "--message-file", str(prompt_file)]
    assert "--yes-always" not in cmd.argv
    assert run_in_pane(cmd, tmp_path).returncode == 0
    assert calls(tmp_path)[0]["args"] == [*flags, "--message-file", str(prompt_file)]


def test_custom_template_placeholders_are_quoted(fake_bin: Path, prompt_file: Path, tmp_path: Path) -> None:
    wt = tmp_path / "work tree; rm -rf x"
    wt.mkdir()
    template = (
        "MODE=fast exec my-agent --prompt {prompt_file} --dir {worktree} --task {task_id} --literal '{x'"
    )
    cmd = agent_command("custom", prompt_file=prompt_file, worktree=wt, task_id=42, custom_command=template)
    assert cmd.argv[:2] == ["bash", "-c"]
    assert shlex.split(cmd.shell) == cmd.argv
    proc = run_in_pane(cmd, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert calls(tmp_path)[0]["args"] == [
        "--prompt",
        str(prompt_file),
        "--dir",
        str(wt),
        "--task",
        "42",
        "--literal",
        "{x",
    ]


def test_custom_command_errors(fake_bin: Path, tmp_path: Path) -> None:
    common = {"prompt_file": tmp_path / "p.md", "worktree": tmp_path, "task_id": 1}
    with pytest.raises(ConfigError, match="command is empty"):
        agent_command("custom", custom_command="  ", **common)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"unknown placeholder \{prompt\}"):
        agent_command("custom", custom_command="my-agent {prompt}", **common)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a valid shell command line"):
        agent_command("custom", custom_command="my-agent 'unclosed", **common)  # type: ignore[arg-type]
    with pytest.raises(CockpitError) as info:
        agent_command("custom", custom_command="X=1 not-an-agent-xyz {prompt_file}", **common)  # type: ignore[arg-type]
    assert info.value.code == "agent_missing"
    assert "`not-an-agent-xyz` was not found on PATH" in info.value.message


@pytest.mark.parametrize("backend", ["claude", "codex", "aider", "gemini"])
def test_missing_agent_is_a_clear_error(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(CockpitError) as info:
        agent_command(backend, prompt_file=tmp_path / "p.md", worktree=tmp_path, task_id=1)
    assert info.value.code == "agent_missing"
    assert info.value.message == (
        f"agent backend {backend!r} is not installed: `{backend}` was not found on PATH; "
        "install it or set [agent] backend"
    )


def test_unknown_backend_lists_the_backends(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        agent_command("cursor", prompt_file=tmp_path / "p.md", worktree=tmp_path, task_id=1)
    assert all(b in info.value.message for b in BACKENDS)


def test_script_backend_argv(tmp_path: Path) -> None:
    cmd = agent_command(
        "script",
        prompt_file=tmp_path / "p.md",
        worktree=tmp_path,
        task_id=7,
        script_file=tmp_path / "s.toml",
        signals_dir=tmp_path / "signals",
        plan_file=tmp_path / "plan.md",
        fix=True,
    )
    assert cmd.argv == [
        sys.executable,
        "-m",
        "cockpit.core.script_agent",
        "--task-id",
        "7",
        "--script",
        str(tmp_path / "s.toml"),
        "--signals",
        str(tmp_path / "signals"),
        "--plan-file",
        str(tmp_path / "plan.md"),
        "--fix",
    ]
    plain = agent_command("script", prompt_file=tmp_path / "p.md", worktree=tmp_path, task_id=7)
    assert plain.argv == [sys.executable, "-m", "cockpit.core.script_agent", "--task-id", "7"]
    with pytest.raises(CockpitError) as info:
        agent_command(
            "script",
            prompt_file=tmp_path / "p.md",
            worktree=tmp_path,
            task_id=7,
            python=str(tmp_path / "no-python"),
        )
    assert info.value.code == "agent_missing"


def test_script_backend_runs_in_the_worktree(repo: Path, short_tmp: Path) -> None:
    wt = short_tmp / "wt"
    git(repo, "worktree", "add", "-q", "-b", "cockpit/task-7-x", str(wt))
    plan = short_tmp / "plan.md"
    plan.write_text("# Task 7\n\n1. [add] a thing\n")
    cmd = agent_command(
        "script",
        prompt_file=short_tmp / "p.md",
        worktree=wt,
        task_id=7,
        plan_file=plan,
        signals_dir=short_tmp / "signals",
    )
    proc = run_in_pane(cmd, wt)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (wt / "docs/tasks/task-7.md").read_text() == plan.read_text()
    assert git(wt, "log", "-1", "--format=%s") == "task 7: add the plan"


# --------------------------------------------------------------------------------------------------- prompts


def make_task() -> Task:
    return Task(
        id=12,
        title="Add rate limiting to the login endpoint",
        description="Limit failed logins to 5 per minute per IP.",
        plan=[
            PlanStep(1, "add", "a token bucket in auth/limits.py"),
            PlanStep(2, "test", "cover the limit in tests/test_limits.py", depends_on=[1]),
            PlanStep(3, "delegate", "show the lockout message", peer="frontend"),
        ],
        branch="cockpit/task-12-rate-limit",
    )


GATES = [GateSpec("tests", "pytest -q", 600), GateSpec("lint", "ruff check .", 120)]


def test_render_prompt_states_task_plan_gates_and_rules(tmp_path: Path) -> None:
    text = render_prompt(
        make_task(), GATES, repo_name="backend", worktree=tmp_path / "wt", target_branch="main"
    )
    assert text.startswith("# Task 12: Add rate limiting to the login endpoint")
    assert "Limit failed logins to 5 per minute per IP." in text
    assert "1. [add] a token bucket in auth/limits.py" in text
    assert "2. [test] cover the limit in tests/test_limits.py (after step 1)" in text
    assert "3. [delegate to frontend] show the lockout message" in text and "do not do it here" in text
    assert "`pytest -q` must exit 0 within 600s" in text and "`ruff check .`" in text
    for gate in ("has-commits", "clean-tree", "tdd"):
        assert f"- {gate}:" in text
    assert f"Work only in this git worktree: `{tmp_path / 'wt'}`" in text
    assert "cockpit/task-12-rate-limit" in text
    assert "Commit your work" in text
    assert "Never merge, never push" in text
    assert "`main`" in text and "`backend`" in text


def test_render_fix_prompt_shows_failures_first(tmp_path: Path) -> None:
    failed = [
        GateResult(
            "tests",
            "failed",
            1,
            3.2,
            ["FAILED tests/test_limits.py::test_sixth_login", "```", "1 failed"],
            "exited with code 1",
        ),
        GateResult(
            "clean-tree",
            "failed",
            1,
            0.1,
            ["?? scratch.txt"],
            "uncommitted changes in 1 file: ?? scratch.txt",
        ),
    ]
    text = render_fix_prompt(
        make_task(), failed, GATES, repo_name="backend", worktree=tmp_path, target_branch="main"
    )
    assert text.startswith("# Fix attempt for task 12")
    assert "Failed: tests, clean-tree." in text
    assert "### tests (`pytest -q`): exited with code 1" in text
    assert "FAILED tests/test_limits.py::test_sixth_login" in text
    assert "````\nFAILED" in text, "a fence longer than the backticks in the log"
    assert "### clean-tree: uncommitted changes in 1 file" in text
    assert "Do not trust the earlier self-report" in text and "root cause" in text
    assert text.index("## Failed gates") < text.index("## The original task")
    assert "## Task 12: Add rate limiting" in text, "the original task follows, one heading level down"
    assert "1. [add] a token bucket in auth/limits.py" in text
    assert "Never merge, never push" in text


@pytest.mark.parametrize(
    ("approved_by", "heading"),
    [
        ("person", "## Plan (approved by a person)"),
        ("auto:small",
         "## Plan (approved automatically as a small task (auto:small); no person reviewed it)"),
        ("auto:delegated-small from frontend",
         "## Plan (approved automatically as a small task (auto:delegated-small from frontend); no person "
         "reviewed it)"),
        ("remote:frontend", "## Plan (approved by the peer repo frontend; no person reviewed it here)"),
    ],
)
def test_the_prompt_says_who_approved_the_plan(tmp_path: Path, approved_by: str, heading: str) -> None:
    task = make_task()
    task.approved_by = approved_by
    text = render_prompt(task, GATES, repo_name="backend", worktree=tmp_path, target_branch="main")
    assert heading in text
    if approved_by != "person":
        assert "approved by a person" not in text
