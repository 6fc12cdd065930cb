"""Benchmark: the wall time cockpit adds around each real agent's run, beside the agent's own time.

Run from the repo root after `scripts/install-agents`: `.venv/bin/python benchmarks/agent_loop_overhead.py
[AGENT ...]` (default: claude codex gemini aider). Prints one JSON object.

Each agent runs ROUNDS tasks through a real daemon on a private tmux server, against the fake model server
(cockpit_testkit/model_server) whose script makes it commit one file and report done with
`$COCKPIT_HOOK done --message $EPOCHREALTIME`, so the moment the agent's shell ran the done hook is known.
Permission dialogs are answered as a person would (`cockpit task send`), which counts as the agent's time.

Cockpit's part, per task:
- `approve_to_pane_ms`: the approval sent -> the agent's pane open (`task.pane`).
- `done_to_gates_ms`: the done hook run (its timestamp) -> the first `gate.started`. For aider, which exits
  instead, from `agent.exited` (the daemon's record of the exit) to the first gate.
- `gates_to_review_ms`: the last `gate.finished` -> `task.awaiting_review`.
The agent's part: `agent_boot_ms` (pane open -> its first model request) and `agent_work_ms` (first model
request -> done). Goal (the issue): done -> gates started p99 < 1 s, approve -> agent's first output < 1 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _exec_bench import summary

from cockpit_testkit.agentkit import AGENTS, Driver, require_cli, seed_home
from cockpit_testkit.exec_support import setup_repo
from cockpit_testkit.gitrepos import GIT_ENV, make_repo
from cockpit_testkit.model_server import Commit, ModelServer, Shell, Step, Write

ROUNDS = int(os.environ.get("AGENT_BENCH_ROUNDS", "3"))
DONE = "$COCKPIT_HOOK done --message $EPOCHREALTIME"


def stats(values: list[float]) -> dict[str, float]:
    return summary(values) if values else {}


def first(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(e for e in events if e["type"] == kind)


def last(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return [e for e in events if e["type"] == kind][-1]


def run_agent(name: str, base: Path, server: ModelServer) -> dict[str, list[float]]:
    spec = AGENTS[name]
    require_cli(spec)
    home = base / f"home-{name}"
    home.mkdir()
    repo = make_repo(base / f"repo-{name}")
    socket = f"ck-bench-{uuid.uuid4().hex[:8]}"
    env = {"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", **GIT_ENV,
           **seed_home(spec, home, repo, server)}
    os.environ.update(env)  # setup_repo runs in this process
    setup_repo(repo, socket, **{"agent.backend": name})
    driver = Driver(spec, repo, socket, env)
    driver.start_daemon()
    out: dict[str, list[float]] = {k: [] for k in (
        "approve_to_pane_ms", "done_to_gates_ms", "gates_to_review_ms", "agent_boot_ms", "agent_work_ms")}
    try:
        for n in range(ROUNDS):
            tag = uuid.uuid4().hex[:10]
            if spec.interactive:
                server.script(tag, [
                    Step("Adding it.", (Write(f"f{n}.txt", f"{n}\n"), Commit(f"add f{n}"))),
                    Step("Reporting done.", (Shell(DONE),)),
                    Step("Finished."),
                ])
            else:
                server.script(tag, [Step("Adding it.", (Write(f"f{n}.txt", f"{n}\n"),))])
            task_id = driver.create(f"Benchmark round {n} {tag}")
            approved = time.time()
            driver.cockpit("task", "approve", str(task_id))
            driver.drive(task_id, "awaiting_review", timeout=240)
            events = driver.events(task_id)
            pane = first(events, "task.pane")["ts"]
            first_request = min(r.at_wall for r in server.answered(tag))
            if spec.interactive:
                done_at = float(str(first(events, "agent.done")["data"].get("message")))
            else:
                done_at = first(events, "agent.exited")["ts"]
            out["approve_to_pane_ms"].append((pane - approved) * 1000)
            out["agent_boot_ms"].append((first_request - pane) * 1000)
            out["agent_work_ms"].append((done_at - first_request) * 1000)
            out["done_to_gates_ms"].append((first(events, "gate.started")["ts"] - done_at) * 1000)
            out["gates_to_review_ms"].append(
                (first(events, "task.awaiting_review")["ts"] - last(events, "gate.finished")["ts"]) * 1000)
            driver.cockpit("task", "reject", str(task_id))
    finally:
        driver.stop_daemon()
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
    return out


def main() -> None:
    names = sys.argv[1:] or ["claude", "codex", "gemini", "aider"]
    base = Path(tempfile.mkdtemp(prefix="ck-bench-"))
    saved = dict(os.environ)
    results: dict[str, Any] = {}
    try:
        with ModelServer() as server:
            for name in names:
                try:
                    results[name] = {k: stats(v) for k, v in run_agent(name, base, server).items()}
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    done = [v["done_to_gates_ms"]["p99_ms"] for v in results.values() if v.get("done_to_gates_ms")]
    print(json.dumps({
        "name": "agent_loop_overhead",
        "value": max(done) if done else None,
        "unit": "ms (worst agent's done -> gates started, p99)",
        "params": {"rounds_per_agent": ROUNDS, "agents": names,
                   "goal": "done -> gates started p99 < 1000 ms; approve -> first output < 1000 ms"},
        "agents": results,
    }))


if __name__ == "__main__":
    main()
