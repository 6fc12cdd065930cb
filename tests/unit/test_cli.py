"""The command line as a person uses it, with no daemon: every call is a real `python -m cockpit` subprocess
on a real git repository, so the CLI works on the store directly and classifies inline."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.config import DEFAULT_CONFIG
from cockpit_testkit.daemons import CliResult, cli, cli_json
from cockpit_testkit.gitrepos import git

TASK_KEYS = {"id", "title", "description", "state", "scope", "classifier", "reason", "plan", "questions",
             "needs_input", "source_repo", "source_task_id", "created_at", "updated_at"}

SMALL = "fix the typo in README"
LARGE = "Refactor the whole authentication subsystem to use OAuth2 with refresh tokens across all services"
VAGUE = "do the thing maybe"


def cli_many(*calls: tuple[str, ...], repo: Path) -> list[CliResult]:
    """Run independent CLI calls at once (each a real subprocess) and return their results in order."""
    procs = [subprocess.Popen([sys.executable, "-m", "cockpit", *args, "--repo", str(repo)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in calls]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        results.append(CliResult(proc.returncode, out, err))
    return results


@pytest.fixture
def initialised(repo: Path) -> Path:
    cli_json("init", repo=repo)
    return repo


def path_without_agents() -> dict[str, str]:
    """PATH without the directories holding an agent CLI (the suite may have installed them)."""
    from cockpit.cli.repo import AGENT_CLIS

    dirs = [d for d in os.environ["PATH"].split(os.pathsep)
            if d and not any((Path(d) / name).exists() for name in AGENT_CLIS)]
    return {"PATH": os.pathsep.join(dirs)}


def test_init_creates_the_files_excludes_them_and_is_idempotent(repo: Path) -> None:
    first = cli("init", "--json", repo=repo, env=path_without_agents()).json
    cockpit = repo / ".cockpit"
    assert first["config_created"] is True and first["exclude_added"] is True
    assert Path(first["root"]) == repo.resolve() and (cockpit / "index.db").is_file()
    # No agent CLI on this PATH: the built-in script agent, and the branch checked out now.
    assert first["backend"] == "script" and first["target_branch"] == "main"
    assert (cockpit / "config.toml").read_text() == DEFAULT_CONFIG.replace(
        'backend = "claude"', 'backend = "script"')
    exclude = repo / ".git" / "info" / "exclude"
    assert exclude.read_text().splitlines().count(".cockpit/") == 1
    assert git(repo, "status", "--porcelain") == "", "nothing of .cockpit/ shows up in git"
    with sqlite3.connect(cockpit / "index.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    # Again, from a subdirectory and without --repo: nothing is rewritten or added twice.
    (cockpit / "config.toml").write_text(DEFAULT_CONFIG + "# my note\n")
    (repo / "src").mkdir()
    again = cli("init", cwd=repo / "src")
    assert again.code == 0 and "config kept" in again.stdout
    assert (cockpit / "config.toml").read_text().endswith("# my note\n")
    assert exclude.read_text().splitlines().count(".cockpit/") == 1
    assert cli_json("init", repo=repo)["exclude_added"] is False


def test_init_takes_the_current_branch_and_the_first_installed_agent_and_doctor_checks_both(
    repo: Path, short_tmp: Path
) -> None:
    git(repo, "branch", "-m", "main", "master")
    bin_dir = short_tmp / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "codex"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    bare = path_without_agents()
    env = {"PATH": f"{bin_dir}:{bare['PATH']}"}
    human = cli("init", repo=repo, env=env)
    assert human.code == 0, human.stderr
    assert "target branch: master" in human.stdout and "agent: codex" in human.stdout
    assert "cockpit config set agent.backend NAME" in human.stdout
    report = cli("doctor", "--json", repo=repo, env=env).json
    assert report["ok"] is True, report
    assert report["checks"]["target_branch"] == "master exists"
    assert report["checks"]["backend"] == "codex is installed"

    # Without codex on PATH and with a target branch that does not exist, doctor names both.
    assert cli("config", "set", "task.target_branch", "main", repo=repo).code == 0
    bad = cli("doctor", "--json", repo=repo, env=bare)
    assert bad.code == 1 and bad.json["ok"] is False
    problems = " | ".join(bad.json["problems"])
    assert "target branch 'main' does not exist (the current branch is master)" in problems
    assert "agent backend 'codex' is not installed" in problems


def test_outside_a_git_repository_is_a_clear_usage_error(short_tmp: Path) -> None:
    plain = short_tmp / "plain"
    plain.mkdir()
    human = cli("init", cwd=plain)
    assert human.code == 2 and "not inside a git repository" in human.stderr and human.stdout == ""
    as_json = cli("init", "--json", cwd=plain)
    assert as_json.code == 2 and as_json.json["error"]["code"] == "not_a_repo"
    assert "not inside a git repository" in as_json.json["error"]["message"]
    missing = cli("task", "list", "--json", repo=short_tmp / "nowhere")
    assert missing.code == 2 and missing.json["error"]["code"] == "not_a_repo"
    assert not (plain / ".cockpit").exists()


def test_a_repo_without_init_says_so(repo: Path) -> None:
    result = cli("task", "list", "--json", repo=repo)
    assert result.code == 1 and result.json["error"]["code"] == "not_initialised"
    assert "cockpit init" in result.json["error"]["message"]


def test_task_verbs_work_on_the_store_and_print_one_json_object(initialised: Path) -> None:
    repo = initialised
    small = cli_json("task", "create", SMALL, repo=repo)
    assert small.keys() >= TASK_KEYS
    assert (small["id"], small["state"], small["scope"], small["classifier"]) == (1, "pending", "small",
                                                                                   "heuristic")
    assert small["plan"] and small["reason"] and small["description"] == SMALL
    assert (repo / ".cockpit" / "plans" / "task-1.md").is_file()
    assert cli_json("task", "create", LARGE, repo=repo)["scope"] == "large"
    piped = cli_json("task", "create", "-", "--no-wait", repo=repo, input="  add a health endpoint\n")
    assert (piped["id"], piped["state"], piped["scope"]) == (3, "created", None)
    assert piped["description"] == "add a health endpoint"

    listed, created, shown = cli_many(("task", "list", "--json"),
                                      ("task", "list", "--state", "created", "--json"),
                                      ("task", "show", "2", "--json"), repo=repo)
    assert [t["id"] for t in listed.json["tasks"]] == [1, 2, 3]
    assert [t["id"] for t in created.json["tasks"]] == [3]
    assert shown.json["id"] == 2 and shown.json["state"] == "pending" and shown.json.keys() >= TASK_KEYS

    approved, rejected = cli_many(("task", "approve", "1", "--json"),
                                  ("task", "reject", "2", "--reason", "not now", "--json"), repo=repo)
    assert approved.json["state"] == "approved"
    assert rejected.json["state"] == "rejected" and rejected.json["failure"] == "not now"
    refused, twice = cli_many(("task", "reject", "1", "--json"), ("task", "reject", "2", "--json"), repo=repo)
    assert refused.code == 1 and refused.json["error"]["code"] == "invalid_transition"
    assert refused.json["error"]["message"] == (
        "cannot reject task 1: it is approved, which can only move to: cancelled, executing")
    assert twice.code == 1 and twice.json["error"]["message"] == (
        "cannot reject task 2: it is rejected, which can only move to: none (terminal)")
    assert cli_json("task", "cancel", "1", repo=repo)["state"] == "cancelled"

    again, retry, active, every, missing, log, later, table, show3 = cli_many(
        ("task", "cancel", "1"), ("task", "retry", "1", "--json"),
        ("task", "list", "--json"), ("task", "list", "--all", "--json"), ("task", "show", "99", "--json"),
        ("events",), ("events", "--since", "5", "--json"), ("task", "list", "--all"), ("task", "show", "3"),
        repo=repo)
    assert again.code == 1 and "it is cancelled, which can only move to: none (terminal)" in again.stderr
    assert retry.code == 1 and retry.json["error"]["code"] == "refused"
    assert [t["id"] for t in active.json["tasks"]] == [3]
    assert [t["id"] for t in every.json["tasks"]] == [1, 2, 3]
    assert missing.code == 1 and missing.json["error"]["code"] == "not_found"

    events = [json.loads(line) for line in log.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # The refused commands left no trace.
    assert [e["type"] for e in events if e["task_id"] == 1] == [
        "task.created", "task.classified", "task.approved", "task.cancelled"]
    assert [e["type"] for e in events if e["task_id"] == 2] == [
        "task.created", "task.classified", "task.rejected"]
    assert [json.loads(line) for line in later.stdout.splitlines()] == events[5:]
    # The human forms print something readable and exit 0.
    assert table.code == 0 and "fix the typo in README" in table.stdout and "cancelled" in table.stdout
    assert show3.code == 0 and "task 3" in show3.stdout


def test_duplicates_are_refused_unless_forced(initialised: Path) -> None:
    repo = initialised
    cli_json("task", "create", "add an export endpoint to the API", repo=repo)
    dup = cli("task", "create", "Add an /export endpoint to the api", "--json", repo=repo)
    assert dup.code == 1 and dup.json["error"]["code"] == "duplicate"
    assert dup.json["error"]["duplicate"]["task_id"] == 1 and "--force" in dup.json["error"]["message"]
    forced = cli_json("task", "create", "Add an /export endpoint to the api", "--force", repo=repo)
    assert forced["id"] == 2
    assert len(cli_json("task", "list", repo=repo)["tasks"]) == 2


def test_clarify_answers_questions_and_settings_gate_small_tasks(initialised: Path) -> None:
    repo = initialised
    vague = cli_json("task", "create", VAGUE, repo=repo)
    assert vague["state"] == "pending_clarification" and vague["scope"] == "ambiguous" and vague["questions"]
    early = cli("task", "clarify", "1", "--json", repo=repo)
    assert early.code == 2 and early.json["error"]["code"] == "usage"
    clarified = cli_json("task", "clarify", "1", "--answer", "the login form in src/login.py",
                         "add a test in tests/test_login.py that fails on empty passwords", repo=repo)
    assert clarified["state"] == "pending" and len(clarified["answers"]) == 2
    late = cli("task", "clarify", "1", "--answer", "more", repo=repo)
    assert late.code == 1 and "only a task in pending_clarification takes answers" in late.stderr

    # auto_approve_small sends a person's small tasks straight to approved; large ones still wait.
    assert cli_json("config", "set", "task.auto_approve_small", "true", repo=repo)["value"] is True
    small = cli_json("task", "create", SMALL, repo=repo)
    assert small["state"] == "approved" and small["approved_by"] == "auto:small"
    assert cli_json("task", "create", LARGE, repo=repo)["state"] == "pending"


def test_usage_errors_exit_2(initialised: Path) -> None:
    calls = (("task", "show", "abc"), ("task", "list", "--state", "bogus"), ("task", "frobnicate"),
             ("config", "get"), ("config", "set", "task.max_parallel"), ("task", "wait", "0"),
             ("config", "set", "task.max_parallel", "lots"))
    results = cli_many(*[(*args, "--json") for args in calls], ("task", "show", "abc"), repo=initialised)
    for args, result in zip(calls, results, strict=False):
        assert result.code == 2, (args, result)
        error = result.json["error"]
        assert error["code"] in ("usage", "config") and error["message"], (args, error)
    assert results[-1].code == 2 and results[-1].stderr.startswith("cockpit")


def test_config_verbs_keep_comments_and_check_types(initialised: Path) -> None:
    repo = initialised
    config = repo / ".cockpit" / "config.toml"
    listed, got = cli_many(("config", "list", "--json"), ("config", "get", "task.remote_approval", "--json"),
                           repo=repo)
    assert listed.json["task.auto_approve_small"] is False and listed.json["task.max_parallel"] == 2
    assert listed.json["gates"] == []
    assert got.json == {"key": "task.remote_approval", "value": "small"}
    assert cli_json("config", "set", "task.max_parallel", "3", repo=repo)["value"] == 3
    assert cli_json("config", "set", "agent.needs_input_patterns", '["^Proceed"]', repo=repo)["value"] == [
        "^Proceed"]
    text = config.read_text()
    assert "max_parallel = 3" in text and text.count("#") == DEFAULT_CONFIG.count("#")
    bad = cli("config", "set", "task.auto_approve_small", "maybe", "--json", repo=repo)
    assert bad.code == 2 and bad.json["error"]["code"] == "config" and config.read_text() == text
    assert cli("config", "get", "task.max_parallel", repo=repo).stdout.strip() == "3"
    config.write_text("[task]\nmax_parallel = \n")
    broken = cli("config", "list", "--json", repo=repo)
    assert broken.code == 2 and "line 2" in broken.json["error"]["message"]


def test_wait_without_a_daemon(initialised: Path) -> None:
    repo = initialised
    cli_json("task", "create", SMALL, "--no-wait", repo=repo)
    timed_out = cli("task", "wait", "1", "--timeout", "0.2", "--json", repo=repo)
    assert timed_out.code == 1 and timed_out.json["error"]["code"] == "timeout"
    assert timed_out.json["task"]["state"] == "created"

    # A waiter in another process wakes when this one changes the store.
    waiter = subprocess.Popen([sys.executable, "-m", "cockpit", "task", "wait", "1", "--state", "rejected",
                               "--timeout", "30", "--json", "--repo", str(repo)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cli_json("task", "reject", "1", repo=repo)
        out, err = waiter.communicate(timeout=30)
    finally:
        waiter.kill()
        waiter.wait()
    assert waiter.returncode == 0, err
    assert json.loads(out)["state"] == "rejected"
    # Waiting for a state a rejected task can never reach returns at once with a refusal.
    never, either = cli_many(("task", "wait", "1", "--state", "done", "--json"),
                             ("task", "wait", "1", "--state", "pending", "rejected", "--json"), repo=repo)
    assert either.code == 0 and either.json["state"] == "rejected"
    assert never.code == 1 and never.json["error"]["code"] == "unreachable"
    assert "task 1 is rejected and can never reach done" in never.json["error"]["message"]


def test_doctor_checks_the_store_and_repairs_projections(initialised: Path) -> None:
    repo = initialised
    cli_json("task", "create", SMALL, repo=repo)
    report = cli_json("doctor", repo=repo)
    assert report["ok"] is True and report["problems"] == []
    checks: dict[str, Any] = report["checks"]
    assert checks["replay"] == "ok" and checks["schema_version"] == 1 and checks["integrity"] == "ok"
    assert checks["daemon"] == "not running" and checks["tasks"] == {"pending": 1}

    with sqlite3.connect(repo / ".cockpit" / "index.db") as db:
        db.execute("UPDATE tasks SET state = 'approved'")
        db.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    (repo / ".cockpit" / "daemon.json").write_text(json.dumps({
        "pid": dead_pid(), "socket": str(repo / ".cockpit" / "daemon.sock"), "protocol": 1, "started_at": 0,
        "repo": "repo", "root": str(repo)}))
    bad, human = cli_many(("doctor", "--json"), ("doctor",), repo=repo)
    assert bad.code == 1 and bad.json["ok"] is False
    problems = " | ".join(bad.json["problems"])
    assert "projection tasks differs from the event replay" in problems
    assert "schema version 7, this cockpit expects 1" in problems and "doctor --repair" in problems
    assert "stale daemon.json" in bad.json["checks"]["daemon"]
    assert human.code == 1 and "problems found" in human.stdout

    with sqlite3.connect(repo / ".cockpit" / "index.db") as db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    repaired = cli("doctor", "--repair", "--json", repo=repo)
    assert repaired.code == 0 and repaired.json["ok"] is True
    assert cli_json("task", "show", "1", repo=repo)["state"] == "pending"


def test_events_follow_without_a_daemon_prints_new_events(initialised: Path) -> None:
    repo = initialised
    cli_json("task", "create", SMALL, "--no-wait", repo=repo)
    follower = subprocess.Popen([sys.executable, "-m", "cockpit", "events", "--follow", "--repo", str(repo)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        assert first["seq"] == 1 and first["type"] == "task.created"
        # The backlog is printed, so the watch is about to be armed; a later write must still come through.
        cli_json("task", "reject", "1", repo=repo)
        second = json.loads(follower.stdout.readline())
        assert (second["seq"], second["type"], second["task_id"]) == (2, "task.rejected", 1)
    finally:
        follower.terminate()
        follower.wait(10)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_human_output_goes_to_stdout_and_errors_to_stderr(initialised: Path) -> None:
    result = cli("task", "approve", "5", repo=initialised)
    assert result.code == 1 and result.stdout == "" and result.stderr.startswith("cockpit: no task 5")
    assert os.path.isdir(initialised / ".cockpit" / "plans")


def test_an_ambiguous_task_is_approved_only_anyway_and_no_daemon_means_nothing_runs(
    initialised: Path,
) -> None:
    repo = initialised
    cli_json("task", "create", VAGUE, repo=repo)
    assert cli_json("task", "show", "1", repo=repo)["state"] == "pending_clarification"
    refused = cli("task", "approve", "1", "--json", repo=repo)
    assert refused.code == 1 and refused.json["error"]["code"] == "needs_answers"
    assert "--anyway" in refused.json["error"]["message"]
    assert cli_json("task", "show", "1", repo=repo)["state"] == "pending_clarification", "nothing changed"
    anyway = cli("task", "approve", "1", "--anyway", repo=repo)
    assert anyway.code == 0 and "task 1 is approved" in anyway.stdout
    assert "nothing runs until one starts" in anyway.stdout


def test_task_show_points_at_the_gate_log(initialised: Path) -> None:
    repo = initialised
    cli_json("task", "create", SMALL, repo=repo)
    log = repo / ".cockpit" / "logs" / "task-1-gates.log"
    log.write_text("===== gate tests: pytest =====\nAssertionError: 1 != 2\n")
    shown = cli("task", "show", "1", repo=repo)
    assert shown.code == 0 and f"gates log: {log}" in shown.stdout
    assert cli_json("task", "show", "1", repo=repo)["logs"] == {"gates": str(log)}
