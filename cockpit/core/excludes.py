"""The repo's `.git/info/exclude`: what cockpit keeps out of `git status` without touching a tracked file."""

from __future__ import annotations

from pathlib import Path


def common_git_dir(root: Path) -> Path:
    """The repo's own git directory (the common one, for a linked worktree or submodule)."""
    git_dir = root / ".git"
    if git_dir.is_file():  # .git names the real dir
        text = git_dir.read_text().strip()
        if text.startswith("gitdir:"):
            git_dir = (root / text.split(":", 1)[1].strip()).resolve()
            common = git_dir / "commondir"
            if common.exists():
                git_dir = (git_dir / common.read_text().strip()).resolve()
    return git_dir


def exclude(git_dir: Path, entry: str) -> bool:
    """List `entry` in `git_dir`'s `info/exclude` (shared by every worktree) unless a line already names it,
    with or without its leading or trailing slash. True if it was added."""
    path = git_dir / "info" / "exclude"
    try:
        existing = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = ""
    bare = entry.strip("/")
    if any(line.strip() in (bare, f"{bare}/", f"/{bare}", f"/{bare}/") for line in existing.splitlines()):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        if existing and not existing.endswith("\n"):
            fh.write("\n")
        fh.write(f"{entry}\n")
    return True


def ensure_excluded(root: Path, entry: str = ".cockpit/") -> bool:
    """List `entry` (default `.cockpit/`) in the exclude file of the repo at `root`. True if added."""
    return exclude(common_git_dir(root), entry)
