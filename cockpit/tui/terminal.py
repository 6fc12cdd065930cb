"""Handing the terminal over: to a task's agent pane (`t`) or a shell in its worktree (`s`), and back.

The repo's daemon (or its store's ops) names the pane and opens the shell (`attach_info`, `open_shell`) and
answers with the argv to run; for a repo on another host that argv runs there, through `ssh -t`. The app
suspends while it runs and says, before and after, how the person comes back.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import App, SuspendNotSupported

from cockpit.core.errors import CockpitError
from cockpit.core.models import JSON, Task
from cockpit.core.states import State
from cockpit.tui.repos import Repos


def tmux_prefix(argv: list[str]) -> str:
    """The tmux prefix key of the server `argv` attaches to, as tmux writes it ("C-b" unless configured).

    Thread: it runs tmux."""
    try:
        at = argv.index("tmux")
    except ValueError:
        return "C-b"
    base = argv[: at + 1] + (argv[at + 1 : at + 3] if argv[at + 1 : at + 2] == ["-L"] else [])
    try:
        found = subprocess.run([*base, "show-options", "-gv", "prefix"], capture_output=True, text=True,
                               timeout=3, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "C-b"
    return found.stdout.strip() or "C-b"


def with_hint(argv: list[str], hint: str) -> list[str]:
    """Have tmux show how to come back, on the status line, once the terminal is attached."""
    if "attach-session" not in argv and "switch-client" not in argv:
        return argv
    return [*argv, ";", "display-message", "-d", "6000", hint]


def argv_of(reply: JSON) -> list[str]:
    given = reply.get("argv")
    return [str(a) for a in given] if isinstance(given, list) else []


class Terminals:
    def __init__(self, app: App[Any], repos: Repos, say: Callable[[str, str], None]) -> None:
        self.app = app
        self.repos = repos
        self.say = say

    # -- the agent's pane ------------------------------------------------------------------------------------

    def attach(self, repo: str, task: Task) -> None:
        if task.pane is None and task.state is not State.EXECUTING:
            self.say(f"{repo}#{task.id} has no agent pane", "warning")
            return
        self.app.run_worker(self._attach_agent(repo, task), name=f"attach:{repo}", group="attach",
                            exclusive=True, exit_on_error=False)

    async def _attach_agent(self, repo: str, task: Task) -> None:
        link = self.repos.links[repo]
        try:
            argv = argv_of(await link.call("attach_info", {"id": task.id}))
        except CockpitError as exc:
            self.say(f"{repo}#{task.id}: {self._refusal(exc, 'attach_info')}", "error")
            return
        if not argv:
            self.say(f"{repo}#{task.id}: its daemon named no pane", "error")
            return
        hosted = link.hosted
        if hosted is not None:
            # The pane is on the repo's host: attach there, in this terminal.
            self.run_attached(hosted.host.tty_argv(argv), f"{repo}#{task.id}'s agent on "
                                                          f"{hosted.host.destination}")
            return
        prefix = await asyncio.to_thread(tmux_prefix, argv)
        self.run_attached(with_hint(argv, f"{prefix} d comes back to the cockpit"),
                          f"{repo}#{task.id}'s agent", hint=f"{prefix} d (detach) comes back")

    @staticmethod
    def _refusal(exc: CockpitError, op: str) -> str:
        if exc.code == "unknown_op":
            return f"this daemon does not offer {op} (restart it on a newer cockpit)"
        return exc.message

    # -- a shell in the worktree -----------------------------------------------------------------------------

    def shell(self, repo: str, task: Task) -> None:
        link = self.repos.links[repo]
        if not task.worktree or (link.hosted is None and not Path(task.worktree).is_dir()):
            self.say(f"{repo}#{task.id} has no worktree", "warning")
            return
        self.app.run_worker(self._shell(repo, task), name=f"shell:{repo}", group="attach", exclusive=True,
                            exit_on_error=False)

    async def _shell(self, repo: str, task: Task) -> None:
        link = self.repos.links[repo]
        worktree = Path(str(task.worktree))
        hosted = link.hosted
        if hosted is None and shutil.which("tmux") is None:
            # No tmux here: a plain shell in the worktree, in this terminal.
            shell = [os.environ.get("SHELL") or "/bin/sh"]
            self.run_attached(shell, f"the shell in {repo}#{task.id}'s worktree", cwd=worktree,
                              hint="exit comes back to the cockpit")
            return
        try:
            argv = argv_of(await link.call("open_shell", {"id": task.id}))
        except CockpitError as exc:
            self.say(f"{repo}#{task.id}: {self._refusal(exc, 'open_shell')}", "error")
            return
        if hosted is not None:
            self.run_attached(hosted.host.tty_argv(argv), f"the shell in {repo}#{task.id}'s worktree on "
                                                          f"{hosted.host.destination}")
            return
        prefix = await asyncio.to_thread(tmux_prefix, argv)
        hint = f"exit (or {prefix} d) comes back to the cockpit"
        self.run_attached(with_hint(argv, hint), f"the shell in {repo}#{task.id}'s worktree", cwd=worktree,
                          hint=hint)

    # -- the hand-over ---------------------------------------------------------------------------------------

    def run_attached(self, argv: list[str], what: str, cwd: Path | None = None, hint: str = "") -> None:
        """Hand the terminal to `argv` (the app suspends) and come back when it ends (tmux: on detach)."""
        runner = self.repos.config.attach
        self.say(f"opening {what}" + (f": {hint}" if hint else ""), "info")
        try:
            if runner is not None:
                code = runner(argv)
            else:
                with self.app.suspend():
                    print(f"cockpit: opening {what}" + (f"; {hint}" if hint else ""), flush=True)
                    code = subprocess.call(argv, cwd=cwd)
        except SuspendNotSupported:
            self.say(f"this terminal cannot hand over to {what}; run: {shlex.join(argv)}", "error")
            return
        except OSError as exc:
            self.say(f"cannot run {argv[0]}: {exc.strerror}", "error")
            return
        self.say(f"back from {what}" + (f" (exit {code})" if code else ""), "ok" if not code else "warning")
