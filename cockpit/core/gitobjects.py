"""Branch tips and recent commits read from git's own files by this process, and a commit object written.

A git process costs milliseconds where reading a loose ref and a loose object costs microseconds; on the
rollback path (the latest merge, whose commits are new and so still loose) that is most of the time cockpit
adds to bare git. Every reader answers None where it cannot be sure: a `.git` file instead of a directory,
another object format or ref storage, replace refs or grafts, an environment that points git elsewhere, an
object already packed. The caller then asks git. Objects are read and written with GitPython's `gitdb`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_SHA1 = re.compile(r"[0-9a-f]{40}")
# Environment that makes git look at other refs or objects than the repository's own files.
_REDIRECTS = ("GIT_DIR", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
              "GIT_REPLACE_REF_BASE", "GIT_GRAFT_FILE")


@dataclass(frozen=True)
class CommitInfo:
    tree: str
    parents: tuple[str, ...]


def plain_git_dir(repo: Path) -> Path | None:
    """`repo/.git` when refs and objects there can be read as plain files (SHA-1, files ref storage, no
    replace refs or grafts), else None."""
    if any(os.environ.get(name) for name in _REDIRECTS):
        return None
    git_dir = repo / ".git"
    try:
        if not git_dir.is_dir() or (git_dir / "info" / "grafts").exists() or (git_dir / "reftable").exists():
            return None
        config = (git_dir / "config").read_text(errors="replace").lower()
        if "objectformat" in config or "refstorage" in config:
            return None
        replace = git_dir / "refs" / "replace"
        if replace.is_dir() and any(replace.iterdir()):
            return None
    except OSError:
        return None
    return git_dir


def _packed_refs(git_dir: Path) -> bytes:
    try:
        return (git_dir / "packed-refs").read_bytes()
    except FileNotFoundError:
        return b""


def read_ref(git_dir: Path, ref: str) -> str | None:
    """The commit `ref` (e.g. `refs/heads/main`) points at, from its loose file or `packed-refs`; None when
    it is missing or not a plain sha (git then says what it is)."""
    if not ref.startswith("refs/") or ".." in ref:
        return None
    packed = _packed_refs(git_dir)
    if b" refs/replace/" in packed:
        return None  # replace refs change what git reads for a commit: leave it to git
    try:
        text = (git_dir / ref).read_text(errors="replace").strip()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        text = ""
        for line in packed.decode(errors="replace").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                text = sha
                break
    except OSError:
        return None
    return text if _SHA1.fullmatch(text) else None


def read_commit(git_dir: Path, sha: str) -> CommitInfo | None:
    """The tree and parents of commit `sha` when it is a loose object, else None (packed, or not a commit)."""
    if not _SHA1.fullmatch(sha):
        return None
    from gitdb import LooseObjectDB  # loaded on the first use only (an idle daemon reads no git object)
    from gitdb.exc import BadObject

    try:
        stream = LooseObjectDB(str(git_dir / "objects")).stream(bytes.fromhex(sha))
        if stream.type != b"commit":
            return None
        header = stream.read().split(b"\n\n", 1)[0].decode(errors="replace")
    except (BadObject, OSError, ValueError):
        return None
    tree = ""
    parents: list[str] = []
    for line in header.splitlines():
        key, _, value = line.partition(" ")
        if key == "tree":
            tree = value
        elif key == "parent":
            parents.append(value)
    return CommitInfo(tree, tuple(parents)) if _SHA1.fullmatch(tree) else None


def write_commit(git_dir: Path, tree: str, parents: tuple[str, ...], message: str) -> str:
    """Write an unreferenced commit object (identity `cockpit <cockpit@localhost>`, now) and return its sha:
    for objects only git's plumbing ever looks at, never for a commit a person sees."""
    import io
    import time

    from gitdb import IStream, LooseObjectDB

    stamp = f"cockpit <cockpit@localhost> {int(time.time())} +0000"
    lines = [f"tree {tree}", *(f"parent {p}" for p in parents), f"author {stamp}", f"committer {stamp}"]
    body = ("\n".join(lines) + f"\n\n{message}\n").encode()
    stored = LooseObjectDB(str(git_dir / "objects")).store(IStream(b"commit", len(body), io.BytesIO(body)))
    sha = stored.hexsha
    return sha.decode() if isinstance(sha, bytes) else str(sha)


__all__ = ["CommitInfo", "plain_git_dir", "read_commit", "read_ref", "write_commit"]
