"""The script agent: parsing names the step at fault; running it in a real worktree does the work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.core.errors import UsageError
from cockpit.core.script_agent import Action, parse_script
from cockpit.core.signals import read_signals
from cockpit_testkit.gitrepos import git

# --------------------------------------------------------------------------------------------------- parsing


def test_parses_every_action() -> None:
    script = parse_script(
        """
[[step]]
say = "hello"
[[step]]
write = { path = "src/app.py", content = "print(1)\\n" }
[[step]]
append = { path = "src/app.py", content = "print(2)\\n" }
[[step]]
run = "python src/app.py"
[[step]]
commit = "add app"
[[step]]
ask = "ship it? (y/n)"
[[step]]
sleep = 0
[[step]]
fail = "never reached"
[[fix]]
commit = "fix"
""",
        source="script.toml",
    )
    assert [a.kind for a in script.steps] == [
        "say",
        "write",
        "append",
        "run",
        "commit",
        "ask",
        "sleep",
        "fail",
    ]
    assert script.steps[1] == Action("write", path="src/app.py", content="print(1)\n")
    assert script.steps[6].seconds == 0.0
    assert script.fix == (Action("commit", text="fix"),)
    assert script.steps[1].describe() == "write src/app.py"
    assert script.steps[3].describe() == "run python src/app.py"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '[[step]]\nsay = "a"\n[[step]]\nsay = "b"\n[[step]]\nwirte = "x"\n',
            "script.toml: step 3: unknown action 'wirte'",
        ),
        ('[[step]]\nsay = "a"\nrun = "true"\n', "script.toml: step 1: two actions in one step (say, run)"),
        ("[[step]]\nrun = 3\n", "script.toml: step 1: run must be a string, not an integer"),
        ('[[step]]\nsay = "ok"\n[[step]]\nsleep = "soon"\n', "script.toml: step 2: sleep must be a number"),
        ("[[step]]\nsleep = -1\n", "script.toml: step 1: sleep must be zero or more seconds"),
        ("[[step]]\nsleep = true\n", "script.toml: step 1: sleep must be a number"),
        ('[[step]]\nwrite = "a.txt"\n', "script.toml: step 1: write must be a table"),
        ('[[step]]\nwrite = { path = "a.txt" }\n', "script.toml: step 1: write: missing content"),
        (
            '[[step]]\nwrite = { path = 1, content = "" }\n',
            "script.toml: step 1: write: path must be a string",
        ),
        (
            '[[step]]\nappend = { path = "a", content = "", mode = "x" }\n',
            "script.toml: step 1: append: unknown key 'mode'",
        ),
        (
            '[[step]]\nwrite = { path = "/etc/passwd", content = "" }\n',
            "step 1: write: path '/etc/passwd' is absolute",
        ),
        (
            '[[step]]\nsay = "x"\n[[step]]\nwrite = { path = "src/../../out.txt", content = "" }\n',
            "script.toml: step 2: write: path 'src/../../out.txt' leaves the worktree",
        ),
        (
            '[[step]]\nappend = { path = ".git/hooks/pre-commit", content = "" }\n',
            "step 1: append: path '.git/hooks",
        ),
        ("[[step]]\n", "script.toml: step 1: empty step"),
        ('[[step]]\nrun = "  "\n', "script.toml: step 1: run must not be empty"),
        ('[[step]]\nsay = "a"\n[[fix]]\nexplode = 1\n', "script.toml: fix 1: unknown action 'explode'"),
        ('title = "x"\n[[step]]\nsay = "a"\n', "script.toml: unknown top-level key 'title'"),
        ('[step]\nsay = "a"\n', "script.toml: step must be an array of tables"),
        ('[[fix]]\nsay = "a"\n', "script.toml: no steps"),
        ('[[step]]\nsay = "unterminated\n', "script.toml: not valid TOML"),
    ],
)
def test_malformed_scripts_name_the_step_at_fault(body: str, expected: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_script(body, source="script.toml")
    assert expected in info.value.message
    assert info.value.message.startswith("script.toml: ")


# --------------------------------------------------------------------------------------------------- running


@pytest.fixture
def worktree(repo: Path, short_tmp: Path) -> Path:
    path = short_tmp / "wt"
    git(repo, "worktree", "add", "-q", "-b", "cockpit/task-1-demo", str(path), "HEAD")
    return path


def run_agent(
    cwd: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cockpit.core.script_agent", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env if env is not None else dict(os.environ),
    )


def write_script(where: Path, body: str) -> Path:
    path = where / "script.toml"
    path.write_text(body)
    return path


def log_subjects(path: Path) -> list[str]:
    return git(path, "log", "--format=%s").splitlines()


def test_runs_steps_commits_and_reports_progress(worktree: Path, short_tmp: Path) -> None:
    signals = short_tmp / "signals"
    script = write_script(
        short_tmp,
        """
[[step]]
say = "adding the app"
[[step]]
write = { path = "src/app.py", content = "print('hi')\\n" }
[[step]]
append = { path = "src/app.py", content = "print('there')\\n" }
[[step]]
run = "python3 src/app.py > out.txt"
[[step]]
commit = "add the app"
""",
    )
    proc = run_agent(worktree, "--script", str(script), "--task-id", "1", "--signals", str(signals))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (worktree / "src/app.py").read_text() == "print('hi')\nprint('there')\n"
    assert (worktree / "out.txt").read_text() == "hi\nthere\n"
    assert log_subjects(worktree)[0] == "add the app"
    assert git(worktree, "status", "--porcelain") == "", "commit stages everything, untracked files too"
    assert git(worktree, "log", "-1", "--format=%an") == "Test Author"
    assert "[step 2/5] write src/app.py" in proc.stdout
    assert "[step 4/5] run python3 src/app.py > out.txt" in proc.stdout

    got = read_signals(signals)
    progress = [s.data for s in got if s.kind == "progress"]
    assert [(p["step"], p["total"]) for p in progress] == [(i, 5) for i in range(1, 6)]
    assert progress[1]["text"] == "write src/app.py"
    assert all(s.task_id == 1 for s in got)
    assert got[-1].kind == "exited" and got[-1].data == {"code": 0, "reason": None}


def test_failing_run_stops_the_agent(worktree: Path, short_tmp: Path) -> None:
    signals = short_tmp / "signals"
    script = write_script(
        short_tmp,
        """
[[step]]
run = "echo about to fail; exit 3"
[[step]]
write = { path = "never.txt", content = "x" }
""",
    )
    proc = run_agent(worktree, "--script", str(script), "--task-id", "2", "--signals", str(signals))
    assert proc.returncode == 1
    assert "about to fail" in proc.stdout
    assert "exited with code 3" in proc.stdout
    assert not (worktree / "never.txt").exists()
    exited = [s for s in read_signals(signals) if s.kind == "exited"]
    assert exited[0].data["code"] == 1 and "exited with code 3" in exited[0].data["reason"]


def test_missing_command_is_named(worktree: Path, short_tmp: Path) -> None:
    script = write_script(short_tmp, '[[step]]\nrun = "no-such-tool-xyz --go"\n')
    proc = run_agent(worktree, "--script", str(script), "--task-id", "2")
    assert proc.returncode == 1
    assert "command not found" in proc.stdout


def test_fail_action_prints_the_reason(worktree: Path, short_tmp: Path) -> None:
    script = write_script(short_tmp, '[[step]]\nsay = "hi"\n[[step]]\nfail = "the spec is contradictory"\n')
    proc = run_agent(worktree, "--script", str(script), "--task-id", "2")
    assert proc.returncode == 1
    assert "the spec is contradictory" in proc.stdout


ASK_SCRIPT = """
[[step]]
ask = "Deploy the migration? (y/n)"
[[step]]
write = { path = "after.txt", content = "went on\\n" }
"""


def test_ask_answered_yes_goes_on(worktree: Path, short_tmp: Path) -> None:
    signals = short_tmp / "signals"
    script = write_script(short_tmp, ASK_SCRIPT)
    proc = run_agent(
        worktree, "--script", str(script), "--task-id", "4", "--signals", str(signals), stdin="y\n"
    )
    assert proc.returncode == 0, proc.stdout
    assert "Deploy the migration? (y/n)" in proc.stdout
    assert "waiting for input: answer [y/n]:" in proc.stdout
    assert (worktree / "after.txt").read_text() == "went on\n"
    kinds = [(s.kind, s.data) for s in read_signals(signals) if s.kind in ("needs_input", "resolved")]
    assert kinds == [
        ("needs_input", {"question": "Deploy the migration? (y/n)", "step": 1}),
        ("resolved", {"answer": "y", "step": 1}),
    ]


@pytest.mark.parametrize("answer", ["n\n", "No way\n"])
def test_ask_answered_no_skips_the_next_step_and_goes_on(
    worktree: Path, short_tmp: Path, answer: str
) -> None:
    script = write_script(short_tmp, ASK_SCRIPT + '[[step]]\nwrite = { path = "last.txt", content = "x" }\n')
    proc = run_agent(worktree, "--script", str(script), "--task-id", "4", stdin=answer)
    assert proc.returncode == 0, proc.stdout
    assert not (worktree / "after.txt").exists()
    assert (worktree / "last.txt").read_text() == "x"
    assert "skipped (answered no)" in proc.stdout


def test_ask_with_input_closed_fails(worktree: Path, short_tmp: Path) -> None:
    script = write_script(short_tmp, ASK_SCRIPT)
    proc = run_agent(worktree, "--script", str(script), "--task-id", "4", stdin="")
    assert proc.returncode == 1
    assert not (worktree / "after.txt").exists()
    assert "input closed" in proc.stdout


FIX_SCRIPT = """
[[step]]
write = { path = "first.txt", content = "first\\n" }
[[step]]
commit = "first try"
[[fix]]
write = { path = "fixed.txt", content = "fixed\\n" }
[[fix]]
commit = "the fix"
"""


def test_fix_mode_runs_the_fix_steps(worktree: Path, short_tmp: Path) -> None:
    script = write_script(short_tmp, FIX_SCRIPT)
    first = run_agent(worktree, "--script", str(script), "--task-id", "5")
    assert first.returncode == 0, first.stdout
    fix = run_agent(worktree, "--script", str(script), "--task-id", "5", "--fix")
    assert fix.returncode == 0, fix.stdout
    assert "[fix 1/2] write fixed.txt" in fix.stdout
    assert log_subjects(worktree)[:2] == ["the fix", "first try"]
    assert (worktree / "fixed.txt").read_text() == "fixed\n"


def test_fix_mode_without_fix_tables_runs_the_steps_again(worktree: Path, short_tmp: Path) -> None:
    script = write_script(short_tmp, '[[step]]\nappend = { path = "log.txt", content = "run\\n" }\n')
    assert run_agent(worktree, "--script", str(script), "--task-id", "5").returncode == 0
    fix = run_agent(worktree, "--script", str(script), "--task-id", "5", "--fix")
    assert fix.returncode == 0
    assert (worktree / "log.txt").read_text() == "run\nrun\n"


def test_nothing_to_commit_goes_on(worktree: Path, short_tmp: Path) -> None:
    script = write_script(short_tmp, '[[step]]\ncommit = "empty"\n[[step]]\nsay = "still here"\n')
    proc = run_agent(worktree, "--script", str(script), "--task-id", "6")
    assert proc.returncode == 0
    assert "nothing to commit" in proc.stdout
    assert log_subjects(worktree) == ["initial commit"]


def test_no_script_commits_the_plan(worktree: Path, short_tmp: Path) -> None:
    plan = short_tmp / "plan.md"
    plan.write_text("# Task 7: add a greeting\n\n1. [add] greeting module\n")
    proc = run_agent(worktree, "--task-id", "7", "--plan-file", str(plan))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    target = worktree / "docs/tasks/task-7.md"
    assert target.read_text() == plan.read_text()
    assert git(worktree, "show", "--name-only", "--format=%s", "HEAD").splitlines() == [
        "task 7: add the plan",
        "",
        "docs/tasks/task-7.md",
    ]


def test_no_script_and_no_plan_file_commits_a_stub(worktree: Path) -> None:
    proc = run_agent(worktree, "--task-id", "8")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "# Task 8" in (worktree / "docs/tasks/task-8.md").read_text()
    assert git(worktree, "status", "--porcelain") == ""


def test_fallback_identity_when_none_is_configured(repo_factory: object, short_tmp: Path) -> None:
    bare = short_tmp / "noid"
    bare.mkdir()
    git(bare, "init", "-q", "-b", "main")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k == "GIT_CONFIG_NOSYSTEM"}
    env["EMAIL"] = ""
    proc = run_agent(bare, "--task-id", "9", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        git(bare, "log", "-1", "--format=%an <%ae>") == "cockpit script agent <script-agent@cockpit.invalid>"
    )


def test_malformed_script_is_a_usage_error(worktree: Path, short_tmp: Path) -> None:
    script = write_script(short_tmp, '[[step]]\nsay = "a"\n[[step]]\nsay = "b"\nrun = "c"\n')
    proc = run_agent(worktree, "--script", str(script), "--task-id", "1")
    assert proc.returncode == 2
    assert "script.toml: step 2: two actions in one step" in proc.stderr
    assert log_subjects(worktree) == ["initial commit"]


def test_write_through_a_symlink_out_of_the_worktree_fails(worktree: Path, short_tmp: Path) -> None:
    outside = short_tmp / "outside"
    outside.mkdir()
    (worktree / "escape").symlink_to(outside)
    script = write_script(short_tmp, '[[step]]\nwrite = { path = "escape/x.txt", content = "x" }\n')
    proc = run_agent(worktree, "--script", str(script), "--task-id", "1")
    assert proc.returncode == 1
    assert "leaves the worktree" in proc.stdout
    assert not (outside / "x.txt").exists()


@pytest.mark.parametrize("kind", ["write", "append"])
def test_a_committed_file_symlink_out_of_the_worktree_is_refused(
    worktree: Path, short_tmp: Path, kind: str
) -> None:
    # The link is the last part of the path: resolving only its folder let the write through.
    outside = short_tmp / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("precious\n")
    (worktree / "notes.txt").symlink_to(victim)
    subprocess.run(["git", "add", "notes.txt"], cwd=worktree, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "link"], cwd=worktree, check=True)
    script = write_script(short_tmp, f'[[step]]\n{kind} = {{ path = "notes.txt", content = "pwned" }}\n')
    proc = run_agent(worktree, "--script", str(script), "--task-id", "1")
    assert proc.returncode == 1
    assert "leaves the worktree" in proc.stdout
    assert victim.read_text() == "precious\n"
