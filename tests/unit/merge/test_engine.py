"""Building the merge commit with plumbing, verifying it in scratch, the compare-and-set move of the target
(real git repos): refusals change nothing, and each step starts as few git processes as it can."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cockpit.core import git as cg
from cockpit.core.errors import GitError, RefusedError, UsageError
from cockpit.core.merge import engine
from cockpit.core.merge import rollback as rollback_module
from cockpit.core.merge.engine import PlannedMerge, build_merge_commit, move_target, verify_in_scratch
from cockpit.core.merge.guards import TreeChange, overwritten_paths
from cockpit.core.merge.preflight import preflight
from cockpit.core.merge.rollback import rollback
from cockpit_testkit.gitrepos import git
from tests.unit.merge.setups import BRANCH, Setup, merged, parents, tree_of, worktree_count
from tests.unit.test_git import GitCalls

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
