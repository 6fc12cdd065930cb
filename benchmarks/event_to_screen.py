"""Benchmark: an event committed in a daemon to the cockpit frame showing it: 50 repos holding 25,000 tasks,
100 agents streaming output at once, 100 events/s.

Run from the repo root: `.venv/bin/python benchmarks/event_to_screen.py [--seconds 30] [--repos 50]
[--tasks-per-repo 500] [--agents 100]`; prints one JSON line.

50 real repos with running daemons, 500 tasks seeded in each store (as `keypress_latency` seeds them). First
`--agents` tasks (two per repo) are created and approved with the script agent running a shell loop that
prints a line every 0.1 s for the whole run: 100 real agents in tmux panes, their logs growing, their daemons
watching them. The cockpit's cursor rests on one of them in the active tab, so the detail follows that agent's
output (a file watch on its log and a `tail` per write) while the table shows the newest rows. Then a driver
process (this script with --drive) sends ops to the daemons
over their sockets at a steady 100 ops/s round-robin, each op committing one event: `create_task` (no
classification: task.created, a new row), `classify_task` (task.classified) and `reject_task`
(task.rejected) in turn. The cockpit runs headless in this process. For each event, the latency is from its
commit time (the event's `ts`, the daemon's clock) to the first frame the cockpit renders after the UI thread
applied it (`App.post_display_hook`). The value is the p99 over the events of the repo in the active tab,
whose rows are on screen; the other repos' events show in their tab titles (`title_*`), which trail a burst
of changes on purpose (their rows catch up when their tab is shown).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cockpit.tui  # noqa: F401  (first: it sets the frame rate textual reads when imported, as the CLI does)

# isort: split
from textual.widgets.data_table import RowDoesNotExist

from cockpit.core import daemonfile
from cockpit.core.client import DaemonClient
from cockpit.core.paths import RepoPaths
from cockpit.tui.app import AppConfig, CockpitApp, Target, resolve_target
from cockpit.tui.messages import AgentOutput, TasksChanged
from cockpit.tui.screens.cockpit import SUMMARY_DELAY_S, CockpitScreen
from cockpit.tui.widgets.task_table import TaskTable
from cockpit_testkit.many_repos import build

REPOS = 50
TASKS_PER_REPO = 500
AGENTS = 100
AGENT_SCRIPT = """[[step]]
run = "for i in $(seq 1 100000); do echo \\"agent output line $i: working on the export\\"; sleep 0.1; done"
"""
RATE = 100.0
WARMUP_S = 1.0
SIZE = (160, 48)


class ProbeScreen(CockpitScreen):
    """The main screen, noting when a hidden repo's tab title takes its changes."""

    def _relabel(self, repo: str) -> None:
        super()._relabel(repo)
        app = self.app
        if isinstance(app, Probe):
            app.relabelled(repo)

    def on_agent_output(self, message: AgentOutput) -> None:
        super().on_agent_output(message)
        app = self.app
        if isinstance(app, Probe) and app.recording and message.lines:
            app.outputs += message.task_id == app.watched_agent


class Probe(CockpitApp):
    """The cockpit, timing each folded event to the next frame after the UI applied it.

    Events of the repo in the active tab are applied to its rows at once; the others show in their repo's tab
    title, which trails a burst of changes by `SUMMARY_DELAY_S` (their rows are brought up to date when their
    tab is shown).
    """

    def __init__(self, target: Target, config: AppConfig) -> None:
        super().__init__(target, config)
        self.main = ProbeScreen(self.repos, "bench", self.BINDINGS)
        self.applied: list[tuple[bool, float]] = []  # (a row on screen, commit ts) applied, awaiting a frame
        self.hidden: dict[str, list[float]] = {}  # commit ts of hidden repos' events, awaiting their title
        self.samples: list[tuple[bool, float]] = []  # (a row on screen, ms)
        self.offscreen = 0  # events of the active repo whose row was scrolled out of view
        self.recording = False
        self.watched_agent: int | None = None  # the streaming agent's task the cursor rests on
        self.outputs = 0  # agent output updates that reached the detail while recording
        for model in self.models.values():
            model.trace = []

    def on_tasks_changed(self, message: TasksChanged) -> None:
        model = self.models[message.repo]
        stamps, model.trace = model.trace or [], []
        table = self.main.table(message.repo)
        follow = table.row_count == 0 or table.cursor_row == table.row_count - 1
        super().on_tasks_changed(message)
        if message.repo == self.main.active_repo and self.watched_agent is not None:
            # A person watching an agent's output while new work arrives: the cursor stays on the agent,
            # the list shows its newest rows.
            table.scroll_end(animate=False, immediate=True)
        elif message.repo == self.main.active_repo and follow:
            # A person watching new work arrive keeps the cursor on the newest row.
            table.move_cursor(row=table.row_count - 1, animate=False)
        if not self.recording:
            return
        if message.repo == self.main.active_repo:
            for task_id, ts in stamps:
                if self.on_screen(table, task_id):
                    self.applied.append((True, ts))
                else:
                    self.offscreen += 1
        else:
            self.hidden.setdefault(message.repo, []).extend(ts for _, ts in stamps)

    @staticmethod
    def on_screen(table: TaskTable, task_id: int) -> bool:
        """The task's row is in the table's window (a row scrolled out of view is not drawn at all)."""
        try:
            index = table.get_row_index(str(task_id))
        except RowDoesNotExist:
            return False
        top = int(table.scroll_y)
        return bool(top <= index < top + max(0, table.size.height - table.header_height))

    def relabelled(self, repo: str) -> None:
        self.applied.extend((False, ts) for ts in self.hidden.pop(repo, []))

    def post_display_hook(self) -> None:
        if self.applied:
            now = time.time()
            self.samples.extend((row, (now - ts) * 1000.0) for row, ts in self.applied)
            self.applied.clear()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def drive(sockets: list[str], rate: float, seconds: float) -> int:
    """Send ops round-robin at `rate` per second for `seconds`; each op commits one event."""
    clients = [await DaemonClient.connect(path) for path in sockets]
    # Per repo: the next op of its current task (create -> classify -> reject), and that task's id.
    step = [0] * len(clients)
    current = [0] * len(clients)
    sent = 0
    start = time.monotonic()
    pending: set[asyncio.Task[object]] = set()

    async def one(i: int) -> None:
        client = clients[i]
        if step[i] == 0:
            task = await client.call("create_task", {"text": f"bench task {time.time_ns()} in repo {i}",
                                                     "force": True, "no_wait": True, "by": "bench"})
            current[i] = int(task["id"])
        elif step[i] == 1:
            await client.call("classify_task", {"id": current[i]})
        else:
            await client.call("reject_task", {"id": current[i], "reason": "bench", "by": "bench"})
        step[i] = (step[i] + 1) % 3

    busy = [asyncio.Lock() for _ in clients]

    async def paced(i: int) -> None:
        async with busy[i]:  # a repo's ops stay in order
            await one(i)

    while time.monotonic() - start < seconds:
        due = start + sent / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        job = asyncio.ensure_future(paced(sent % len(clients)))
        pending.add(job)
        job.add_done_callback(pending.discard)
        sent += 1
    await asyncio.gather(*pending)
    for client in clients:
        await client.close()
    return sent


async def start_agents(sockets: list[str], count: int) -> dict[int, list[int]]:
    """`count` streaming agents, round-robin over the repos: their task ids by repo index."""
    clients = [await DaemonClient.connect(path, person=True) for path in sockets]
    started: dict[int, list[int]] = {}
    try:
        for n in range(count):
            i = n % len(clients)
            task = await clients[i].call("create_task", {
                "text": f"Stream the export report, agent {n}", "script": AGENT_SCRIPT, "force": True,
                "by": "bench"})
            await clients[i].call("approve_task", {"id": task["id"], "by": "person"})
            started.setdefault(i, []).append(int(task["id"]))
    finally:
        for client in clients:
            await client.close()
    return started


async def measure(workspace: Path, rate: float, seconds: float, agents: int) -> dict[str, object]:
    app = Probe(resolve_target(workspace), AppConfig(clock=False, toasts=False, cursor_blink=False))
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 180
        while not all(m.loaded for m in app.models.values()):
            if time.monotonic() > deadline:
                raise SystemExit("event_to_screen: the repos did not load")
            await pilot.pause(0.05)
        sockets = []
        for root in app.target.repos.values():
            info = daemonfile.read_live(RepoPaths(root).daemon_json)
            assert info is not None
            sockets.append(info.socket)
        streaming = 0
        if agents:
            started = await start_agents(sockets, agents)
            repos = list(app.models)

            def executing() -> int:
                return sum(1 for i, ids in started.items() for t in ids
                           if (task := app.models[repos[i]].tasks.get(t)) is not None
                           and task.state.value == "executing")

            deadline = time.monotonic() + 300
            while (streaming := executing()) < agents:
                if time.monotonic() > deadline:
                    raise SystemExit(f"event_to_screen: {streaming} of {agents} agents started")
                await pilot.pause(0.2)
            app.watched_agent = started[0][0]
            app.main.focus_task(repos[0], app.watched_agent)
            await pilot.pause(0.5)
        driver = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--drive", json.dumps(sockets), "--rate", str(rate),
            "--seconds", str(seconds + WARMUP_S), stdout=subprocess.PIPE)
        await asyncio.sleep(WARMUP_S)
        app.recording = True
        out, _ = await driver.communicate()
        await pilot.pause(0.5)  # the last events reach the screen
        app.recording = False
        sent = int(json.loads(out)["sent"])
    rows = [ms for row, ms in app.samples if row]
    titles = [ms for row, ms in app.samples if not row]
    return {
        "p50_ms": round(percentile(rows, 0.50), 2),
        "p99_ms": round(percentile(rows, 0.99), 2),
        "max_ms": round(max(rows), 2),
        "row_events": len(rows),
        "row_events_off_screen": app.offscreen,
        "title_p50_ms": round(percentile(titles, 0.50), 2),
        "title_p99_ms": round(percentile(titles, 0.99), 2),
        "title_events": len(titles),
        "title_delay_ms": SUMMARY_DELAY_S * 1000,
        "ops_sent": sent,
        "agents_streaming": streaming,
        "agent_output_updates": app.outputs,
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--repos", type=int, default=REPOS)
    parser.add_argument("--tasks-per-repo", type=int, default=TASKS_PER_REPO)
    parser.add_argument("--agents", type=int, default=AGENTS)
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        sent = asyncio.run(drive(json.loads(args.drive), args.rate, args.seconds))
        print(json.dumps({"sent": sent}))
        return
    # The script agent runs two tasks at once per repo (`task.max_parallel`): more agents than that wait.
    agents = min(args.agents, 2 * args.repos)
    workspace = build(args.repos, tasks_per_repo=args.tasks_per_repo)
    try:
        workspace.start()
        result = asyncio.run(measure(workspace.root, args.rate, args.seconds, agents))
    finally:
        workspace.remove()
    print(json.dumps({
        "name": "event_to_screen",
        "value": result["p99_ms"],
        "unit": "ms",
        "params": {"repos": args.repos, "tasks": args.repos * args.tasks_per_repo, "agents": agents,
                   "events_per_s": args.rate, "seconds": args.seconds, "size": list(SIZE),
                   "python": sys.version.split()[0]},
        "goal": "p99 < 25 ms",
        **result,
    }))


if __name__ == "__main__":
    main()
