"""The demo workspace on disk: its two git repos (their files are package data), their `.cockpit/`, the
workspace file; starting and stopping their daemons and the private tmux server."""

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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from cockpit.core import config as cfg
from cockpit.core import daemonctl, daemonfile
from cockpit.core.errors import CockpitError, UsageError
from cockpit.core.excludes import ensure_excluded
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
        ensure_excluded(path)
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




def repo_files(name: str) -> dict[str, str]:
    """The files of the demo repo `name` (path -> text), as shipped in the package (`cockpit/demo/repos/`)."""
    files: dict[str, str] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name == "__pycache__" or entry.name.endswith(".pyc"):
                continue
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            else:
                files[prefix + entry.name] = entry.read_text(encoding="utf-8")

    walk(resources.files("cockpit.demo") / "repos" / name, "")
    return files


REPO_FILES = {name: repo_files(name) for name in REPO_NAMES}
