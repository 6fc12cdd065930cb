"""Rebasing a task branch onto a moved target in its worktree, on real git repos."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.core import git as cg
from cockpit.core.errors import RefusedError
from cockpit.core.merge.preflight import preflight
from cockpit.core.merge.rebase import rebase_branch
from cockpit_testkit.gitrepos import git
from tests.unit.merge.setups import BRANCH, Setup, parents

# ---------------------------------------------------------------------------------------------- rebase


def test_rebase_when_target_moved(setup: Setup) -> None:
    setup.work({"feature.txt": "f\n"})
    moved = setup.on_main({"other.txt": "o\n"})
    assert rebase_branch(setup.wt, "main") == []
    head = git(setup.wt, "rev-parse", "HEAD")
    assert parents(setup.repo, head) == [moved]
    assert (setup.wt / "other.txt").exists() and (setup.wt / "feature.txt").exists()
    pf = preflight(setup.repo, BRANCH, "main")
    assert pf.ok and not pf.target_moved


def test_conflicting_rebase_is_aborted_and_names_files(setup: Setup) -> None:
    work = setup.work({"app.txt": "task\n", "feature.txt": "f\n"})
    setup.on_main({"app.txt": "main\n"})
    assert rebase_branch(setup.wt, "main") == ["app.txt"]
    assert git(setup.wt, "rev-parse", "HEAD") == work
    assert git(setup.wt, "symbolic-ref", "HEAD") == f"refs/heads/{BRANCH}"
    assert cg.is_clean(setup.wt)
    assert (setup.wt / "app.txt").read_text() == "task\n"
    assert not Path(
        git(setup.wt, "rev-parse", "--path-format=absolute", "--git-path", "rebase-merge")
    ).exists()


def test_rebase_refuses_uncommitted_changes_to_tracked_files(setup: Setup) -> None:
    work = setup.work({"feature.txt": "f\n"})
    setup.on_main({"other.txt": "o\n"})
    (setup.wt / "feature.txt").write_text("wip\n")
    with pytest.raises(RefusedError, match="uncommitted"):
        rebase_branch(setup.wt, "main")
    assert git(setup.wt, "rev-parse", "HEAD") == work
    assert (setup.wt / "feature.txt").read_text() == "wip\n"


def test_rebase_keeps_untracked_files_that_are_not_in_the_way(setup: Setup) -> None:
    setup.work({"feature.txt": "f\n"})
    moved = setup.on_main({"other.txt": "o\n"})
    (setup.wt / "scratch.txt").write_text("wip\n")
    assert rebase_branch(setup.wt, "main") == []
    assert git(setup.wt, "rev-parse", "HEAD^") == moved
    assert (setup.wt / "scratch.txt").read_text() == "wip\n"
