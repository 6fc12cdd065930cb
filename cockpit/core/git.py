"""Blocking git helpers: refs, worktrees, cleanliness and diffs.

Every function here is synchronous (GitPython runs `git` as a subprocess); the daemon calls them through
`asyncio.to_thread`. Failures raise `GitError` (git could not do it) or `RefusedError` (git could, but doing
it would touch someone's work), each with one line saying what is wrong and what to do.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cockpit.core.errors import GitError, RefusedError

__all__ = [
    "GitResult",
    "WorktreeInfo",
    "branch_ref",
    "changed_files",
    "checkout_infos",
    "checkout_paths",
    "checkouts_of",
    "commit_env",
    "commits_beyond",
    "create_worktree",
    "diff",
    "dirty_files",
    "head_sha",
    "is_ancestor",
    "is_clean",
    "list_worktrees",
    "merge_base",
    "ref_sha",
    "remove_worktree",
    "run_git",
    "run_git_with_identity",
    "short_branch",
]

HEADS = "refs/heads/"

# Environment every git call runs with: never open an editor or prompt for credentials, and keep
# `git status` from taking optional locks in checkouts where an agent or a person is working.
_BASE_ENV: dict[str, str] = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_SEQUENCE_EDITOR": "true",
    "GIT_MERGE_AUTOEDIT": "no",
    "GIT_OPTIONAL_LOCKS": "0",
}

FALLBACK_NAME = "agent-cockpit"
FALLBACK_EMAIL = "agent-cockpit@localhost"


@dataclass(frozen=True)
class GitResult:
    """The outcome of one git command."""

    status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == 0

    def first_error_line(self) -> str:
        """The most telling line of stderr (git's `fatal:`/`error:` line when there is one)."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        for line in lines:
            if line.startswith(("fatal:", "error:")):
                return line
        return lines[0] if lines else f"exit status {self.status}"


@dataclass(frozen=True)
class WorktreeInfo:
    """One entry of `git worktree list`: the main checkout first, then linked worktrees."""

    path: Path
    branch: str | None  # short branch name, None when detached
    head: str
    is_main: bool = False
    locked: bool = False
    prunable: bool = False  # its directory is gone; `git worktree prune` would drop it


_admin_locks: dict[Path, threading.Lock] = {}
_admin_locks_guard = threading.Lock()


def _worktree_admin_lock(cwd: Path) -> threading.Lock:
    """One lock per repo for `git worktree` commands: two `worktree add`/`prune` running at once in one repo
    read each other's half-written admin dirs and fail."""
    key = Path(cwd).resolve()
    with _admin_locks_guard:
        return _admin_locks.setdefault(key, threading.Lock())


def run_git(
    cwd: Path,
    *args: str,
    check: bool = True,
    ok_codes: Sequence[int] = (0,),
    env: Mapping[str, str] | None = None,
    strip: bool = True,
) -> GitResult:
    """Run `git <args>` in `cwd` through GitPython's command runner.

    With `check`, an exit status outside `ok_codes` raises GitError naming the command and git's message.
    """
    import git as gitpython  # here, not at the top: an idle daemon never runs git and need not hold GitPython

    command = ["git", *args]
    lock = _worktree_admin_lock(cwd) if "worktree" in args[:4] else contextlib.nullcontext()
    try:
        with lock:
            status, out, err = gitpython.Git(str(cwd)).execute(
            command,
                with_extended_output=True,
                with_exceptions=False,
                stdout_as_string=True,
                strip_newline_in_stdout=False,
                env={**_BASE_ENV, **(env or {})},
            )
    except gitpython.GitCommandNotFound as exc:
        raise GitError("git is not installed or not on PATH; install git 2.38 or newer") from exc
    except OSError as exc:  # e.g. cwd does not exist
        raise GitError(f"cannot run git in {cwd}: {exc.strerror or exc}") from exc
    stdout = str(out or "")
    result = GitResult(int(status), stdout.strip() if strip else stdout, str(err or ""))
    if check and result.status not in ok_codes:
        raise GitError(f"`git {' '.join(args[:3])}` failed in {cwd}: {result.first_error_line()}")
    return result


def _out(cwd: Path, *args: str) -> str:
    return run_git(cwd, *args).stdout


def _split_z(text: str) -> list[str]:
    return [part for part in text.split("\0") if part]


def branch_ref(branch: str) -> str:
    """`main` or `refs/heads/main` -> `refs/heads/main`."""
    return branch if branch.startswith(HEADS) else HEADS + branch


def short_branch(branch: str) -> str:
    """`refs/heads/main` or `main` -> `main`."""
    return branch[len(HEADS) :] if branch.startswith(HEADS) else branch


def _check_name(name: str, what: str) -> None:
    if not name or name.startswith("-") or "\0" in name or "\n" in name:
        raise GitError(f"invalid {what} name {name!r}; use a plain git ref name")


def ref_sha(repo: Path, ref: str) -> str | None:
    """The commit `ref` points to, or None if it does not exist.

    A bare name is looked up as the branch `refs/heads/<name>` first, then as any revision git understands
    (a tag, a sha, HEAD ...); `refs/...` names are taken literally.
    """
    if not ref or ref.startswith("-") or "\0" in ref:
        return None
    candidates = [ref] if ref.startswith("refs/") else [HEADS + ref, ref]
    for candidate in candidates:
        result = run_git(repo, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}", check=False)
        if result.ok and result.stdout:
            return result.stdout
        # 128: not a repository or similar; say so instead of pretending the ref is missing
        if result.status not in (0, 1) and "not a git repository" in result.stderr:
            raise GitError(f"{repo} is not a git repository; run this inside a repository")
    return None


def head_sha(path: Path) -> str | None:
    """The commit checked out in the checkout at `path` (None on an unborn branch)."""
    result = run_git(path, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    return result.stdout if result.ok and result.stdout else None


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    """True when `ancestor` is reachable from `descendant` (a commit is its own ancestor)."""
    result = run_git(repo, "merge-base", "--is-ancestor", ancestor, descendant, check=False)
    return result.status == 0


def _ident_ok(repo: Path, which: str) -> bool:
    return run_git(repo, "var", which, check=False).ok


def commit_env(repo: Path) -> dict[str, str]:
    """Extra environment that lets commit-making commands run on a machine with no git identity.

    Empty when git already knows who the author and committer are (from config or the environment).
    """
    env: dict[str, str] = {}
    if not _ident_ok(repo, "GIT_AUTHOR_IDENT"):
        env["GIT_AUTHOR_NAME"] = os.environ.get("GIT_AUTHOR_NAME") or FALLBACK_NAME
        env["GIT_AUTHOR_EMAIL"] = os.environ.get("GIT_AUTHOR_EMAIL") or FALLBACK_EMAIL
    if not _ident_ok(repo, "GIT_COMMITTER_IDENT"):
        env["GIT_COMMITTER_NAME"] = os.environ.get("GIT_COMMITTER_NAME") or FALLBACK_NAME
        env["GIT_COMMITTER_EMAIL"] = os.environ.get("GIT_COMMITTER_EMAIL") or FALLBACK_EMAIL
    return env


def run_git_with_identity(cwd: Path, *args: str) -> GitResult:
    """Run a git command that makes a commit object and nothing else (`commit-tree`), with an identity.

    It runs as it is first; only when it fails and git has no identity here (`commit_env` is not empty, two
    `git var` checks that run on that path alone) does it run again with the fallback identity. Only for
    commands that change nothing when they fail, so the second run is safe. Raises GitError on failure.
    """
    result = run_git(cwd, *args, check=False)
    if not result.ok:
        env = commit_env(cwd)
        if env:
            result = run_git(cwd, *args, check=False, env=env)
    if not result.ok:
        raise GitError(f"`git {' '.join(args[:3])}` failed in {cwd}: {result.first_error_line()}")
    return result


# --------------------------------------------------------------------------------------------- worktrees


def list_worktrees(repo: Path) -> list[WorktreeInfo]:
    """The main checkout and every linked worktree (bare entries are skipped)."""
    out = run_git(repo, "worktree", "list", "--porcelain", "-z", strip=False).stdout
    infos: list[WorktreeInfo] = []
    record: dict[str, str] = {}
    first = True

    def flush() -> None:
        nonlocal first
        if "worktree" in record and "bare" not in record:
            branch_name = record.get("branch")
            infos.append(
                WorktreeInfo(
                    path=Path(record["worktree"]),
                    branch=short_branch(branch_name) if branch_name else None,
                    head=record.get("HEAD", ""),
                    is_main=first,
                    locked="locked" in record,
                    prunable="prunable" in record,
                )
            )
        if "worktree" in record:
            first = False
        record.clear()

    for line in out.split("\0"):
        if not line:
            flush()
            continue
        key, _, value = line.partition(" ")
        record[key] = value
    flush()
    return infos


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _find_worktree(repo: Path, path: Path) -> WorktreeInfo | None:
    for info in list_worktrees(repo):
        if _same_path(info.path, path):
            return info
    return None


def checkout_infos(repo: Path, branch: str) -> list[WorktreeInfo]:
    """Every live checkout that has `branch` checked out, with the commit its HEAD is at (one git call)."""
    name = short_branch(branch)
    return [info for info in list_worktrees(repo) if info.branch == name and not info.prunable]


def checkout_paths(repo: Path, branch: str) -> list[Path] | None:
    """The checkouts that have `branch` checked out, read from git's admin files without starting git.

    A checkout's `HEAD` file names its branch (`ref: refs/heads/<name>`), and a linked worktree's admin folder
    `.git/worktrees/<id>/gitdir` names its `.git` file; one whose folder is gone (prunable) is left out, as
    `git worktree list` would mark it. None where the layout is not that plain one (`.git` a file, a
    relocated main worktree): ask git then (`checkout_infos`).
    """
    git_dir = repo / ".git"
    if not git_dir.is_dir():
        return None
    wanted = f"ref: {branch_ref(short_branch(branch))}"
    try:
        if "worktree" in (git_dir / "config").read_text():  # core.worktree moves the main checkout
            return None
        found = [repo] if (git_dir / "HEAD").read_text().strip() == wanted else []
        admins = list((git_dir / "worktrees").iterdir()) if (git_dir / "worktrees").is_dir() else []
        for admin in admins:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                if (admin / "HEAD").read_text().strip() != wanted:
                    continue
                checkout = Path((admin / "gitdir").read_text().strip()).parent
                if checkout.is_dir():
                    found.append(checkout)
    except OSError:
        return None
    return found


def checkouts_of(repo: Path, branch: str) -> list[Path]:
    """Every live checkout (the main one and/or linked worktrees) that has `branch` checked out."""
    return [info.path for info in checkout_infos(repo, branch)]


def create_worktree(repo: Path, path: Path, branch: str, base_ref: str) -> str:
    """Create a worktree at `path` on a new `branch` starting at `base_ref`; return base_ref's sha.

    If `branch` already exists (a retry from a kept branch), it is checked out at `path` as it is; the
    returned sha is still base_ref's current tip.
    """
    _check_name(short_branch(branch), "branch")
    base_sha = ref_sha(repo, base_ref)
    if base_sha is None:
        raise GitError(f"base ref {base_ref!r} does not exist in {repo}; create it or pick another target")
    if path.exists() and any(path.iterdir()):
        raise GitError(f"worktree path {path} already exists and is not empty; remove it or pick another")
    run_git(repo, "worktree", "prune")  # forget worktrees whose directories were deleted
    path.parent.mkdir(parents=True, exist_ok=True)
    name = short_branch(branch)
    if ref_sha(repo, branch_ref(name)) is not None:
        holders = checkouts_of(repo, name)
        if holders:
            raise GitError(
                f"branch {name} is already checked out at {holders[0]}; remove that worktree first"
            )
        run_git(repo, "worktree", "add", str(path), name)
    else:
        run_git(repo, "worktree", "add", "--no-track", "-b", name, str(path), base_sha)
    return base_sha


def remove_worktree(repo: Path, path: Path) -> None:
    """Remove the linked worktree at `path`; refuse if it holds uncommitted work.

    One git call when it can be removed: `git worktree remove` (without --force) itself refuses a worktree
    with modified or untracked files, a locked one and the main checkout. `status.showUntrackedFiles=all`
    is passed down to the `git status` it runs, so a user's `status.showUntrackedFiles=no` can never let it
    delete untracked files. Only when git refuses is the worktree looked at again, to say why (and which
    files) in a RefusedError.
    """
    result = run_git(
        repo, "-c", "status.showUntrackedFiles=all", "worktree", "remove", str(path), check=False
    )
    if result.ok:
        return
    info = _find_worktree(repo, path)
    if info is None:
        run_git(repo, "worktree", "prune")
        if path.exists() and any(path.iterdir()):
            raise GitError(f"{path} is not a worktree of {repo}; nothing removed")
        return
    if info.is_main:
        raise RefusedError(f"{path} is the repository's main checkout; it cannot be removed as a worktree")
    if info.prunable or not path.exists():
        run_git(repo, "worktree", "prune")
        return
    if info.locked:
        raise RefusedError(f"worktree {path} is locked; run `git worktree unlock {path}` first")
    dirty = dirty_files(path)
    if dirty:
        shown = ", ".join(dirty[:5]) + (" ..." if len(dirty) > 5 else "")
        raise RefusedError(
            f"worktree {path} has uncommitted work ({shown}); commit or discard it, then remove it again",
            details={"reason": "dirty_worktree", "files": dirty},
        )
    raise RefusedError(f"git refused to remove worktree {path}: {result.first_error_line()}")


# ----------------------------------------------------------------------------------------- cleanliness


def ignored_files(path: Path) -> list[str]:
    """Files git ignores in the checkout at `path` (a folder that is wholly ignored is one entry)."""
    out = run_git(path, "ls-files", "--others", "--ignored", "--exclude-standard", "--directory", "-z",
                  strip=False).stdout
    return [p for p in out.split("\0") if p]


def dirty_files(path: Path, *, untracked: bool = True) -> list[str]:
    """Paths with staged, unstaged or (with `untracked`) untracked changes in the checkout at `path` (ignored
    files excluded)."""
    out = run_git(
        path,
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all" if untracked else "--untracked-files=no",
        "--ignore-submodules=none",
        strip=False,
    ).stdout
    return [name for _, name in porcelain_entries(out)]


def porcelain_entries(out: str) -> list[tuple[str, str]]:
    """`git status --porcelain=v1 -z` output as (XY, path) pairs: a rename's or copy's source, which follows
    as its own field, is skipped."""
    entries: list[tuple[str, str]] = []
    parts = out.split("\0")
    i = 0
    while i < len(parts):
        entry = parts[i]
        i += 1
        if len(entry) < 4:
            continue
        entries.append((entry[:2], entry[3:]))
        if "R" in entry[:2] or "C" in entry[:2]:
            i += 1
    return entries


def is_clean(path: Path) -> bool:
    """True when the checkout at `path` has no staged, unstaged or untracked changes."""
    return not dirty_files(path)


# --------------------------------------------------------------------------------------------- history


def commits_beyond(repo: Path, base: str, head: str) -> int:
    """How many commits `head` has that `base` does not."""
    return int(_out(repo, "rev-list", "--count", f"{base}..{head}", "--") or 0)


def changed_files(repo: Path, base: str, head: str) -> list[str]:
    """Files changed on `head` since it forked from `base` (three-dot diff)."""
    out = run_git(repo, "diff", "--name-only", "-z", "--no-renames", f"{base}...{head}", "--", strip=False)
    return _split_z(out.stdout)


def merge_base(repo: Path, a: str, b: str) -> str | None:
    """The best common ancestor of `a` and `b`, or None when they share no history."""
    result = run_git(repo, "merge-base", a, b, check=False)
    if result.status == 0 and result.stdout:
        return result.stdout.splitlines()[0]
    if result.status == 1:
        return None
    raise GitError(f"cannot compute merge base of {a} and {b}: {result.first_error_line()}")


def diff(repo: Path, base: str, head: str) -> str:
    """Unified diff of what `head` changed since it forked from `base` (`git diff base...head`)."""
    result = run_git(
        repo, "diff", "--no-color", "--no-ext-diff", "--no-textconv", f"{base}...{head}", "--", strip=False
    )
    return result.stdout
