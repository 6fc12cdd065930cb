"""Helpers for the execution tests: a repo set up for the script agent on a private tmux server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cockpit.cli.repo import init_repo
from cockpit.core.config import set_value
from cockpit.core.paths import RepoPaths
from cockpit.core.tmux import TmuxPanes
from cockpit_testkit.daemons import cli, cli_json
from cockpit_testkit.waiting import wait_until

WAIT_S = 60


def setup_repo(repo: Path, socket_name: str, **settings: str) -> RepoPaths:
    """`cockpit init` the repo (in-process, quick), on the test's tmux server, with the script agent."""
    paths = RepoPaths(repo)
    init_repo(paths)
    values = {"tmux.socket_name": socket_name, "agent.backend": "script", **settings}
    for key, value in values.items():
        set_value(paths.config, key, value)
    return paths


def add_gates(paths: RepoPaths, gates: list[tuple[str, str, float]]) -> None:
    with open(paths.config, "a") as fh:
        for name, command, timeout in gates:
            fh.write(
                f"\n[[gates]]\nname = {json.dumps(name)}\ncommand = {json.dumps(command)}\n"
                f"timeout_s = {timeout}\n"
            )


def create(repo: Path, text: str, script: str | None = None) -> int:
    args = ["task", "create", text, "--force"]
    if script is not None:
        file = repo.parent / f"script-{abs(hash(text))}.toml"
        file.write_text(script)
        args += ["--script", str(file)]
    task = cli_json(*args, repo=repo)
    assert task["state"] in ("pending", "pending_clarification"), task
    return int(task["id"])


def approve(repo: Path, task_id: int) -> dict[str, Any]:
    # "--anyway": these tasks may be ambiguous (pending_clarification); the person approves them as they are.
    result: dict[str, Any] = cli_json("task", "approve", str(task_id), "--anyway", repo=repo)
    return result


def wait(repo: Path, task_id: int, *states: str, timeout: float = WAIT_S) -> dict[str, Any]:
    result = cli(
        "task",
        "wait",
        str(task_id),
        "--state",
        *states,
        "--timeout",
        str(timeout),
        "--json",
        repo=repo,
        timeout=timeout + 30,
    )
    data: dict[str, Any] = result.json
    assert result.code == 0, f"task {task_id} did not reach {states}: {data} {result.stderr}"
    return data


def show(repo: Path, task_id: int) -> dict[str, Any]:
    data: dict[str, Any] = cli_json("task", "show", str(task_id), repo=repo)
    return data


def events(repo: Path, task_id: int | None = None) -> list[dict[str, Any]]:
    result = cli("events", repo=repo)
    assert result.code == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [e for e in out if task_id is None or e["task_id"] == task_id]


def types(repo: Path, task_id: int) -> list[str]:
    return [e["type"] for e in events(repo, task_id)]


def wait_flag(repo: Path, task_id: int, value: bool, timeout: float = 30) -> dict[str, Any]:
    def flagged() -> dict[str, Any] | None:
        task = show(repo, task_id)
        return task if task["needs_input"] is value else None

    task = wait_until(flagged, timeout=timeout, message=f"task {task_id} needs_input should become {value}")
    assert task is not None
    return task


def panes(paths: RepoPaths, socket_name: str) -> TmuxPanes:
    return TmuxPanes(socket_name, f"cockpit-{paths.root.name}")


ASK_SCRIPT = """
[[step]]
ask = "Shall I go on? (y/n)"
[[step]]
write = { path = "answer.txt", content = "yes\\n" }
[[step]]
commit = "record the answer"
"""


def commit_script(name: str, *, sleep: float = 0) -> str:
    pause = f"[[step]]\nsleep = {sleep}\n" if sleep else ""
    return (
        f'{pause}[[step]]\nwrite = {{ path = "{name}", content = "{name}\\n" }}\n'
        f'[[step]]\ncommit = "add {name}"\n'
    )
