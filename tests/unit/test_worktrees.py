"""Worktree names and plans: slugs, reuse of a task's worktree, a fresh suffix."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.core.models import Task
from cockpit.core.paths import RepoPaths
from cockpit.core.worktrees import materialize, plan_worktree, slugify
from cockpit_testkit.gitrepos import git


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Add a greeting module in src/hello.py", "add-a-greeting-module-in-src-hello-py"),
        ("  Ünïcode — and PUNCTUATION!!  ", "unicode-and-punctuation"),
        ("???", "task"),
        ("x" * 60, "x" * 40),
        ("a" * 39 + " b", "a" * 39),
    ],
)
def test_slugs_are_lowercase_ascii_dashes_at_most_40(title: str, slug: str) -> None:
    assert slugify(title) == slug


def test_plans_reuse_the_worktree_and_pick_a_suffix_when_fresh(repo: Path) -> None:
    paths = RepoPaths(repo)
    task = Task(id=5, title="Same name", description="Same name")
    first = plan_worktree(repo, paths.worktrees, task)
    base = materialize(repo, first, "main")
    assert base == git(repo, "rev-parse", "main") and first.branch == "cockpit/task-5-same-name"


    again = plan_worktree(
        repo,
        paths.worktrees,
        Task(
            id=5,
            title="Same name",
            description="x",
            branch=first.branch,
            worktree=str(first.path),
            base_sha=base,
        ),
    )
    assert again.reuse and again.path == first.path and again.base_sha == base


    fresh = plan_worktree(repo, paths.worktrees, task)
    assert fresh.path.name == "task-5-same-name-2" and fresh.branch == "cockpit/task-5-same-name-2"


    # The directory is gone (a merge removed it) but the branch is kept: re-created from the branch.
    git(repo, "worktree", "remove", str(first.path))
    back = plan_worktree(
        repo,
        paths.worktrees,
        Task(id=5, title="Same name", description="x", branch=first.branch, worktree=None, base_sha=base),
    )
    assert not back.reuse and back.existing_branch and back.path == first.path
    assert materialize(repo, back, "main") == base and (first.path / "README.md").exists()
