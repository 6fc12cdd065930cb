"""`cockpit daemon start|stop|status|run`."""

from __future__ import annotations

import argparse

from cockpit.cli.output import out, say
from cockpit.cli.repo import init_repo
from cockpit.cli.running import repo_paths
from cockpit.core import daemonctl
from cockpit.core.paths import RepoPaths


def cmd_daemon(args: argparse.Namespace) -> int:
    paths = repo_paths(args)
    action = args.action
    if action == "run":
        return daemon_run(paths, args.ready_fd)
    if action == "start":
        if not paths.db.exists():
            init_repo(paths)
        result = daemonctl.start(paths)
        data = {**result.info.to_json(), "already_running": result.already_running}
        msg = (f"a daemon is already running for {paths.root} (pid {result.info.pid})"
               if result.already_running
               else f"daemon started (pid {result.info.pid}, socket {result.info.socket})")
        out(args, data, lambda: say(args, msg))
        return 0
    if action == "stop":
        info = daemonctl.stop(paths)
        data = {"stopped": info is not None, "pid": info.pid if info else None}
        out(args, data, lambda: say(args, f"daemon stopped (pid {info.pid})" if info
                                    else "no daemon was running"))
        return 0
    info = daemonctl.status(paths)
    data = {"running": info is not None, **(info.to_json() if info else {})}
    out(args, data, lambda: say(args, f"running (pid {info.pid}, socket {info.socket})" if info
                                else "not running"))
    return 0 if info else 1


def daemon_run(paths: RepoPaths, ready_fd: int | None) -> int:
    from cockpit.daemon.assembly import run_until_stopped

    if not paths.db.exists():
        init_repo(paths)
    return run_until_stopped(paths, ready_fd)
