"""cockpit.core.merge's git engine: preflight, plumbing merges, compare-and-set, rollback, reconcile (real git
repos)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cockpit.core import git as cg
from cockpit.core.errors import GitError, RefusedError, UsageError
from cockpit.core.merge import engine, plumbing
from cockpit.core.merge import rollback as rollback_module
from cockpit.core.merge.engine import PlannedMerge, build_merge_commit, move_target, verify_in_scratch
from cockpit.core.merge.guards import TreeChange, overwritten_paths
from cockpit.core.merge.plumbing import merge_tree, revert_tree
from cockpit.core.merge.preflight import preflight
from cockpit.core.merge.rebase import rebase_branch
from cockpit.core.merge.reconcile import reconcile
from cockpit.core.merge.rollback import RollbackResult, rollback, rollback_method
from tests.support.gitrepos import git
from tests.unit.test_git import GitCalls

BRANCH = "cockpit/task-1-demo"
BASE_FILES = {"README.md": "# demo\n", "app.txt": "line 1\nline 2\nline 3\n"}


def commit_files(checkout: Path, files: dict[str, str], message: str = "change") -> str:
    for name, content in files.items():
        path = checkout / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    git(checkout, "add", "-A")
    git(checkout, "commit", "-q", "-m", message)
    return git(checkout, "rev-parse", "HEAD")


def parents(repo: Path, sha: str) -> list[str]:
    return git(repo, "rev-list", "--parents", "-n", "1", sha).split()[1:]


def tree_of(repo: Path, rev: str) -> str:
    return git(repo, "rev-parse", f"{rev}^{{tree}}")


def worktree_count(repo: Path) -> int:
    return len(cg.list_worktrees(repo))


class Setup:
    """A repo (main checked out in the main checkout) plus a task worktree on BRANCH."""

    def __init__(self, repo: Path, tmp: Path) -> None:
        self.repo = repo
        self.tmp = tmp
        self.wt = tmp / "wt" / "task-1"
        self.base = cg.create_worktree(repo, self.wt, BRANCH, "main")

    def work(self, files: dict[str, str], message: str = "task work") -> str:
        return commit_files(self.wt, files, message)

    def on_main(self, files: dict[str, str], message: str = "main moved") -> str:
        return commit_files(self.repo, files, message)

    def tip(self) -> str | None:
        return cg.ref_sha(self.repo, "main")


@pytest.fixture
def setup(repo_factory: Callable[..., Path], short_tmp: Path) -> Setup:
    return Setup(repo_factory("repo", files=BASE_FILES), short_tmp)


def merged(s: Setup, strategy: str = "merge") -> PlannedMerge:
    planned = build_merge_commit(s.repo, BRANCH, "main", strategy, f"Merge task 1 ({strategy})")
    move_target(s.repo, planned)
    return planned


# ------------------------------------------------------------------------------------------- preflight


def test_preflight_ok(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    pf = preflight(setup.repo, BRANCH, "main")
    assert pf.ok, pf.summary()
    assert [c.name for c in pf.checks] == [
        "target_exists",
        "branch_exists",
        "target_checkouts_clean",
        "no_conflicts",
        "no_cockpit_paths",
        "no_overwrite",
    ]
    assert pf.target_sha == setup.base and pf.branch_sha == git(setup.wt, "rev-parse", "HEAD")
    assert not pf.target_moved and pf.conflicts == []
    assert [p.resolve() for p in pf.checkouts] == [setup.repo.resolve()]
    data = json.loads(json.dumps(pf.to_json()))
    assert data["ok"] is True and len(data["checks"]) == 6


def test_preflight_target_missing(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    pf = preflight(setup.repo, BRANCH, "release")
    assert not pf.ok
    failed = {c.name for c in pf.failed()}
    assert "target_exists" in failed and "branch_exists" not in failed
    assert pf.target_sha is None
    assert pf.to_json()["ok"] is False


def test_preflight_branch_missing(setup: Setup) -> None:
    pf = preflight(setup.repo, "cockpit/task-99", "main")
    assert not pf.ok and "branch_exists" in {c.name for c in pf.failed()}


def test_preflight_dirty_target_checkout(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    (setup.repo / "README.md").write_text("local edit\n")
    pf = preflight(setup.repo, BRANCH, "main")
    assert not pf.ok
    (bad,) = pf.failed()
    assert bad.name == "target_checkouts_clean" and "README.md" in bad.detail
    assert (setup.repo / "README.md").read_text() == "local edit\n"


def test_preflight_conflict_names_files(setup: Setup) -> None:
    setup.work({"app.txt": "line 1\ntask edit\nline 3\n", "feature.txt": "f\n"})
    setup.on_main({"app.txt": "line 1\nmain edit\nline 3\n", "README.md": "# demo 2\n"})
    pf = preflight(setup.repo, BRANCH, "main")
    assert not pf.ok
    assert pf.conflicts == ["app.txt"]
    assert pf.target_moved
    (bad,) = pf.failed()
    assert bad.name == "no_conflicts" and "app.txt" in bad.detail


def test_preflight_target_moved_without_conflict(setup: Setup) -> None:
    setup.work({"feature.txt": "f\n"})
    setup.on_main({"other.txt": "o\n"})
    pf = preflight(setup.repo, BRANCH, "main")
    assert pf.ok and pf.target_moved


def test_merge_tree_parses_several_conflicts_with_odd_names(setup: Setup) -> None:
    setup.work({"a b.txt": "task\n", "dir/x.txt": "task\n", "app.txt": "task\n"})
    setup.on_main({"a b.txt": "main\n", "dir/x.txt": "main\n", "app.txt": "main\n"})
    result = merge_tree(setup.repo, "main", BRANCH)
    assert not result.clean
    assert sorted(result.conflicts) == ["a b.txt", "app.txt", "dir/x.txt"]


# ----------------------------------------------------------------------------------------------- merge


def test_merge_when_target_not_checked_out(setup: Setup) -> None:
    work = setup.work({"feature.txt": "new\n"})
    git(setup.repo, "checkout", "-q", "-b", "elsewhere")
    planned = build_merge_commit(setup.repo, BRANCH, "main", "merge", "Merge task 1")
    assert setup.tip() == setup.base  # building moves no ref
    assert planned.rollback_sha == setup.base
    move_target(setup.repo, planned)
    assert setup.tip() == planned.merge_sha
    assert parents(setup.repo, planned.merge_sha) == [setup.base, work]
    assert git(setup.repo, "symbolic-ref", "HEAD") == "refs/heads/elsewhere"
    assert not (setup.repo / "feature.txt").exists()  # the other checkout is untouched
    assert cg.is_clean(setup.repo)
    assert git(setup.repo, "log", "-1", "--format=%s", "main") == "Merge task 1"


def test_merge_when_target_checked_out_updates_files(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n", "app.txt": "line 1\nline 2 changed\nline 3\n"})
    planned = merged(setup)
    assert git(setup.repo, "rev-parse", "HEAD") == planned.merge_sha
    assert (setup.repo / "feature.txt").read_text() == "new\n"
    assert (setup.repo / "app.txt").read_text() == "line 1\nline 2 changed\nline 3\n"
    assert cg.is_clean(setup.repo)


def test_merge_and_squash_strategies(setup: Setup) -> None:
    work = setup.work({"feature.txt": "new\n"})
    setup.on_main({"other.txt": "o\n"})  # a real three-way merge
    as_merge = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m")
    as_squash = build_merge_commit(setup.repo, BRANCH, "main", "squash", "s")
    tip = setup.tip()
    assert parents(setup.repo, as_merge.merge_sha) == [tip, work]
    assert parents(setup.repo, as_squash.merge_sha) == [tip]
    assert as_merge.tree == as_squash.tree == tree_of(setup.repo, as_squash.merge_sha)
    assert tree_of(setup.repo, as_merge.merge_sha) == as_merge.tree
    files = git(setup.repo, "ls-tree", "--name-only", as_merge.tree).split()
    assert {"feature.txt", "other.txt"} <= set(files)
    assert (as_merge.strategy, as_squash.strategy) == ("merge", "squash")


def test_build_refuses_conflicts_nothing_to_merge_and_bad_strategy(setup: Setup) -> None:
    with pytest.raises(RefusedError, match="nothing to merge"):
        build_merge_commit(setup.repo, BRANCH, "main", "merge", "m")
    with pytest.raises(UsageError, match="strategy"):
        build_merge_commit(setup.repo, BRANCH, "main", "rebase", "m")
    setup.work({"app.txt": "task\n"})
    setup.on_main({"app.txt": "main\n"})
    with pytest.raises(RefusedError, match=r"app\.txt") as info:
        build_merge_commit(setup.repo, BRANCH, "main", "merge", "m")
    assert info.value.details["conflicts"] == ["app.txt"]
    with pytest.raises(RefusedError, match="does not exist"):
        build_merge_commit(setup.repo, BRANCH, "release", "merge", "m")


@pytest.mark.parametrize("checked_out", [True, False])
def test_cas_refuses_when_target_moved_and_loses_nothing(setup: Setup, checked_out: bool) -> None:
    setup.work({"feature.txt": "new\n"})
    if not checked_out:
        git(setup.repo, "checkout", "-q", "-b", "elsewhere")
    planned = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m")
    if checked_out:
        interloper = setup.on_main({"hotfix.txt": "h\n"}, "hotfix")
    else:
        git(setup.repo, "checkout", "-q", "main")
        interloper = setup.on_main({"hotfix.txt": "h\n"}, "hotfix")
        git(setup.repo, "checkout", "-q", "elsewhere")
    with pytest.raises(RefusedError, match=r"moved.*retry the merge") as info:
        move_target(setup.repo, planned)
    assert info.value.details["reason"] == "target_moved" and info.value.details["actual"] == interloper
    assert setup.tip() == interloper
    assert parents(setup.repo, interloper) == [planned.rollback_sha]
    git(setup.repo, "cat-file", "-e", f"{planned.merge_sha}^{{commit}}")  # the planned merge still exists
    assert cg.ref_sha(setup.repo, BRANCH) == git(setup.wt, "rev-parse", "HEAD")
    if checked_out:
        assert (setup.repo / "hotfix.txt").exists() and not (setup.repo / "feature.txt").exists()
        assert cg.is_clean(setup.repo)


def test_cas_holds_when_ref_moves_after_the_precheck(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ref moves between move_target's own read and the write: update-ref old-value check refuses."""
    setup.work({"feature.txt": "new\n"})
    git(setup.repo, "checkout", "-q", "-b", "elsewhere")
    planned = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m")
    interloper = git(setup.repo, "commit-tree", "-p", setup.base, "-m", "race", f"{setup.base}^{{tree}}")
    real = cg.checkout_infos

    def racing(repo: Path, branch: str) -> list[cg.WorktreeInfo]:
        git(repo, "update-ref", "refs/heads/main", interloper)
        return real(repo, branch)

    monkeypatch.setattr(engine, "checkout_infos", racing)
    with pytest.raises(RefusedError, match=r"moved.*retry the merge"):
        move_target(setup.repo, planned)
    assert setup.tip() == interloper


def test_reset_rollback_cas_holds_when_ref_moves(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    setup.work({"feature.txt": "new\n"})
    git(setup.repo, "checkout", "-q", "-b", "elsewhere")
    planned = merged(setup)
    later = git(setup.repo, "commit-tree", "-p", planned.merge_sha, "-m", "later", planned.tree)
    real = cg.checkout_paths

    def racing(repo: Path, branch: str) -> list[Path] | None:
        git(repo, "update-ref", "refs/heads/main", later)
        return real(repo, branch)

    monkeypatch.setattr(rollback_module, "checkout_paths", racing)
    with pytest.raises(RefusedError, match=r"moved.*retry the rollback"):
        rollback(setup.repo, "main", planned.merge_sha, planned.rollback_sha, "r")
    assert setup.tip() == later


def test_move_target_refuses_dirty_checkout_and_keeps_the_change(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    planned = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m")
    (setup.repo / "notes.txt").write_text("mine\n")
    with pytest.raises(RefusedError, match=r"uncommitted changes \(notes\.txt\)"):
        move_target(setup.repo, planned)
    assert setup.tip() == planned.rollback_sha
    assert (setup.repo / "notes.txt").read_text() == "mine\n"
    assert not (setup.repo / "feature.txt").exists()


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


# ------------------------------------------------------------------------------------- scratch verify


def test_verify_in_scratch_runs_check_at_sha_and_cleans_up(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    planned = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m")
    scratch = setup.tmp / "scratch"
    seen: list[str] = []

    def check(path: Path) -> bool:
        seen.append(git(path, "rev-parse", "HEAD"))
        return (path / "feature.txt").read_text() == "new\n"

    assert verify_in_scratch(setup.repo, planned.merge_sha, scratch, check)
    assert seen == [planned.merge_sha]
    assert worktree_count(setup.repo) == 2
    assert not verify_in_scratch(setup.repo, planned.merge_sha, scratch, lambda p: False)
    assert not scratch.exists()


def test_verify_in_scratch_removes_worktree_when_check_raises(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    planned = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m")
    scratch = setup.tmp / "scratch"

    def boom(path: Path) -> bool:
        (path / "junk.txt").write_text("gate output\n")  # leave the scratch dirty too
        raise RuntimeError("gate crashed")

    with pytest.raises(RuntimeError, match="gate crashed"):
        verify_in_scratch(setup.repo, planned.merge_sha, scratch, boom)
    assert not scratch.exists()
    assert worktree_count(setup.repo) == 2
    assert setup.tip() == planned.rollback_sha


# -------------------------------------------------------------------------------------------- rollback


@pytest.mark.parametrize("checked_out", [True, False])
def test_rollback_by_reset_restores_exact_sha_and_files(setup: Setup, checked_out: bool) -> None:
    setup.work({"feature.txt": "new\n", "app.txt": "rewritten\n"})
    if not checked_out:
        git(setup.repo, "checkout", "-q", "-b", "elsewhere")
    planned = merged(setup)
    assert rollback_method(setup.repo, "main", planned.merge_sha) == "reset"
    result = rollback(setup.repo, "main", planned.merge_sha, planned.rollback_sha, "Roll back")
    assert result == RollbackResult("reset", planned.merge_sha, planned.rollback_sha)
    assert setup.tip() == planned.rollback_sha == setup.base
    if checked_out:
        assert git(setup.repo, "rev-parse", "HEAD") == setup.base
        assert not (setup.repo / "feature.txt").exists()
        assert (setup.repo / "app.txt").read_text() == BASE_FILES["app.txt"]
        assert cg.is_clean(setup.repo)
    assert rollback_method(setup.repo, "main", planned.merge_sha) == "gone"


def _plan_by_git(repo: Path, merge_sha: str) -> rollback_module.RollbackPlan:
    """The plan as git's rev-parse reads it (the files path turned off)."""
    real = rollback_module._plan_from_files
    rollback_module._plan_from_files = lambda *args: None
    try:
        return rollback_module.rollback_plan(repo, "main", merge_sha)
    finally:
        rollback_module._plan_from_files = real


def test_the_rollback_plan_read_from_files_is_the_one_git_reads(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reset and revert plans come from git's files with no git process while the objects are loose; once
    they are packed (or anything is unusual) one rev-parse reads the same plan."""
    setup.work({"feature.txt": "new\n"})
    planned = merged(setup)
    counted = GitCalls(monkeypatch)
    for later in (False, True):
        if later:
            setup.on_main({"later.txt": "later\n"})
            setup.on_main({"later2.txt": "later\n"})
        counted.calls.clear()
        counted.processes = 0
        plan = rollback_module.rollback_plan(setup.repo, "main", planned.merge_sha)
        assert counted.processes == 0 and plan.method == ("revert" if later else "reset")
        assert plan == _plan_by_git(setup.repo, planned.merge_sha)
        assert plan.first_parent_tree == git(setup.repo, "rev-parse", f"{planned.rollback_sha}^{{tree}}")
    # Packed refs and objects: not read here, asked of git (one process), the same answer.
    git(setup.repo, "gc", "-q", "--prune=now")
    assert not (setup.repo / ".git" / "refs" / "heads" / "main").exists()
    counted.calls.clear()
    counted.processes = 0
    packed = rollback_module.rollback_plan(setup.repo, "main", planned.merge_sha)
    assert counted.commands() == ["rev-parse"] and packed == plan
    # A merge no longer in main's history: gone, either way.
    git(setup.repo, "reset", "-q", "--hard", planned.rollback_sha)
    assert rollback_method(setup.repo, "main", planned.merge_sha) == "gone"


@pytest.mark.parametrize("strategy", ["merge", "squash"])
def test_rollback_after_later_commit_reverts(setup: Setup, strategy: str) -> None:
    setup.work({"feature.txt": "new\n", "app.txt": "line 1\nline 2 by task\nline 3\n"})
    planned = merged(setup, strategy)
    later = setup.on_main({"later.txt": "later\n"}, "later work")
    assert rollback_method(setup.repo, "main", planned.merge_sha) == "revert"

    result = rollback(setup.repo, "main", planned.merge_sha, planned.rollback_sha, "Revert task 1")
    assert result.method == "revert" and result.from_sha == later
    assert setup.tip() == result.to_sha
    assert parents(setup.repo, result.to_sha) == [later]
    assert git(setup.repo, "log", "-1", "--format=%s", result.to_sha) == "Revert task 1"

    # expected: the base plus only the later change
    git(setup.repo, "branch", "expected", planned.rollback_sha)
    exp_wt = setup.tmp / "expected"
    git(setup.repo, "worktree", "add", "-q", str(exp_wt), "expected")
    commit_files(exp_wt, {"later.txt": "later\n"})
    assert tree_of(setup.repo, result.to_sha) == tree_of(setup.repo, "expected")

    # the checkout followed, and no worktree was made for the revert
    assert git(setup.repo, "rev-parse", "HEAD") == result.to_sha
    assert not (setup.repo / "feature.txt").exists()
    assert (setup.repo / "later.txt").read_text() == "later\n"
    assert (setup.repo / "app.txt").read_text() == BASE_FILES["app.txt"]
    assert cg.is_clean(setup.repo) and worktree_count(setup.repo) == 3  # main, task, `expected` above


def test_revert_not_checked_out_moves_ref_only(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    planned = merged(setup)
    later = setup.on_main({"later.txt": "later\n"})
    git(setup.repo, "checkout", "-q", "-b", "elsewhere")
    result = rollback(setup.repo, "main", planned.merge_sha, planned.rollback_sha, "")
    assert result.method == "revert" and parents(setup.repo, result.to_sha) == [later]
    assert setup.tip() == result.to_sha
    assert "This reverts commit " + planned.merge_sha in git(setup.repo, "log", "-1", "--format=%B", "main")
    assert git(setup.repo, "symbolic-ref", "HEAD") == "refs/heads/elsewhere"


def test_revert_conflict_is_refused_with_nothing_changed(setup: Setup) -> None:
    setup.work({"app.txt": "line 1\nline 2 by task\nline 3\n"})
    planned = merged(setup)
    later = setup.on_main({"app.txt": "line 1\nline 2 by task, then edited\nline 3\n"})
    with pytest.raises(RefusedError, match=r"conflicts.*app\.txt") as info:
        rollback(setup.repo, "main", planned.merge_sha, planned.rollback_sha, "r")
    assert info.value.details["conflicts"] == ["app.txt"]
    assert setup.tip() == later
    assert (setup.repo / "app.txt").read_text() == "line 1\nline 2 by task, then edited\nline 3\n"
    assert cg.is_clean(setup.repo)
    assert worktree_count(setup.repo) == 2


def test_reset_rollback_keeps_unrelated_local_changes(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    planned = merged(setup)
    (setup.repo / "README.md").write_text("my local edit\n")
    (setup.repo / "untracked.txt").write_text("mine\n")
    result = rollback(setup.repo, "main", planned.merge_sha, planned.rollback_sha, "r")
    assert result.method == "reset" and setup.tip() == setup.base
    assert not (setup.repo / "feature.txt").exists()
    assert (setup.repo / "README.md").read_text() == "my local edit\n"
    assert (setup.repo / "untracked.txt").read_text() == "mine\n"


def test_reset_rollback_refuses_local_changes_to_merged_files(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    planned = merged(setup)
    (setup.repo / "feature.txt").write_text("edited after the merge\n")
    with pytest.raises(RefusedError, match="local changes"):
        rollback(setup.repo, "main", planned.merge_sha, planned.rollback_sha, "r")
    assert setup.tip() == planned.merge_sha
    assert git(setup.repo, "rev-parse", "HEAD") == planned.merge_sha
    assert (setup.repo / "feature.txt").read_text() == "edited after the merge\n"


def test_revert_rollback_in_dirty_checkout_never_loses_changes(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    planned = merged(setup)
    later = setup.on_main({"later.txt": "later\n"})
    # an unrelated edit is carried along
    (setup.repo / "README.md").write_text("my local edit\n")
    result = rollback(setup.repo, "main", planned.merge_sha, planned.rollback_sha, "r")
    assert result.method == "revert" and result.from_sha == later
    assert not (setup.repo / "feature.txt").exists()
    assert (setup.repo / "README.md").read_text() == "my local edit\n"


def test_revert_rollback_refuses_when_local_change_touches_reverted_file(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    planned = merged(setup)
    later = setup.on_main({"later.txt": "later\n"})
    (setup.repo / "feature.txt").write_text("local edit of merged file\n")
    with pytest.raises(RefusedError, match="nothing was changed"):
        rollback(setup.repo, "main", planned.merge_sha, planned.rollback_sha, "r")
    assert setup.tip() == later
    assert (setup.repo / "feature.txt").read_text() == "local edit of merged file\n"
    assert worktree_count(setup.repo) == 2


def test_rollback_refuses_when_merge_is_gone(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    planned = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m")  # never published
    assert rollback_method(setup.repo, "main", planned.merge_sha) == "gone"
    with pytest.raises(RefusedError, match="not in main's history"):
        rollback(setup.repo, "main", planned.merge_sha, planned.rollback_sha, "r")
    assert setup.tip() == setup.base


def test_reset_rollback_refuses_unrelated_rollback_point(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    planned = merged(setup)
    git(setup.repo, "checkout", "-q", "--orphan", "island")
    git(setup.repo, "rm", "-rfq", ".")
    island = commit_files(setup.repo, {"x.txt": "x\n"})
    with pytest.raises(RefusedError, match="not an ancestor"):
        rollback(setup.repo, "main", planned.merge_sha, island, "r")
    assert setup.tip() == planned.merge_sha


# ------------------------------------------------------------------------------------------- reconcile


def test_reconcile_outcomes(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    planned = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m")
    # crash before the ref moved
    assert reconcile(setup.repo, "main", planned.merge_sha, planned.rollback_sha) == "not_merged"
    move_target(setup.repo, planned)
    assert reconcile(setup.repo, "main", planned.merge_sha, planned.rollback_sha) == "merged"
    setup.on_main({"later.txt": "l\n"})
    assert reconcile(setup.repo, "main", planned.merge_sha, planned.rollback_sha) == "merged"
    # someone moved main elsewhere: neither the merge nor the rollback point is the tip or in it
    git(setup.repo, "checkout", "-q", "-b", "elsewhere")
    other = git(
        setup.repo, "commit-tree", "-p", planned.rollback_sha, "-m", "other", f"{setup.base}^{{tree}}"
    )
    git(setup.repo, "update-ref", "refs/heads/main", other)
    assert reconcile(setup.repo, "main", planned.merge_sha, planned.rollback_sha) == "diverged"
    assert setup.tip() == other  # reconcile touched nothing
    assert reconcile(setup.repo, "nope", planned.merge_sha, planned.rollback_sha) == "diverged"


# -------------------------------------------------------------------------------------------- identity


def test_merge_and_revert_work_without_a_configured_identity(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup.work({"feature.txt": "new\n"})
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(key, raising=False)
    git(setup.repo, "config", "--unset", "user.name")
    git(setup.repo, "config", "--unset", "user.email")
    git(setup.repo, "config", "user.useConfigOnly", "true")
    planned = merged(setup)
    assert git(setup.repo, "log", "-1", "--format=%cn", planned.merge_sha) == "agent-cockpit"
    result = rollback(setup.repo, "main", planned.merge_sha, planned.rollback_sha, "r")
    assert result.method == "reset"


def test_errors_are_one_line(setup: Setup) -> None:
    with pytest.raises(GitError) as info:
        cg.run_git(setup.repo, "rev-parse", "--verify", "no-such-thing")
    assert "\n" not in info.value.message


# ---------------------------------------------------------------------------- fewer git calls, same safety


def snapshot(repo: Path) -> dict[str, str]:
    """Everything a refused step must leave as it was: refs, HEAD, index, status, worktrees, files."""
    files = {
        str(path.relative_to(repo)): path.read_text()
        for path in sorted(repo.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(repo).parts
    }
    return {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": git(repo, "symbolic-ref", "HEAD") + " " + git(repo, "rev-parse", "HEAD"),
        "index": git(repo, "ls-files", "-s"),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "files": json.dumps(files, sort_keys=True),
    }


def test_build_with_a_fresh_preflight_is_one_commit_tree(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = setup.work({"feature.txt": "new\n"})
    pf = preflight(setup.repo, BRANCH, "main")
    assert pf.ok and pf.tree and pf.merge_bases == [setup.base] and not pf.target_moved
    counted = GitCalls(monkeypatch)
    planned = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m", preflight=pf)
    assert counted.commands() == ["commit-tree"] and counted.processes == 1
    counted.calls.clear()
    alone = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m")  # reads and merges itself
    # The target has not moved: the merge is the branch's tree, and only what it changes is read.
    assert counted.commands() == ["rev-parse", "diff-tree", "commit-tree"]
    assert planned.tree == alone.tree == pf.tree == tree_of(setup.repo, alone.merge_sha)
    assert parents(setup.repo, planned.merge_sha) == [setup.base, work]
    assert parents(setup.repo, alone.merge_sha) == [setup.base, work]
    assert planned.rollback_sha == setup.base and setup.tip() == setup.base  # nothing moved
    # A preflight of other branches, or one that refused, is not used.
    other = preflight(setup.repo, "main", BRANCH)
    counted.calls.clear()
    with pytest.raises(RefusedError, match="nothing to merge"):
        build_merge_commit(setup.repo, "main", BRANCH, "merge", "m", preflight=pf)
    assert counted.commands() == ["rev-parse"]
    assert other.target == BRANCH and other.merge_bases == [setup.base]


def test_move_with_the_preflights_checkouts_is_two_git_calls(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup.work({"feature.txt": "new\n"})
    pf = preflight(setup.repo, BRANCH, "main")
    planned = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m", preflight=pf)
    counted = GitCalls(monkeypatch)
    move_target(setup.repo, planned, checkouts=pf.checkouts)
    assert counted.commands() == ["rev-parse", "merge"]  # HEAD, the merge's parents, the branch; the move
    assert setup.tip() == planned.merge_sha == git(setup.repo, "rev-parse", "HEAD")
    assert (setup.repo / "feature.txt").read_text() == "new\n" and cg.is_clean(setup.repo)


def test_move_with_the_preflights_checkouts_is_still_compare_and_set(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    pf = preflight(setup.repo, BRANCH, "main")
    planned = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m", preflight=pf)
    interloper = setup.on_main({"hotfix.txt": "h\n"}, "hotfix")
    with pytest.raises(RefusedError, match=r"moved.*retry the merge") as info:
        move_target(setup.repo, planned, checkouts=pf.checkouts)
    assert info.value.details["actual"] == interloper and setup.tip() == interloper
    assert (setup.repo / "hotfix.txt").exists() and not (setup.repo / "feature.txt").exists()


def test_move_with_stale_checkouts_looks_again(setup: Setup) -> None:
    """The preflight saw main checked out in the main checkout, which switched branch before the move."""
    setup.work({"feature.txt": "new\n"})
    pf = preflight(setup.repo, BRANCH, "main")
    planned = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m", preflight=pf)
    git(setup.repo, "checkout", "-q", "-b", "elsewhere")
    move_target(setup.repo, planned, checkouts=pf.checkouts)
    assert setup.tip() == planned.merge_sha
    assert git(setup.repo, "symbolic-ref", "HEAD") == "refs/heads/elsewhere"
    assert not (setup.repo / "feature.txt").exists() and cg.is_clean(setup.repo)


def test_move_when_the_preflight_found_no_checkout(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    setup.work({"feature.txt": "new\n"})
    git(setup.repo, "checkout", "-q", "-b", "elsewhere")
    pf = preflight(setup.repo, BRANCH, "main")
    assert pf.checkouts == []
    planned = build_merge_commit(setup.repo, BRANCH, "main", "squash", "m", preflight=pf)
    counted = GitCalls(monkeypatch)
    move_target(setup.repo, planned, checkouts=pf.checkouts)
    assert counted.commands() == ["rev-parse", "update-ref"]
    assert setup.tip() == planned.merge_sha and parents(setup.repo, planned.merge_sha) == [setup.base]


def test_move_refuses_a_merge_that_does_not_contain_the_rollback_point(setup: Setup) -> None:
    setup.work({"feature.txt": "new\n"})
    pf = preflight(setup.repo, BRANCH, "main")
    planned = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m", preflight=pf)
    orphan = git(setup.repo, "commit-tree", "-m", "orphan", planned.tree)
    bogus = PlannedMerge("main", planned.rollback_sha, orphan, "merge", planned.tree)
    for checkouts in (pf.checkouts, [], None):
        with pytest.raises(GitError, match="does not descend"):
            move_target(setup.repo, bogus, checkouts=checkouts)
    assert setup.tip() == setup.base


LONG = "".join(f"line {n}\n" for n in range(1, 13))


def _git_revert_tree(repo: Path, tmp: Path, tip: str, commit: str, merge: bool) -> str:
    """What `git revert` itself makes of it (the oracle), in a throwaway worktree."""
    oracle = tmp / "oracle"
    git(repo, "worktree", "add", "-q", "--detach", str(oracle), tip)
    git(oracle, "revert", "--no-commit", *(["-m", "1"] if merge else []), commit)
    tree = git(oracle, "write-tree")
    git(repo, "worktree", "remove", "--force", str(oracle))
    return tree


@pytest.mark.parametrize("probe, written", [(None, False), (False, False), (False, True)],
                         ids=["detect-merge-base-option", "stand-in-by-commit-tree", "stand-in-written-here"])
@pytest.mark.parametrize("strategy", ["merge", "squash"])
def test_revert_tree_matches_git_revert_without_a_checkout(
    repo_factory: Callable[..., Path], short_tmp: Path, monkeypatch: pytest.MonkeyPatch,
    strategy: str, probe: bool | None, written: bool,
) -> None:
    s = Setup(repo_factory("repo", files={**BASE_FILES, "long.txt": LONG}), short_tmp)
    git(s.wt, "mv", "app.txt", "renamed.txt")
    s.work({"long.txt": LONG.replace("line 2\n", "line 2 by the task\n"), "feature.txt": "f\n",
            "dir/new.txt": "n\n"})
    s.on_main({"main-only.txt": "m\n"})  # main moved: a true merge (or squash) of diverged histories
    planned = merged(s, strategy)
    # Later work edits the same file far from the task's change, and the renamed one.
    later = s.on_main({"long.txt": LONG.replace("line 2\n", "line 2 by the task\n").replace(
        "line 11\n", "line 11 later\n"), "renamed.txt": "line 1\nline 2\nline 3\nline 4 later\n"})
    before = snapshot(s.repo)
    monkeypatch.setattr(plumbing, "_merge_base_option", probe)
    counted = GitCalls(monkeypatch)
    first_parent = parents(s.repo, planned.merge_sha)[0]
    parent_tree = git(s.repo, "rev-parse", f"{first_parent}^{{tree}}") if written else ""
    result = revert_tree(s.repo, later, planned.merge_sha, first_parent, parent_tree)
    assert result.clean, result.conflicts
    assert snapshot(s.repo) == before  # objects only: no ref, index, file or worktree touched
    assert set(counted.commands()) <= {"merge-tree", "commit-tree"}
    if written:
        assert counted.commands() == ["merge-tree"] and counted.processes == 1
    assert plumbing._merge_base_option is not None  # the probe's answer is kept for the process
    assert result.tree == _git_revert_tree(s.repo, short_tmp, later, planned.merge_sha, strategy == "merge")
    reverted = {name: git(s.repo, "show", f"{result.tree}:{name}") for name in ("long.txt", "app.txt")}
    assert reverted["long.txt"] == LONG.replace("line 11\n", "line 11 later\n").rstrip("\n")
    # The rename is undone, and the later edit of the renamed file follows it back.
    assert reverted["app.txt"] == "line 1\nline 2\nline 3\nline 4 later"
    names = git(s.repo, "ls-tree", "-r", "--name-only", result.tree).split()
    assert "feature.txt" not in names and "dir/new.txt" not in names and "renamed.txt" not in names
    assert "main-only.txt" in names


def _git_version(repo: Path) -> tuple[int, ...]:
    words = git(repo, "version").split()[2].split(".")
    return tuple(int(w) for w in words[:3] if w.isdigit())


def test_the_revert_takes_merge_base_where_this_git_has_it_and_the_stand_in_where_not(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate, on whatever git runs the tests: 2.40+ reverts with `merge-tree --merge-base` (one process);
    2.38/2.39 refuses that option once (a usage error), then every later revert goes the stand-in way, which
    is one git process too (the stand-in commit is written by this process)."""
    setup.work({"feature.txt": "new\n"})
    planned = merged(setup)
    later = setup.on_main({"later.txt": "later\n"})
    first_parent = parents(setup.repo, planned.merge_sha)[0]
    tree = git(setup.repo, "rev-parse", f"{first_parent}^{{tree}}")
    has_option = _git_version(setup.repo) >= (2, 40)
    monkeypatch.setattr(plumbing, "_merge_base_option", None)
    counted = GitCalls(monkeypatch)
    first = revert_tree(setup.repo, later, planned.merge_sha, first_parent, tree)
    assert plumbing._merge_base_option is has_option
    merge_base_args = [args for args in counted.calls if any(a.startswith("--merge-base=") for a in args)]
    assert len(merge_base_args) == 1  # tried once: taken (2.40+), or refused and never tried again
    assert counted.commands() == (["merge-tree"] if has_option else ["merge-tree", "merge-tree"])
    counted.calls.clear()
    counted.processes = 0
    again = revert_tree(setup.repo, later, planned.merge_sha, first_parent, tree)
    assert counted.commands() == ["merge-tree"] and counted.processes == 1
    assert any(a.startswith("--merge-base=") for a in counted.calls[0]) is has_option
    assert first.clean and again.clean and first.tree == again.tree
    assert "feature.txt" not in git(setup.repo, "ls-tree", "--name-only", first.tree).split()


def test_revert_rollback_runs_no_checkout_and_moves_by_fast_forward(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup.work({"feature.txt": "new\n"})
    planned = merged(setup)
    later = setup.on_main({"later.txt": "later\n"})
    monkeypatch.setattr(plumbing, "_merge_base_option", False)  # the git 2.38/2.39 way, whatever git this is
    counted = GitCalls(monkeypatch)
    result = rollback(setup.repo, "main", planned.merge_sha, planned.rollback_sha, "Revert it")
    # the tip, its tree, merge's parents and the first one's tree, containment: read from git's files; then
    # merge-tree (against a stand-in commit written by this process); the revert commit; the move (where main
    # is checked out is read from git's admin files)
    expected = ["merge-tree", "commit-tree", "merge"]
    assert counted.commands() == expected
    assert counted.processes == len(counted.calls)
    assert result.method == "revert" and parents(setup.repo, result.to_sha) == [later]
    assert git(setup.repo, "rev-parse", "HEAD") == result.to_sha and cg.is_clean(setup.repo)
    assert not (setup.repo / "feature.txt").exists() and (setup.repo / "later.txt").exists()
    assert worktree_count(setup.repo) == 2


def test_checkout_free_revert_conflict_names_files_and_changes_nothing(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup.work({"app.txt": "line 1\nline 2 by task\nline 3\n", "feature.txt": "f\n"})
    planned = merged(setup)
    setup.on_main({"app.txt": "line 1\nline 2 by task, then edited\nline 3\n", "later.txt": "l\n"})
    (setup.repo / "README.md").write_text("my local edit\n")  # someone's work in the checkout
    (setup.repo / "notes.txt").write_text("mine\n")
    before = snapshot(setup.repo)
    counted = GitCalls(monkeypatch)
    with pytest.raises(RefusedError, match=r"conflicts.*app\.txt.*nothing was changed") as info:
        rollback(setup.repo, "main", planned.merge_sha, planned.rollback_sha, "r")
    assert info.value.details == {"reason": "conflicts", "conflicts": ["app.txt"]}
    assert snapshot(setup.repo) == before
    ran = counted.commands()
    assert not {"checkout", "revert", "read-tree", "reset", "update-ref", "merge", "apply"} & set(ran), ran
    assert not [args for args in counted.calls if args[:2] == ("worktree", "add")]


def test_reset_rollback_is_one_git_call(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    setup.work({"feature.txt": "new\n"})
    planned = merged(setup)
    counted = GitCalls(monkeypatch)
    result = rollback(setup.repo, "main", planned.merge_sha, planned.rollback_sha, "r")
    assert counted.commands() == ["reset"] and counted.processes == 1  # the plan is read from git's files
    assert ("reset", "--keep", "--quiet", planned.rollback_sha) in counted.calls
    assert result.method == "reset" and git(setup.repo, "rev-parse", "HEAD") == setup.base


# ----------------------------------------------------------------- what a merge writes over (untrusted trees)


def test_a_tree_removing_a_tracked_cockpit_path_is_refused(setup: Setup) -> None:
    (setup.repo / ".cockpit").mkdir()
    (setup.repo / ".cockpit" / "keep").write_text("tracked by someone\n")
    git(setup.repo, "add", "-f", ".cockpit/keep")
    git(setup.repo, "commit", "-q", "-m", "track a cockpit file")
    git(setup.wt, "merge", "-q", "--ff-only", "main")
    git(setup.wt, "rm", "-q", ".cockpit/keep")
    git(setup.wt, "commit", "-q", "-m", "drop it")
    pf = preflight(setup.repo, BRANCH, "main")
    checks = {c.name: c for c in pf.checks}
    assert not checks["no_cockpit_paths"].ok and ".cockpit/keep" in checks["no_cockpit_paths"].detail
    assert pf.refused_files() == [".cockpit/keep"] and pf.reason() == "cockpit_paths"
    with pytest.raises(RefusedError, match=r"\.cockpit/keep"):
        build_merge_commit(setup.repo, BRANCH, "main", "merge", "m")
    assert (setup.repo / ".cockpit" / "keep").exists()


def test_overwritten_paths_sees_files_links_and_directories_in_the_way(setup: Setup, short_tmp: Path) -> None:
    checkout = setup.repo
    (checkout / "plain.txt").write_text("mine\n")
    os.symlink(short_tmp, checkout / "link")
    (checkout / "dir").mkdir()
    (checkout / "dir" / "inside.bin").write_text("mine\n")
    (checkout / "tracked").mkdir()
    (checkout / "tracked" / "kept.txt").write_text("tracked\n")
    (checkout / "tracked" / "cache.pyc").write_text("ignored\n")
    changes = (
        TreeChange("A", "plain.txt"),  # a file where the merge adds one
        TreeChange("A", "link/file"),  # a symlink where the merge needs a directory
        TreeChange("A", "dir"),  # a directory with a person's file where the merge adds a file
        TreeChange("D", "tracked/kept.txt"),  # a tracked directory the merge turns into a file...
        TreeChange("A", "tracked"),  # ...still holding an untracked file
        TreeChange("A", "new/deep/file.txt"),  # nothing there: fine
        TreeChange("M", "app.txt"),  # tracked: git's own copy
    )
    found = overwritten_paths(checkout, changes)
    assert found == ["plain.txt", "link", "dir/inside.bin", "tracked/cache.pyc"]
    # A tracked file the merge removes may become a directory; a tracked directory emptied may become a file.
    (checkout / "tracked" / "cache.pyc").unlink()
    assert overwritten_paths(checkout, (TreeChange("D", "app.txt"), TreeChange("A", "app.txt/x"),
                                           TreeChange("D", "tracked/kept.txt"),
                                           TreeChange("A", "tracked"))) == []


def test_the_move_refuses_an_ignored_file_that_appeared_after_the_preflight(setup: Setup) -> None:
    setup.on_main({".gitignore": "*.env\n"})
    git(setup.wt, "merge", "-q", "--ff-only", "main")
    (setup.wt / "secret.env").write_text("agent\n")
    git(setup.wt, "add", "-f", "secret.env")
    git(setup.wt, "commit", "-q", "-m", "agent adds an ignored file")
    planned = build_merge_commit(setup.repo, BRANCH, "main", "merge", "m")
    assert [c.path for c in planned.changes] == ["secret.env"]
    (setup.repo / "secret.env").write_text("TOKEN=person\n")
    before = setup.tip()
    with pytest.raises(RefusedError, match=r"secret\.env") as caught:
        move_target(setup.repo, planned, checkouts=[setup.repo])
    assert caught.value.details["files"] == ["secret.env"]
    # git holds the same line when the engine was handed no list of changes (--no-overwrite-ignore).
    bare = PlannedMerge(planned.target, planned.rollback_sha, planned.merge_sha, planned.strategy,
                           planned.tree)
    with pytest.raises(RefusedError, match=r"secret\.env") as caught:
        move_target(setup.repo, bare, checkouts=[setup.repo])
    assert caught.value.details["files"] == ["secret.env"]
    assert setup.tip() == before and (setup.repo / "secret.env").read_text() == "TOKEN=person\n"


# ----------------------------------------------------------------------- where the target is checked out


def test_checkout_paths_reads_what_git_worktree_list_says(setup: Setup, tmp_path: Path) -> None:
    """The admin-file read that spares the rollback a `git worktree list` agrees with git itself."""
    assert cg.checkout_paths(setup.repo, "main") == [setup.repo]
    git(setup.repo, "checkout", "-q", "-b", "elsewhere")
    linked = tmp_path / "linked"
    git(setup.repo, "worktree", "add", "-q", str(linked), "main")
    assert cg.checkout_paths(setup.repo, "main") == [linked.resolve()]
    assert cg.checkout_paths(setup.repo, "main") == cg.checkouts_of(setup.repo, "main")
    shutil.rmtree(linked)  # prunable: git's list marks it, and neither counts it
    assert cg.checkout_paths(setup.repo, "main") == [] == cg.checkouts_of(setup.repo, "main")


def test_checkout_paths_defers_to_git_for_an_unusual_layout(setup: Setup, tmp_path: Path) -> None:
    git(setup.repo, "config", "core.worktree", str(setup.repo))
    assert cg.checkout_paths(setup.repo, "main") is None
