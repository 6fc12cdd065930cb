"""`cockpit demo [--dir PATH] [--keep] [--agent NAME] [--no-ui]` and `cockpit demo --stop --dir PATH`.

Builds the demo workspace (`cockpit.demo`): two real git repos, their daemons, a private tmux server, and
tasks in every interesting state, seeded with the script agent; then opens the cockpit on it. Quitting the
cockpit (or Ctrl-C, SIGTERM, SIGHUP) stops both daemons and the private tmux server, and removes the
workspace when it was a temporary directory, unless --keep.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cockpit.cli.output import out
from cockpit.cli.running import run_async
from cockpit.core.agents import BACKENDS
from cockpit.core.errors import CockpitError, UsageError
from cockpit.demo import seeding, workspace

AGENTS = tuple(b for b in BACKENDS if b != "custom")
AGENT_EXECUTABLES = {"claude": "claude", "codex": "codex", "aider": "aider", "gemini": "gemini"}

DESCRIPTION = """\
Build a demo workspace of two real git repos (backend and frontend, each with code, tests and a unittest
gate), start their daemons and a private tmux server, seed tasks in every interesting state with the script
agent (no network, no LLM), and open the cockpit on it:

  backend#1  a large task that delegated work to frontend and waits for it
  frontend#1 that delegated task: large, so it is pending until a person approves it (2, then a)
  backend#2  an agent asking a question (enter answers it)
  backend#3  awaiting review with every gate passed (d shows the diff, m merges)
  backend#4  merged into main with a rollback point (u rolls it back)
  backend#5  failed: its tests gate failed after a fix attempt, with the gate's log

Quitting the cockpit stops the daemons and the tmux server and removes the temporary workspace, unless
--keep. With --agent claude (or codex, aider, gemini) the seeded tasks still run their scripts, but the
frontend task and every new task run that agent.
"""

EPILOG = """\
scripts: `cockpit demo --dir D --no-ui` builds and seeds D, prints it as JSON and leaves it running (the
daemons, the tmux server: --no-ui implies --keep); `cockpit --workspace D` opens it, and
`cockpit demo --stop --dir D` stops it.
"""


def _check_agent(agent: str) -> None:
    exe = AGENT_EXECUTABLES.get(agent)
    if exe is not None and shutil.which(exe) is None:
        raise UsageError(f"--agent {agent}: `{exe}` is not installed (not on PATH); install it, or run the "
                         "demo with the script agent (the default)")


class _Stop(Exception):
    """SIGTERM or SIGHUP arrived before the cockpit was open."""


def _emit(text: str, *, err: bool = False) -> None:
    """Print, never failing: after SIGHUP the terminal is gone, and cleaning up matters more than telling."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr if err else sys.stdout, flush=True)


class _Signals:
    """SIGTERM and SIGHUP during the demo: close the cockpit (or stop the build and seed), then clean up.

    While the demo cleans up, further signals are noted and ignored, so the clean-up runs to its end.
    """

    def __init__(self) -> None:
        self.app: Any = None
        self.cleaning = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._previous[int(sig)] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, old in self._previous.items():
            signal.signal(number, old)

    def _handle(self, signum: int, frame: object) -> None:
        if self.cleaning:
            return
        app = self.app
        if app is not None and app.is_running:
            # The cockpit's loop runs on this thread: ask it to exit from another one.
            threading.Thread(target=app.call_from_thread, args=(app.exit,), daemon=True).start()
            return
        self.cleaning = True  # one stop is enough: a second signal must not cut the clean-up short
        raise _Stop(signal.Signals(signum).name)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.stop:
        return cmd_stop(args)
    quiet = bool(args.json or args.no_ui)

    def say(message: str) -> None:
        if not quiet:
            _emit(f"demo: {message}")
        elif not args.json:
            _emit(f"demo: {message}", err=True)

    _check_agent(args.agent)
    temporary = args.dir is None
    root = Path(tempfile.mkdtemp(prefix="cockpit-demo-") if temporary else args.dir).expanduser().resolve()
    workspace.check_target(root)  # before anything is created: what the clean-up below removes is ours
    socket_name = workspace.new_tmux_socket()
    ws: workspace.DemoWorkspace | None = None
    ok = False
    with _Signals() as signals:
        try:
            started = time.monotonic()
            ws = workspace.build(root, tmux_socket=socket_name, agent=args.agent, progress=say)
            workspace.start(ws, progress=say)
            say("seeding tasks with the script agent")
            run_async(_seed(ws, say))
            say(f"ready in {time.monotonic() - started:.1f}s: {ws.root}")
            if args.no_ui:
                out(args, ws.to_json(), lambda: print(_json_line(ws)))
                ok = True
                return 0
            from cockpit.tui.app import make_app

            signals.app = app = make_app(ws.root)
            result = app.run()
            ok = True
            # A crash inside the cockpit shows its traceback and sets the return code; say so in ours.
            return int(app.return_code or result or 0)
        except _Stop as stop:
            _emit(f"demo: stopped by {stop}", err=True)
            return 130
        finally:
            signals.cleaning = True
            keep = args.keep or (args.no_ui and ok)
            _finish(root, ws, socket_name, keep=keep, temporary=temporary, say=say, quiet=quiet)


def _json_line(ws: workspace.DemoWorkspace) -> str:
    import json

    return json.dumps(ws.to_json())


async def _seed(ws: workspace.DemoWorkspace, say: Callable[[str], None]) -> int:
    await seeding.seed(ws, progress=say)
    return 0


def _finish(root: Path, ws: workspace.DemoWorkspace | None, socket_name: str, *, keep: bool, temporary: bool,
            say: Callable[[str], None], quiet: bool) -> None:
    """Stop what the demo started (unless kept), and say how to come back to a kept one."""
    if keep and ws is not None:
        if not quiet:
            where = shlex.quote(str(root))
            _emit(f"the demo keeps running in {root}\n"
                  f"  reopen it:  cockpit --workspace {where}\n"
                  f"  stop it:    cockpit demo --stop --dir {where}")
        return
    say("stopping the daemons and the tmux server")
    # With no workspace the build failed part way: stop whatever of it is up.
    problems = workspace.stop(ws) if ws is not None else _stop_partial(root, socket_name)
    for problem in problems:
        _emit(f"demo: {problem}", err=True)
    if temporary:
        shutil.rmtree(root, ignore_errors=True)


def _stop_partial(root: Path, socket_name: str) -> list[str]:
    repos = {name: root / name for name in workspace.REPO_NAMES if (root / name / ".git").exists()}
    return workspace.stop(workspace.DemoWorkspace(root=root, tmux_socket=socket_name, repos=repos))


def cmd_stop(args: argparse.Namespace) -> int:
    if args.dir is None:
        raise UsageError("`cockpit demo --stop` needs --dir: the demo's directory")
    root = Path(args.dir).expanduser().resolve()
    ws = workspace.DemoWorkspace.load(root)
    problems = workspace.stop(ws)
    data = {"workspace": str(root), "stopped": not problems, "problems": problems,
            "tmux_socket": ws.tmux_socket}
    out(args, data, lambda: print(
        f"stopped the demo in {root} (its daemons and tmux server -L {ws.tmux_socket}); its files are kept"
        if not problems else "\n".join(f"demo: {p}" for p in problems)))
    if problems:
        raise CockpitError("the demo did not stop cleanly: " + "; ".join(problems), code="demo")
    return 0


def register(sub: Any, tsub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", help="open the cockpit on a seeded demo workspace", description=DESCRIPTION,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="with --no-ui or --stop: print one JSON object")
    p.add_argument("--dir", metavar="PATH",
                   help="build the workspace here (a new or empty directory; default: a fresh temporary one, "
                        "removed on quit unless --keep)")
    p.add_argument("--keep", action="store_true",
                   help="leave the daemons, the tmux server and the files when the cockpit quits")
    p.add_argument("--agent", choices=AGENTS, default="script",
                   help="the agent for tasks without a script (default: script; the seeded tasks always run "
                        "their scripts)")
    p.add_argument("--no-ui", action="store_true",
                   help="build and seed, print the workspace as JSON, leave it running (implies --keep); for "
                        "scripts and tests")
    p.add_argument("--stop", action="store_true",
                   help="stop the demo kept in --dir (its daemons and tmux server; the files stay)")
    p.set_defaults(func=cmd_demo)
