"""The agent's sandbox: its pane's command line run under bubblewrap (`[agent] sandbox`, docs/design.md).

Inside, the whole filesystem is read-only and `/tmp` is a fresh tmpfs. Writable, and nothing else:

- the task's worktree;
- the git data its own branch needs: the object store, the worktree's admin folder (`.git/worktrees/<name>`),
  the folder holding its branch ref and that ref's reflog folder (the other refs already in those folders are
  bound read-only over themselves, so they cannot be moved or removed);
- the repo's `.cockpit/signals/` (hooks write their signal files there) and the agent's own folders (its
  per-task home; an agent that keeps state under the person's home, Claude Code, gets a per-task config
  folder there instead, since the person's home stays read-only).

Hidden: the person's token (`/dev/null` in its place) and the other machines' tokens trusted beside it (an
empty tmpfs), the tmux servers' sockets, `$XDG_RUNTIME_DIR` (session bus and the like), and the person's
other processes (a private pid namespace, so nothing can be read from `/proc/PID` of the daemon). The
daemon's socket stays reachable: the agent's hooks and `cockpit mcp` talk to it, as the peer principal.
The network is shared (agents call their model's API). Capabilities are dropped.

`wrap` is the one entry point: the pane launch gives it the agent's command line and the task's paths.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.core import principals
from cockpit.core.errors import ConfigError
from cockpit.core.paths import RepoPaths

MODES = ("auto", "bwrap", "none")
BWRAP = "bwrap"


@dataclass(frozen=True)
class SandboxSpec:
    """What one agent run may touch."""

    worktree: Path
    repo_root: Path
    signals_dir: Path
    socket: Path | None = None  # the daemon's socket (it may live outside the repo)
    homes: tuple[Path, ...] = ()  # the agent's own folders (its per-task home); those missing are skipped
    hidden: tuple[Path, ...] = field(default_factory=lambda: (principals.token_path(),
                                                              principals.trusted_dir()))


@functools.lru_cache(maxsize=4)
def _bwrap_works(exe: str) -> str:
    """'' when `exe` can make a sandbox here, else why not (no user namespaces, seccomp...). Blocks."""
    try:
        proc = subprocess.run([exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                               "--unshare-pid", "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return "" if proc.returncode == 0 else (proc.stderr.strip() or f"exit {proc.returncode}")


@functools.lru_cache(maxsize=4)
def _nests(exe: str) -> bool:
    """Whether a bubblewrap sandbox inside this one can make its own namespaces. Blocks.

    An agent with a sandbox of its own (Codex) needs it. It cannot when the daemon runs as root: without
    capabilities, a user namespace that maps root may not be made (a container's usual case)."""
    outer = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
             "--cap-drop", "ALL"]
    inner = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-user", "--unshare-net", "true"]
    try:
        proc = subprocess.run([*outer, "--", *inner], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def nests() -> bool:
    """Whether an agent's own bubblewrap sandbox works inside cockpit's. Blocks (probes once per process)."""
    exe = shutil.which(BWRAP)
    return exe is not None and _nests(exe)


def resolve(mode: str) -> str:
    """The sandbox a run gets: "bwrap" or "none". `bwrap` where it cannot work is a clear error. Blocks."""
    if mode not in MODES:
        raise ConfigError(f"[agent] sandbox must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "none":
        return "none"
    exe = shutil.which(BWRAP)
    problem = "bubblewrap is not installed" if exe is None else _bwrap_works(exe)
    if not problem:
        return "bwrap"
    if mode == "auto":
        return "none"
    raise ConfigError(f"[agent] sandbox = \"bwrap\" but {problem}; install bubblewrap (apt-get install "
                      "bubblewrap) or set [agent] sandbox = \"none\"")


def _git_dirs(worktree: Path) -> tuple[Path, Path]:
    """(the worktree's admin folder, the repo's common git folder), read from the worktree's `.git` file."""
    dot_git = worktree / ".git"
    text = dot_git.read_text().strip()
    if not text.startswith("gitdir:"):
        raise ConfigError(f"{dot_git} is not a worktree's .git file; the sandbox needs a linked worktree")
    admin = Path(text.removeprefix("gitdir:").strip())
    admin = admin if admin.is_absolute() else (worktree / admin)
    common_file = admin / "commondir"
    common = Path(common_file.read_text().strip()) if common_file.exists() else admin.parent.parent
    common = common if common.is_absolute() else admin / common
    return admin.resolve(), common.resolve()


def _under(path: Path, parents: Iterable[Path]) -> bool:
    return any(path == p or p in path.parents for p in parents)


def _others(folder: Path, keep: Path) -> list[Path]:
    """Every file below `folder` but `keep` (other branches' refs or reflogs)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p != keep) if folder.is_dir() else []


def _branch_paths(worktree: Path) -> tuple[Path, Path, Path, Path]:
    """(admin folder, common git folder, branch ref, branch reflog) of a worktree on a branch. Blocks."""
    admin, common = _git_dirs(worktree)
    head = (admin / "HEAD").read_text().strip()
    if not head.startswith("ref: refs/heads/"):
        raise ConfigError(f"the worktree {worktree} is not on a branch (HEAD is {head[:40]!r})")
    branch = head.removeprefix("ref: refs/heads/")
    return admin, common, common / "refs" / "heads" / branch, common / "logs" / "refs" / "heads" / branch


def writable_paths(spec: SandboxSpec) -> list[Path]:
    """What the agent may write inside the sandbox (the worktree first). Blocks (reads the git layout).

    An agent's own sandbox nested inside must name these, not `.git` itself: that one is read-only here."""
    worktree = spec.worktree.resolve()
    admin, common, ref, reflog = _branch_paths(worktree)
    reflog.parent.mkdir(parents=True, exist_ok=True)  # git creates it on a commit, and could not inside
    writable = [worktree, common / "objects", admin, ref.parent, reflog.parent, spec.signals_dir.resolve()]
    return writable + [home.resolve() for home in spec.homes if home.is_dir()]


def bwrap_argv(spec: SandboxSpec, env: dict[str, str] | None = None) -> list[str]:
    """bubblewrap's arguments (up to and including `--`) for `spec`. Blocks (reads the git layout)."""
    env = dict(os.environ) if env is None else env
    worktree = spec.worktree.resolve()
    writable = writable_paths(spec)
    _admin, _common, ref, reflog = _branch_paths(worktree)
    argv = [BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    hidden_dirs = [Path("/tmp")]
    uid = os.getuid()
    for folder in (env.get("XDG_RUNTIME_DIR"), Path(env.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{uid}"):
        if folder and Path(folder).is_dir() and not _under(Path(folder).resolve(), hidden_dirs):
            argv += ["--tmpfs", str(Path(folder).resolve())]
            hidden_dirs.append(Path(folder).resolve())
    # What the tmpfs mounts above covered that the agent needs to read: its repo, the daemon's socket folder,
    # the programs on its PATH, Python and cockpit itself (any of them can be under /tmp, in tests above all).
    readable = [spec.repo_root, Path(sys.prefix), Path(sys.base_prefix), Path(__file__).parents[2]]
    if env.get("HOME"):
        readable.append(Path(env["HOME"]))  # the agent reads its config and auth there (never writes)
    # A PATH folder's parent too: a venv's `bin/` needs its `lib/`, npm's `node_modules/.bin` its packages.
    readable += [Path(p).parent for p in env.get("PATH", "").split(os.pathsep) if p]
    if spec.socket is not None:
        readable.append(spec.socket.parent)
    bound: list[Path] = []
    for path in (p.resolve() for p in readable):
        if _under(path, hidden_dirs) and path.is_dir() and not _under(path, bound):
            argv += ["--ro-bind", str(path), str(path)]
            bound.append(path)
    for path in writable:
        argv += ["--bind", str(path), str(path)]
    for other in [*_others(ref.parent, ref), *_others(reflog.parent, reflog)]:
        argv += ["--ro-bind", str(other), str(other)]
    for secret in spec.hidden:
        if secret.name == principals.TRUSTED_DIR and secret.parent.is_dir():
            # Made now if missing, so a token trusted while the agent runs is hidden from it too.
            secret.mkdir(mode=0o700, exist_ok=True)
        if secret.is_dir():
            argv += ["--tmpfs", str(secret.resolve())]
        elif secret.exists():
            argv += ["--ro-bind", "/dev/null", str(secret.resolve())]
    argv += ["--unshare-pid", "--unshare-ipc", "--die-with-parent", "--cap-drop", "ALL",
             "--setenv", "COCKPIT_SANDBOX", "bwrap", "--chdir", str(worktree), "--"]
    return argv


def wrap(command: str, spec: SandboxSpec, mode: str) -> tuple[str, str]:
    """(`command` as it runs in the agent's pane under `mode`, the sandbox used: "bwrap" or "none").

    Blocks (probes bubblewrap once per process, reads the git layout).
    """
    if resolve(mode) == "none":
        return command, "none"
    return shlex.join([*bwrap_argv(spec), "/bin/sh", "-c", command]), "bwrap"


def for_task(paths: RepoPaths, task_id: int, worktree: Path) -> SandboxSpec:
    """The sandbox of task `task_id`'s agent in `worktree` (its own home: `.cockpit/agents/task-<id>/`)."""
    return SandboxSpec(worktree=worktree, repo_root=paths.root, signals_dir=paths.signals,
                       socket=paths.socket, homes=(paths.cockpit / "agents" / f"task-{task_id}",))

