"""Rollback on real git repos: the git side (a reset while the merge is the tip, a plumbing-built revert
after) and `rollback_task`, which records it; refusals change nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cockpit.core import git as cg
from cockpit.core.errors import RefusedError
from cockpit.core.merge import plumbing
from cockpit.core.merge import rollback as rollback_module
from cockpit.core.merge.engine import build_merge_commit
from cockpit.core.merge.plumbing import revert_tree
from cockpit.core.merge.rollback import RollbackResult, rollback, rollback_method
from cockpit.core.service import TaskService
from cockpit.core.states import State
from cockpit_testkit.gitrepos import git
from cockpit_testkit.tasks import commit_files
from tests.unit.merge.envs import Env, expected_tree, tree
from tests.unit.merge.setups import (
    BASE_FILES,
    BRANCH,
    Setup,
    merged,
    parents,
    snapshot,
    tree_of,
    worktree_count,
)
from tests.unit.test_git import GitCalls

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


# ----------------------------------------------------------------------------------------------- rollback


async def test_rollback_by_reset_restores_the_exact_sha_and_files(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n", "app.txt": "line 1\nchanged\nline 3\n"})
    before = env.tip()
    merged = await env.merge(task.id)
    outcome = await env.rollback(task.id)
    assert outcome.rollback == {"method": "reset", "from_sha": merged.merge["merge_sha"], "to_sha": before}
    assert env.tip() == before and git(env.root, "rev-parse", "HEAD") == before
    assert not (env.root / "feature.txt").exists()
    assert (env.root / "app.txt").read_text() == BASE_FILES["app.txt"]
    assert git(env.root, "status", "--porcelain") == ""
    task_after = outcome.task
    assert task_after.state is State.ROLLED_BACK
    assert task_after.merge is not None and task_after.merge.rollback_method == "reset"
    event = (await env.store.task_events(task.id))[-1]
    assert event.type == "merge.rolled_back" and event.data["to_sha"] == before
    # Twice: the recorded result, nothing changes.
    again = await env.rollback(task.id)
    assert again.already_rolled_back is True and again.rollback["method"] == "reset"
    assert (await env.store.task_events(task.id))[-1].seq == event.seq
    # The branch was kept, and the task can be run again.
    assert env.tip(task.branch or "") is not None
    service = TaskService(env.paths, env.store, env.settings)
    assert (await service.retry(task.id)).state is State.APPROVED


async def test_rollback_after_a_later_commit_creates_a_revert(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    before = env.tip() or ""
    await env.merge(task.id)
    later = commit_files(env.root, {"later.txt": "later\n"}, "later work")
    outcome = await env.rollback(task.id)
    assert outcome.rollback["method"] == "revert" and outcome.rollback["from_sha"] == later
    revert = env.tip() or ""
    assert outcome.rollback["to_sha"] == revert and parents(env.root, revert) == [later]
    # Expected tree: the rollback point plus the later commit's file.
    assert tree(env.root, revert) == expected_tree(env.root, before, later, "later.txt")
    assert not (env.root / "feature.txt").exists() and (env.root / "later.txt").exists()
    assert "This reverts commit" in git(env.root, "log", "-1", "--format=%B", revert)
    assert env.worktrees() == [env.root]
    assert outcome.task.state is State.ROLLED_BACK


async def test_rollback_refused_when_the_revert_conflicts(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    await env.merge(task.id)
    later = commit_files(env.root, {"feature.txt": "rewritten later\n"}, "later edits the feature")
    seq = await env.store.last_seq()
    with pytest.raises(RefusedError) as caught:
        await env.rollback(task.id)
    assert "feature.txt" in caught.value.message and caught.value.details["conflicts"] == ["feature.txt"]
    assert env.tip() == later and (env.root / "feature.txt").read_text() == "rewritten later\n"
    assert git(env.root, "status", "--porcelain") == ""
    assert await env.store.last_seq() == seq
    assert (await env.store.get_task(task.id)).state is State.DONE
    assert env.worktrees() == [env.root]


async def test_rollback_refuses_a_task_that_is_not_done(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    with pytest.raises(RefusedError, match="only a done"):
        await env.rollback(task.id)


async def test_rollback_keeps_local_changes_or_refuses(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    merged = await env.merge(task.id)
    (env.root / "feature.txt").write_text("my local edit\n")
    with pytest.raises(RefusedError, match="local changes"):
        await env.rollback(task.id)
    assert env.tip() == merged.merge["merge_sha"]
    assert (env.root / "feature.txt").read_text() == "my local edit\n"
    assert (await env.store.get_task(task.id)).state is State.DONE


async def test_rollback_whose_record_was_lost_is_found_not_redone(env: Env) -> None:
    # A crash after the revert moved main but before merge.rolled_back was recorded.
    task = await env.task({"feature.txt": "new\n"})
    merged = await env.merge(task.id)
    commit_files(env.root, {"later.txt": "later\n"}, "later work")
    merge_sha = merged.merge["merge_sha"]
    git(env.root, "revert", "--no-edit", "-m", "1", merge_sha)
    reverted = env.tip()
    outcome = await env.rollback(task.id)
    assert outcome.rollback["to_sha"] == reverted and env.tip() == reverted
    assert outcome.task.state is State.ROLLED_BACK
    # And a reset whose record was lost.
    other = await env.task({"other.txt": "o\n"}, title="other task")
    before = env.tip()
    await env.merge(other.id)
    git(env.root, "reset", "--keep", "-q", before or "")
    outcome = await env.rollback(other.id)
    assert outcome.rollback["method"] == "reset" and outcome.rollback["to_sha"] == before
