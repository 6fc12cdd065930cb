"""Where a repository's cockpit files live (docs/design.md, Files)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cockpit.core.errors import CockpitError, NotARepoError

# sun_path holds 108 bytes on Linux including the NUL; keep a margin.
MAX_SOCKET_PATH = 100


def find_repo_root(start: Path | None = None) -> Path:
    """The git working tree around `start` (default: the current directory).

    Inside a task's worktree (`<repo>/.cockpit/worktrees/<name>/...`) this is the repo that owns the worktree,
    so an agent running cockpit commands in its pane reaches its own repo's store and daemon.
    """
    here = (start or Path.cwd()).resolve()
    if not here.is_dir():
        raise NotARepoError(f"{here} is not a directory; pass --repo the path of a git repository")
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            owner = candidate.parent.parent.parent
            if (candidate.parent.name == "worktrees" and candidate.parent.parent.name == ".cockpit"
                    and (owner / ".git").exists()):
                return owner
            return candidate
    raise NotARepoError(f"{here} is not inside a git repository; run `git init` there or pass --repo PATH")


@dataclass(frozen=True)
class RepoPaths:
    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> RepoPaths:
        return cls(find_repo_root(start))

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def cockpit(self) -> Path:
        return self.root / ".cockpit"

    @property
    def db(self) -> Path:
        return self.cockpit / "index.db"

    @property
    def config(self) -> Path:
        return self.cockpit / "config.toml"

    @property
    def daemon_json(self) -> Path:
        return self.cockpit / "daemon.json"

    @property
    def plans(self) -> Path:
        return self.cockpit / "plans"

    @property
    def worktrees(self) -> Path:
        return self.cockpit / "worktrees"

    @property
    def logs(self) -> Path:
        return self.cockpit / "logs"

    @property
    def signals(self) -> Path:
        return self.cockpit / "signals"

    @property
    def scripts(self) -> Path:
        return self.cockpit / "scripts"

    @property
    def prompts(self) -> Path:
        return self.cockpit / "prompts"

    @property
    def scratch(self) -> Path:
        return self.cockpit / "scratch"

    def plan_file(self, task_id: int) -> Path:
        return self.plans / f"task-{task_id}.md"

    def task_log(self, task_id: int) -> Path:
        return self.logs / f"task-{task_id}.log"

    def gate_log(self, task_id: int) -> Path:
        return self.logs / f"task-{task_id}-gates.log"

    @property
    def daemon_log(self) -> Path:
        return self.logs / "daemon.log"

    @property
    def socket(self) -> Path:
        """`.cockpit/daemon.sock`, or a short path under the runtime dir when that is too long for sun_path.
        """
        preferred = self.cockpit / "daemon.sock"
        if len(os.fsencode(preferred)) <= MAX_SOCKET_PATH:
            return preferred
        import hashlib  # only here: hashlib maps OpenSSL's libcrypto, megabytes an idle daemon need not hold

        digest = hashlib.sha256(os.fsencode(self.root)).hexdigest()[:16]
        return runtime_dir() / f"{digest}.sock"


def runtime_dir() -> Path:
    """`$XDG_RUNTIME_DIR/cockpit-<uid>` (or under /tmp): created 0700, and refused unless it is a real
    directory owned by this user with mode 0700, since whoever controls it could serve a fake daemon."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    path = Path(base) / f"cockpit-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    info = path.lstat()
    fix = "remove it (or set XDG_RUNTIME_DIR to a private directory) and try again"
    if stat.S_ISLNK(info.st_mode):
        raise CockpitError(f"the socket directory {path} is a symbolic link; {fix}", code="unsafe_socket_dir")
    if not stat.S_ISDIR(info.st_mode):
        raise CockpitError(f"the socket directory {path} is not a directory; {fix}", code="unsafe_socket_dir")
    if info.st_uid != os.getuid():
        raise CockpitError(f"the socket directory {path} is owned by uid {info.st_uid}, not you "
                           f"(uid {os.getuid()}); {fix}", code="unsafe_socket_dir")
    if stat.S_IMODE(info.st_mode) != 0o700:
        mode = stat.S_IMODE(info.st_mode)
        raise CockpitError(f"the socket directory {path} has mode {mode:04o}, not 0700: others could "
                           f"replace the daemon's socket; {fix}", code="unsafe_socket_dir")
    return path
