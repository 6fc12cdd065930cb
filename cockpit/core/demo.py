"""The built-in demo workspace: two real git repos whose daemons hold tasks in every interesting state.

Everything is real: git repositories (`backend`, a small reports API, and `frontend`, its client, each
with code and unittest tests), a daemon per repo on its socket, a private tmux server (`[tmux] socket_name`)
for the agents' panes, the script agent doing the work and the gates (`python -m unittest`) judging it. No
network and no LLM is needed.

`build` lays the workspace out, `start` starts both daemons, `seed` drives them through their sockets (the
very ops the CLI and the cockpit send) until every task is where the demo wants it, waiting on the daemons'
event streams, never on a clock:

====================  ========================================================================================
backend#1 delegating  "Add an /export endpoint and have frontend redesign the export page": large, approved by
                      a person; its agent did the backend part and the task waits for frontend#1, which the
                      step executor created and which is **pending** there (large: a person must approve it)
backend#2 asking      the agent asks a question in its pane: executing, `needs_input`
backend#3 review      code and a passing test committed: awaiting_review, every gate passed
backend#4 merged      reviewed and merged into main: done, with a rollback point (`u` undoes it)
backend#5 failed      a failing test that the fix attempt does not fix: failed, the `tests` gate's log kept
====================  ========================================================================================

Every seeded backend task carries its own script, so it runs the script agent whatever `[agent] backend`
says. With `agent="claude"` (or another backend) the repos are configured for that agent, so what is not
scripted runs it: the frontend task, once approved, and every task created in the cockpit.

`stop` stops both daemons and kills the private tmux server; `DemoWorkspace.state_file` records what `stop`
needs, so a kept demo can be stopped later (`cockpit demo --stop --dir DIR`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.core import config as cfg
from cockpit.core import daemonctl, daemonfile
from cockpit.core.client import DaemonClient
from cockpit.core.errors import CockpitError, UsageError
from cockpit.core.models import JSON
from cockpit.core.paths import RepoPaths
from cockpit.core.store import Store
from cockpit.core.workspace import WORKSPACE_FILE

STATE_FILE = "cockpit-demo.json"
REPO_NAMES = ("backend", "frontend")
SEED_TIMEOUT_S = 90.0
PYTHON = shlex.quote(sys.executable)
UNITTEST = f"{PYTHON} -m unittest discover -s tests -t . -q"
TEST_GATE = UNITTEST

Progress = Callable[[str], None]


class DemoError(CockpitError):
    code = "demo"


# -- the repos' contents -------------------------------------------------------------------------------------

BACKEND_FILES = {
    "README.md": "# backend\n\nA small HTTP API: reports, their pages and their export.\n",
    "app/__init__.py": "",
    "app/reports.py": textwrap.dedent('''\
        """Reports served by the API."""

        REPORTS = {1: {"title": "Q1 revenue", "rows": 12}, 2: {"title": "Q2 revenue", "rows": 15}}


        def get_report(report_id: int) -> dict[str, object]:
            return REPORTS[report_id]
        '''),
    "app/pagination.py": textwrap.dedent('''\
        """Split report rows into pages."""


        def page(rows: list[object], number: int, size: int = 10) -> list[object]:
            """The rows on page `number` (pages count from 1)."""
            start = number * size
            return rows[start:start + size]
        '''),
    "tests/__init__.py": "",
    "tests/test_reports.py": textwrap.dedent('''\
        import unittest

        from app.reports import get_report


        class ReportsTest(unittest.TestCase):
            def test_get_report(self) -> None:
                self.assertEqual(get_report(1)["rows"], 12)
        '''),
}

FRONTEND_FILES = {
    "README.md": "# frontend\n\nThe web client of the reports API.\n",
    "client/__init__.py": "",
    "client/api.py": textwrap.dedent('''\
        """A tiny client of the backend API."""


        def report_url(report_id: int) -> str:
            return f"/reports/{report_id}"
        '''),
    "pages/export.html": "<h1>Export</h1>\n<a href=\"/reports/1\">Q1 revenue</a>\n",
    "tests/__init__.py": "",
    "tests/test_api.py": textwrap.dedent('''\
        import unittest

        from client.api import report_url


        class ApiTest(unittest.TestCase):
            def test_report_url(self) -> None:
                self.assertEqual(report_url(3), "/reports/3")
        '''),
}

REPO_FILES = {"backend": BACKEND_FILES, "frontend": FRONTEND_FILES}

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Demo Developer", "GIT_AUTHOR_EMAIL": "demo@example.com",
    "GIT_COMMITTER_NAME": "Demo Developer", "GIT_COMMITTER_EMAIL": "demo@example.com",
}


def _git(repo: Path, *args: str) -> None:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False,
                            env={**os.environ, **GIT_IDENTITY})
    if result.returncode != 0:
        raise DemoError(f"git {args[0]} failed in {repo}: {(result.stderr or result.stdout).strip()}")


def make_repo(path: Path, files: dict[str, str]) -> None:
    """A git repo on branch main with one commit holding `files`, and its own identity (never signing)."""
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "user.name", "Demo Developer")
    _git(path, "config", "user.email", "demo@example.com")
    _git(path, "config", "commit.gpgsign", "false")
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "--no-gpg-sign", "-m", "initial commit")


def write_config(path: Path, agent: str, tmux_socket: str) -> None:
    """The commented default config with the demo's settings (set as `cockpit config set` would), plus the
    unittest gate."""
    settings = {
        "task.auto_approve_small": "false",
        "task.auto_approve_delegated_small": "true",
        "task.remote_approval": "small",
        "task.max_parallel": "4",  # every seeded task runs at once: the seed stays quick
        "task.fix_attempts": "1",
        "agent.backend": agent,
        "tmux.socket_name": tmux_socket,
        "merge.verify": "true",
    }
    path.write_text(cfg.DEFAULT_CONFIG)
    for dotted, raw in settings.items():
        cfg.set_value(path, dotted, raw)
    with path.open("a") as fh:
        fh.write(f"\n[[gates]]\nname = \"tests\"\ncommand = {json.dumps(TEST_GATE)}\ntimeout_s = 120\n")
    cfg.load_settings(path)  # the demo never leaves a config its daemon would refuse


def _exclude_cockpit(repo: Path) -> None:
    exclude = repo / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    existing = exclude.read_text() if exclude.exists() else ""
    if ".cockpit/" not in existing.splitlines():
        separator = "" if not existing or existing.endswith("\n") else "\n"
        exclude.write_text(f"{existing}{separator}.cockpit/\n")


def _create_store(paths: RepoPaths) -> None:
    async def create() -> None:
        await (await Store.open(paths.db)).close()

    # A thread: the caller may be inside an event loop already.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, create()).result()


# -- the workspace -------------------------------------------------------------------------------------------

@dataclass
class DemoWorkspace:
    root: Path
    tmux_socket: str
    agent: str = "script"
    repos: dict[str, Path] = field(default_factory=dict)
    tasks: dict[str, JSON] = field(default_factory=dict)
    seed_s: float | None = None

    @property
    def file(self) -> Path:
        return self.root / WORKSPACE_FILE

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE

    def paths(self, repo: str) -> RepoPaths:
        return RepoPaths(self.repos[repo])

    def to_json(self) -> JSON:
        return {
            "workspace": str(self.root), "file": str(self.file), "state_file": str(self.state_file),
            "repos": {name: str(path) for name, path in self.repos.items()},
            "tmux_socket": self.tmux_socket, "agent": self.agent, "tasks": self.tasks, "seed_s": self.seed_s,
            "reopen": f"cockpit --workspace {shlex.quote(str(self.root))}",
            "stop": f"cockpit demo --stop --dir {shlex.quote(str(self.root))}",
        }

    def save(self) -> None:
        tmp = self.state_file.with_name(f".{STATE_FILE}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, self.state_file)

    @classmethod
    def load(cls, root: Path) -> DemoWorkspace:
        """The demo recorded in `root` (by `build`), for `stop`."""
        file = root / STATE_FILE
        try:
            data = json.loads(file.read_text())
        except FileNotFoundError:
            raise UsageError(f"{root} holds no cockpit demo (no {STATE_FILE})") from None
        except (OSError, ValueError) as exc:
            raise DemoError(f"cannot read {file}: {exc}") from None
        return cls(root=root, tmux_socket=str(data["tmux_socket"]), agent=str(data.get("agent", "script")),
                   repos={str(k): Path(v) for k, v in dict(data["repos"]).items()},
                   tasks=dict(data.get("tasks") or {}), seed_s=data.get("seed_s"))


def new_tmux_socket() -> str:
    """A fresh name for the demo's private tmux server (`tmux -L NAME`)."""
    return f"cockpit-demo-{secrets.token_hex(4)}"


def check_target(root: Path) -> None:
    """Refuse a `root` that is not new or empty: the demo never writes into a directory holding something."""
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        hint = (f"; it holds a demo already: open it with `cockpit --workspace {root}` or stop it with "
                f"`cockpit demo --stop --dir {root}`" if (root / STATE_FILE).exists() else "")
        raise UsageError(f"{root} is not an empty directory: give `cockpit demo --dir` a new or empty "
                         f"one{hint}")


def build(root: Path, *, tmux_socket: str, agent: str = "script",
          progress: Progress | None = None) -> DemoWorkspace:
    """Create the workspace file, both repos and their `.cockpit/` (config, store) under `root`.

    `root` must be new or empty: the demo never writes into a directory that holds something else.
    """
    say = progress or (lambda _msg: None)
    root = root.expanduser().resolve()
    check_target(root)
    root.mkdir(parents=True, exist_ok=True)
    ws = DemoWorkspace(root=root, tmux_socket=tmux_socket, agent=agent)
    for name in REPO_NAMES:
        path = root / name
        say(f"creating the {name} repo ({len(REPO_FILES[name])} files, tests, a unittest gate)")
        make_repo(path, REPO_FILES[name])
        _exclude_cockpit(path)
        paths = RepoPaths(path)
        for folder in (paths.cockpit, paths.plans, paths.worktrees, paths.logs, paths.signals):
            folder.mkdir(parents=True, exist_ok=True)
        write_config(paths.config, agent, tmux_socket)
        _create_store(paths)
        ws.repos[name] = path
    ws.file.write_text("# the cockpit demo: `cockpit --workspace .` opens it\n"
                       + "".join(f'\n[repos.{n}]\npath = "{n}"\n' for n in ws.repos))
    ws.save()
    return ws


def start(ws: DemoWorkspace, progress: Progress | None = None) -> None:
    """Start both repos' daemons (at once; each start returns when its socket answers)."""
    say = progress or (lambda _msg: None)
    say("starting the daemons of " + " and ".join(ws.repos))
    with ThreadPoolExecutor(len(ws.repos)) as pool:
        started = {name: pool.submit(daemonctl.start, ws.paths(name)) for name in ws.repos}
        for name, future in started.items():
            info = future.result().info
            say(f"  {name}: daemon pid {info.pid}")


def stop(ws: DemoWorkspace) -> list[str]:
    """Stop both daemons, then kill the private tmux server. Returns the problems met (best effort)."""
    problems: list[str] = []
    with ThreadPoolExecutor(max(1, len(ws.repos))) as pool:
        futures = {name: pool.submit(daemonctl.stop, RepoPaths(path)) for name, path in ws.repos.items()}
        for name, future in futures.items():
            try:
                future.result()
            except (CockpitError, OSError) as exc:
                # The demo started it, so the demo ends it: a daemon that does not stop is killed.
                killed = _kill_daemon(RepoPaths(ws.repos[name]))
                message = exc.message if isinstance(exc, CockpitError) else str(exc)
                problems.append(f"{name}: {message}" + (f"; killed pid {killed}" if killed else ""))
    problems.extend(kill_tmux_server(ws.tmux_socket))
    return problems


def _kill_daemon(paths: RepoPaths) -> int | None:
    info = daemonfile.read(paths.daemon_json)
    if info is None or not daemonfile.pid_alive(info.pid):
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGKILL)
    _wait_exit(info.pid, 10.0)
    return info.pid


def kill_tmux_server(socket_name: str, timeout_s: float = 10.0) -> list[str]:
    """Kill the private tmux server (fine when none runs), wait for it to exit and remove its socket."""

    def tmux(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", socket_name, *args], capture_output=True, text=True, check=False,
                              timeout=timeout_s)

    try:
        shown = tmux("display-message", "-p", "#{pid}").stdout.strip()
        tmux("kill-server")
    except FileNotFoundError:
        return []  # no tmux: no server either
    except (OSError, subprocess.SubprocessError) as exc:
        return [f"tmux -L {socket_name} kill-server: {exc}"]
    if shown.isdigit() and not _wait_exit(int(shown), timeout_s):
        return [f"the tmux server -L {socket_name} (pid {shown}) did not exit"]
    socket = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.geteuid()}" / socket_name
    with contextlib.suppress(OSError):
        socket.unlink(missing_ok=True)
    return []


def _wait_exit(pid: int, timeout_s: float) -> bool:
    """Block until `pid` has exited (True) or the timeout passes, on a pidfd (no polling)."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    try:
        ready, _, _ = select.select([fd], [], [], timeout_s)
        return bool(ready)
    finally:
        os.close(fd)


# -- the scripts the seeded tasks run ------------------------------------------------------------------------

def script(*steps: dict[str, Any], fix: list[dict[str, Any]] | None = None) -> str:
    """A script-agent TOML from step tables (each a one-key dict)."""
    import tomlkit

    doc = tomlkit.document()
    arr = tomlkit.aot()
    for step in steps:
        arr.append(tomlkit.item(step))
    doc["step"] = arr
    if fix:
        fix_arr = tomlkit.aot()
        for step in fix:
            fix_arr.append(tomlkit.item(step))
        doc["fix"] = fix_arr
    return tomlkit.dumps(doc)


def _write(path: str, content: str) -> dict[str, Any]:
    return {"write": {"path": path, "content": textwrap.dedent(content)}}


def _run_tests(module: str) -> dict[str, Any]:
    return {"run": f"{PYTHON} -m unittest -q {module}"}


EXPORT_SCRIPT = script(
    {"say": "Adding the /export endpoint; cockpit hands the export page to frontend (plan step 3)"},
    _write("app/export.py", '''\
        """GET /export: a report as CSV rows."""

        from app.reports import get_report


        def export(report_id: int) -> list[list[str]]:
            report = get_report(report_id)
            return [["title", "rows"], [str(report["title"]), str(report["rows"])]]
        '''),
    _write("tests/test_export.py", '''\
        import unittest

        from app.export import export


        class ExportTest(unittest.TestCase):
            def test_export_has_a_header_row(self) -> None:
                self.assertEqual(export(1)[0], ["title", "rows"])
        '''),
    _run_tests("tests.test_export"),
    {"commit": "Add the /export endpoint"},
)

RATE_LIMIT_SCRIPT = script(
    {"say": "Adding rate limiting to the export endpoint"},
    _write("app/ratelimit.py", '''\
        """A fixed-window rate limit for the export endpoint."""

        import time


        class RateLimit:
            def __init__(self, per_minute: int = 30) -> None:
                self.per_minute = per_minute
                self.window = int(time.time() // 60)
                self.used: dict[str, int] = {}

            def allow(self, key: str) -> bool:
                window = int(time.time() // 60)
                if window != self.window:
                    self.window, self.used = window, {}
                self.used[key] = self.used.get(key, 0) + 1
                return self.used[key] <= self.per_minute
        '''),
    {"ask": "Limit per API key rather than per user? (y/n)"},
    _write("tests/test_ratelimit.py", '''\
        import unittest

        from app.ratelimit import RateLimit


        class RateLimitTest(unittest.TestCase):
            def test_the_limit_holds(self) -> None:
                limit = RateLimit(per_minute=2)
                self.assertEqual([limit.allow("key") for _ in range(3)], [True, True, False])
        '''),
    _run_tests("tests.test_ratelimit"),
    {"commit": "Rate-limit the export endpoint per API key"},
)

CSV_SCRIPT = script(
    {"say": "Adding CSV output to report downloads"},
    _write("app/csv_output.py", '''\
        """Reports as CSV text."""

        import csv
        import io


        def to_csv(rows: list[list[str]]) -> str:
            out = io.StringIO()
            csv.writer(out, lineterminator="\\n").writerows(rows)
            return out.getvalue()
        '''),
    _write("tests/test_csv_output.py", '''\
        import unittest

        from app.csv_output import to_csv


        class CsvTest(unittest.TestCase):
            def test_quotes_commas(self) -> None:
                self.assertEqual(to_csv([["a,b", "c"]]), '"a,b",c\\n')
        '''),
    _run_tests("tests.test_csv_output"),
    {"commit": "Add CSV output to report downloads"},
)

PAGINATION_SCRIPT = script(
    {"say": "Page 1 skipped the first ten rows: pages count from 1"},
    _write("app/pagination.py", '''\
        """Split report rows into pages."""


        def page(rows: list[object], number: int, size: int = 10) -> list[object]:
            """The rows on page `number` (pages count from 1)."""
            start = (number - 1) * size
            return rows[start:start + size]
        '''),
    _write("tests/test_pagination.py", '''\
        import unittest

        from app.pagination import page


        class PaginationTest(unittest.TestCase):
            def test_first_page_starts_at_the_first_row(self) -> None:
                self.assertEqual(page(list(range(25)), 1), list(range(10)))

            def test_last_page_is_short(self) -> None:
                self.assertEqual(page(list(range(25)), 3), [20, 21, 22, 23, 24])
        '''),
    _run_tests("tests.test_pagination"),
    {"commit": "Fix the off-by-one in report pagination"},
)

CURRENCY_SCRIPT = script(
    {"say": "Adding currency formatting to report totals"},
    _write("app/currency.py", '''\
        """Money amounts for people."""


        def format_total(cents: int) -> str:
            return f"${cents / 100}"
        '''),
    _write("tests/test_currency.py", '''\
        import unittest

        from app.currency import format_total


        class CurrencyTest(unittest.TestCase):
            def test_thousands_and_cents(self) -> None:
                self.assertEqual(format_total(123450), "$1,234.50")
        '''),
    {"commit": "Format report totals as currency"},
    fix=[
        {"say": "The gate says the cents are missing: format with two decimals"},
        _write("app/currency.py", '''\
            """Money amounts for people."""


            def format_total(cents: int) -> str:
                return f"${cents / 100:.2f}"
            '''),
        {"commit": "Show cents in report totals"},
    ],
)

DELEGATING_TEXT = "Add an /export endpoint and have frontend redesign the export page"

# (role, description, script), in creation order: backend#1 .. backend#5.
SEEDED: tuple[tuple[str, str, str], ...] = (
    ("delegating", DELEGATING_TEXT, EXPORT_SCRIPT),
    ("asking", "Add rate limiting to the export endpoint", RATE_LIMIT_SCRIPT),
    ("review", "Add CSV output to report downloads", CSV_SCRIPT),
    ("merged", "Fix the off-by-one error in report pagination", PAGINATION_SCRIPT),
    ("failed", "Add currency formatting to report totals", CURRENCY_SCRIPT),
)

ENDED = frozenset({"failed", "interrupted", "cancelled", "rejected", "rolled_back", "done"})


# -- seeding -------------------------------------------------------------------------------------------------

async def _connect(paths: RepoPaths) -> DaemonClient:
    client = await DaemonClient.for_repo(paths, person=True)
    if client is None:
        raise DemoError(f"the daemon of {paths.root} is not running; start it with "
                        f"`cockpit daemon start --repo {paths.root}`", code="daemon_unavailable")
    return client


def _why(task: JSON) -> str:
    failure = str(task.get("failure") or "").strip()
    return f": {failure.splitlines()[0]}" if failure else ""


def _settled(paths: RepoPaths, task: JSON, check: Callable[[JSON], bool], what: str,
             expect_end: bool) -> bool:
    if check(task):
        return True
    if not expect_end and task.get("state") in ENDED:
        raise DemoError(f"{paths.root.name}#{task['id']} should be {what} but is {task['state']}{_why(task)}")
    return False


async def watch(paths: RepoPaths, task_id: int, check: Callable[[JSON], bool], *, what: str,
                timeout_s: float = SEED_TIMEOUT_S, expect_end: bool = False) -> JSON:
    """Wait until `check(task)` holds for the task, woken by the daemon's event stream (no polling).

    A task that ends some other way (failed, interrupted ...) is a DemoError at once, unless `expect_end`.
    """
    client = await _connect(paths)
    task: JSON = {}
    try:
        async with asyncio.timeout(timeout_s):
            since = int((await client.call("status"))["last_seq"])
            task = await client.call("get_task", {"id": task_id})
            if _settled(paths, task, check, what, expect_end):
                return task
            async for event in client.subscribe(since):
                if event.task_id != task_id:
                    continue
                task = await client.call("get_task", {"id": task_id})
                if _settled(paths, task, check, what, expect_end):
                    return task
            raise DemoError(f"the daemon of {paths.root} went away while {paths.root.name}#{task_id} "
                            f"was on its way to {what}")
    except TimeoutError:
        raise DemoError(f"{paths.root.name}#{task_id} is not {what} after {timeout_s:g}s: it is "
                        f"{task.get('state', 'unknown')}{_why(task)}") from None
    finally:
        await client.close()


def _delegate_step(task: JSON) -> JSON | None:
    return next((s for s in task.get("plan", []) if s.get("verb") == "delegate"), None)


def _waits_for_pending_peer(task: JSON) -> bool:
    step = _delegate_step(task)
    return (step is not None and step.get("peer_task_id") is not None and step.get("peer_state") == "pending"
            and task.get("agent_status") == "exited" and task.get("state") == "executing")


async def seed(ws: DemoWorkspace, *, progress: Progress | None = None,
               timeout_s: float = SEED_TIMEOUT_S) -> dict[str, JSON]:
    """Create, approve and steer the demo's tasks until each is in its state (see the module docstring).

    Returns `{role: {"repo", "id", "state"}}` and records it in the workspace's state file.
    """
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    backend = ws.paths("backend")
    frontend = ws.paths("frontend")
    client = await _connect(backend)
    ids: dict[str, int] = {}
    try:
        for role, text, steps in SEEDED:
            task = await client.call("create_task", {"text": text, "script": steps, "force": True,
                                                     "by": "person"})
            ids[role] = int(task["id"])
            # Approved as a person would in the cockpit: the daemon starts it in a worktree of its own.
            await client.call("approve_task", {"id": ids[role], "by": "person"})
            say(f"backend#{ids[role]} {task['scope']}, approved: {task['title']}")
            # One at a time into a worktree: concurrent `git worktree add`s in one repo can trip over each
            # other's half-made entries ("failed to read .git/worktrees/<other>/commondir").
            await watch(backend, ids[role], lambda t: t.get("state") != "approved", what="started",
                        timeout_s=timeout_s, expect_end=True)
    finally:
        await client.close()

    def elapsed() -> str:
        return f"{time.monotonic() - started:.1f}s"

    async def delegating() -> JSON:
        task = await watch(backend, ids["delegating"], _waits_for_pending_peer,
                           what="waiting for its delegated frontend task", timeout_s=timeout_s)
        step = _delegate_step(task)
        assert step is not None
        child = int(step["peer_task_id"])
        await watch(frontend, child, lambda t: t.get("state") == "pending", what="pending",
                    timeout_s=timeout_s)
        say(f"backend#{task['id']} did its part and waits for frontend#{child}, pending approval there "
            f"({elapsed()})")
        return {"repo": "frontend", "id": child, "state": "pending", "parent": {"repo": "backend",
                                                                                "id": task["id"]}}

    async def asking() -> JSON:
        task = await watch(backend, ids["asking"], lambda t: bool(t.get("needs_input")),
                           what="asking a question", timeout_s=timeout_s)
        say(f"backend#{task['id']}'s agent asks a question ({elapsed()})")
        return task

    async def review() -> JSON:
        task = await watch(backend, ids["review"], lambda t: t.get("state") == "awaiting_review",
                           what="awaiting review", timeout_s=timeout_s)
        say(f"backend#{task['id']} passed its gates and awaits review ({elapsed()})")
        return task

    async def merged() -> JSON:
        task_id = ids["merged"]
        await watch(backend, task_id, lambda t: t.get("state") == "awaiting_review", what="awaiting review",
                    timeout_s=timeout_s)
        merger = await _connect(backend)
        try:
            result = await merger.call("merge_task", {"id": task_id}, timeout=timeout_s)
        finally:
            await merger.close()
        task: JSON = result["task"]
        if task.get("state") != "done":
            raise DemoError(f"backend#{task_id} was not merged: it is {task.get('state')}{_why(task)}")
        sha = str((task.get("merge") or {}).get("rollback_sha") or "")[:10]
        say(f"backend#{task_id} merged into main, rollback point {sha} ({elapsed()})")
        return task

    async def failed() -> JSON:
        task = await watch(backend, ids["failed"], lambda t: t.get("state") == "failed", what="failed",
                           timeout_s=timeout_s, expect_end=True)
        say(f"backend#{task['id']} failed its tests gate, after a fix attempt ({elapsed()})")
        return task

    results = await asyncio.gather(delegating(), asking(), review(), merged(), failed())
    roles = ("delegated", "asking", "review", "merged", "failed")
    seeded: dict[str, JSON] = {
        "delegating": {"repo": "backend", "id": ids["delegating"], "state": "executing"}}
    for role, task in zip(roles, results, strict=True):
        seeded[role] = {"repo": task.get("repo", "backend"), "id": int(task["id"]), "state": task["state"]}
        if role == "delegated":
            seeded[role]["parent"] = task["parent"]
    ws.tasks = seeded
    ws.seed_s = round(time.monotonic() - started, 2)
    ws.save()
    return seeded

