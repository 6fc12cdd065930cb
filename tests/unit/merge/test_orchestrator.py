"""Merging a task (`merge_task`) over real git repos and a real Store: each step recorded, every refusal
leaving things as they were, and the git processes a merge starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.errors import RefusedError
from cockpit.core.merge import orchestrator, plumbing
from cockpit.core.merge.engine import PlannedMerge, move_target, verify_in_scratch
from cockpit.core.models import GateSpec
from cockpit.core.states import State
from cockpit_testkit.gitrepos import git
from cockpit_testkit.tasks import commit_files
from tests.unit.merge.envs import Env, present, scratch_left, tree
from tests.unit.merge.setups import parents
from tests.unit.test_git import GitCalls

# ------------------------------------------------------------------------------------------------ merging


async def test_merge_with_target_not_checked_out(env: Env) -> None:
    git(env.root, "checkout", "-q", "-b", "side")  # main is checked out nowhere now
    task = await env.task({"feature.txt": "new feature\n"})
    before = env.tip()
    branch_tip = env.tip(task.branch or "")
    outcome = await env.merge(task.id)

    merged = outcome.task
    assert merged.state is State.DONE
    assert merged.merge is not None and merged.merge.state == "merged"
    assert merged.merge.rollback_sha == before
    assert env.tip() == merged.merge.merge_sha
    assert parents(env.root, merged.merge.merge_sha or "") == [before, branch_tip]
    subject = git(env.root, "log", "-1", "--format=%s", "main")
    assert subject == f"Merge task {task.id}: demo change (cockpit)"
    # The main checkout (on `side`) is untouched; the worktree is gone, the branch kept.
    assert not (env.root / "feature.txt").exists() and git(env.root, "status", "--porcelain") == ""
    assert task.worktree is not None and not present(task.worktree)
    assert merged.worktree is None and outcome.merge["worktree_removed"] is True
    assert env.tip(task.branch or "") == branch_tip
    types = [t for t in await env.types(task.id) if t.startswith("merge.")]
    assert types == ["merge.preflight", "merge.started", "merge.finished"]
    started = next(e for e in await env.store.task_events(task.id) if e.type == "merge.started")
    assert started.data["rollback_sha"] == before and started.data["merge_sha"] == env.tip()
    assert outcome.preflight is not None and outcome.preflight["ok"] is True
    assert [c["name"] for c in outcome.preflight["checks"]] == [
        "target_exists", "branch_exists", "branch_gated", "target_checkouts_clean", "no_conflicts",
        "no_cockpit_paths", "no_overwrite"]
    assert outcome.rebased is False
    # Verify ran the gates on a scratch worktree, which is gone again.
    verify = [e for e in await env.store.task_events(task.id) if e.type == "gate.finished"]
    assert verify and all(e.data["phase"] == "verify" for e in verify)
    assert env.worktrees() == [env.root]
    assert scratch_left(env) == []


async def test_merge_with_target_checked_out_updates_its_files(env: Env) -> None:
    task = await env.task({"feature.txt": "new feature\n", "app.txt": "line 1\nline 2 changed\nline 3\n"})
    outcome = await env.merge(task.id)
    assert outcome.task.state is State.DONE
    assert git(env.root, "rev-parse", "HEAD") == env.tip() == outcome.merge["merge_sha"]
    assert (env.root / "feature.txt").read_text() == "new feature\n"
    assert "line 2 changed" in (env.root / "app.txt").read_text()
    assert git(env.root, "status", "--porcelain") == ""


async def test_dirty_target_checkout_is_refused_with_nothing_changed(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    (env.root / "README.md").write_text("# local edit\n")
    before = env.tip()
    with pytest.raises(RefusedError) as caught:
        await env.merge(task.id)
    assert "uncommitted changes" in caught.value.message and "README.md" in caught.value.message
    assert caught.value.details["step"] == "preflight"
    assert env.tip() == before
    assert (env.root / "README.md").read_text() == "# local edit\n"
    after = await env.store.get_task(task.id)
    assert after.state is State.AWAITING_REVIEW
    assert after.merge is not None and after.merge.state == "refused"
    assert present(task.worktree)
    pre = next(e for e in await env.store.task_events(task.id) if e.type == "merge.preflight")
    checks = {c["name"]: c["ok"] for c in pre.data["checks"]}
    assert checks == {"target_exists": True, "branch_exists": True, "branch_gated": True,
                      "target_checkouts_clean": False, "no_conflicts": True, "no_cockpit_paths": True,
                      "no_overwrite": True}
    assert (await env.types(task.id))[-2:] == ["merge.preflight", "merge.refused"]


async def test_conflicting_change_is_refused_with_the_files_named(env: Env) -> None:
    task = await env.task({"app.txt": "line 1\nline 2 from the task\nline 3\n"})
    commit_files(env.root, {"app.txt": "line 1\nline 2 from main\nline 3\n"}, "main edits line 2")
    before = env.tip()
    branch_tip = env.tip(task.branch or "")
    with pytest.raises(RefusedError) as caught:
        await env.merge(task.id)
    assert "app.txt" in caught.value.message
    assert caught.value.details["conflicts"] == ["app.txt"]
    assert env.tip() == before and env.tip(task.branch or "") == branch_tip
    after = await env.store.get_task(task.id)
    assert after.state is State.AWAITING_REVIEW
    refused = [e for e in await env.store.task_events(task.id) if e.type == "merge.refused"]
    assert refused[-1].data["conflicts"] == ["app.txt"]


async def test_target_moved_rebases_reruns_gates_and_merges(env: Env) -> None:
    env.settings.gates = [GateSpec("has-feature", "test -f feature.txt && test -f other.txt", 30)]
    task = await env.task({"feature.txt": "new\n"})
    moved = commit_files(env.root, {"other.txt": "from main\n"}, "main moved")
    outcome = await env.merge(task.id)
    assert outcome.rebased is True
    done = outcome.task
    assert done.state is State.DONE and done.base_sha == moved
    assert done.merge is not None and done.merge.rollback_sha == moved
    branch_tip = env.tip(task.branch or "")
    assert branch_tip is not None and parents(env.root, branch_tip) == [moved]
    assert parents(env.root, env.tip() or "") == [moved, branch_tip]
    events = await env.store.task_events(task.id)
    phases = [(e.data["name"], e.data["phase"]) for e in events if e.type == "gate.finished"]
    assert ("has-feature", "rebase") in phases and ("has-feature", "verify") in phases
    assert all(e.data["status"] == "passed" for e in events if e.type == "gate.finished")
    order = [e.type for e in events if e.type.startswith("merge.")]
    assert order == ["merge.preflight", "merge.rebased", "merge.started", "merge.finished"]
    assert (env.root / "feature.txt").exists() and (env.root / "other.txt").exists()


async def test_conflicting_rebase_is_aborted_and_names_the_files(env: Env) -> None:
    # The task edits line 2 and then puts it back: merge-tree sees no conflict, replaying commit 1 does.
    task = await env.task([{"app.txt": "line 1\nline 2 task\nline 3\n", "feature.txt": "x\n"},
                           {"app.txt": "line 1\nline 2\nline 3\n"}])
    commit_files(env.root, {"app.txt": "line 1\nline 2 main\nline 3\n"}, "main edits line 2")
    branch_tip = env.tip(task.branch or "")
    before = env.tip()
    with pytest.raises(RefusedError) as caught:
        await env.merge(task.id)
    assert caught.value.details["step"] == "rebase"
    assert caught.value.details["conflicts"] == ["app.txt"] and "app.txt" in caught.value.message
    assert env.tip() == before and env.tip(task.branch or "") == branch_tip
    assert task.worktree is not None and git(Path(task.worktree), "status", "--porcelain") == ""
    after = await env.store.get_task(task.id)
    assert after.state is State.AWAITING_REVIEW and after.merge is not None
    assert after.merge.state == "refused" and "app.txt" in (after.merge.detail or "")


async def test_rebased_branch_failing_the_gates_is_refused(env: Env) -> None:
    env.settings.gates = [GateSpec("no-other", "test ! -f other.txt", 30)]
    task = await env.task({"feature.txt": "new\n"})
    before = commit_files(env.root, {"other.txt": "from main\n"}, "main moved")
    with pytest.raises(RefusedError) as caught:
        await env.merge(task.id)
    assert caught.value.details["step"] == "gates" and "no-other" in caught.value.message
    assert env.tip() == before
    assert (await env.store.get_task(task.id)).state is State.AWAITING_REVIEW


async def test_verify_failing_on_the_merge_result_is_refused(env: Env, short_tmp: Path) -> None:
    flag = short_tmp / "fail-verify"
    flag.write_text("x")
    env.settings.gates = [GateSpec("flag", f"test ! -e {flag}", 30)]
    task = await env.task({"feature.txt": "new\n"})
    before = env.tip()
    with pytest.raises(RefusedError) as caught:
        await env.merge(task.id)
    assert caught.value.details["step"] == "verify" and "flag" in caught.value.message
    assert env.tip() == before and not (env.root / "feature.txt").exists()
    after = await env.store.get_task(task.id)
    assert after.state is State.AWAITING_REVIEW
    assert after.merge is not None and after.merge.state == "refused"
    types = await env.types(task.id)
    assert types.index("merge.started") < types.index("merge.refused")
    assert [g.status for g in after.gates if g.name == "flag"] == ["failed"]
    assert env.worktrees() == [env.root, Path(task.worktree or "")]  # the scratch worktree is gone
    # Fixed: the same task merges.
    flag.unlink()
    assert (await env.merge(task.id)).task.state is State.DONE


async def test_verify_off_runs_no_gates(env: Env) -> None:
    env.settings.values["merge.verify"] = False
    task = await env.task({"feature.txt": "new\n"})
    await env.merge(task.id)
    assert "gate.started" not in await env.types(task.id)


async def test_ref_moved_before_the_move_is_refused_and_loses_nothing(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = await env.task({"feature.txt": "new\n"})
    original = move_target
    pushed: list[str] = []

    def racing(repo: Path, planned: PlannedMerge, **kw: Any) -> None:
        # Someone commits to main after the merge was planned and verified, just before the ref moves.
        pushed.append(commit_files(env.root, {"pushed.txt": "pushed\n"}, "pushed meanwhile"))
        original(repo, planned, **kw)

    monkeypatch.setattr(orchestrator, "move_target", racing)
    with pytest.raises(RefusedError) as caught:
        await env.merge(task.id)
    assert caught.value.details["reason"] == "target_moved"
    assert env.tip() == pushed[0] and (env.root / "pushed.txt").exists()
    assert not (env.root / "feature.txt").exists()
    after = await env.store.get_task(task.id)
    assert after.state is State.AWAITING_REVIEW and after.merge is not None and after.merge.state == "refused"
    # Retried, it merges on top of the pushed commit.
    monkeypatch.setattr(orchestrator, "move_target", original)
    outcome = await env.merge(task.id)
    assert outcome.rebased is True
    assert outcome.task.merge is not None and outcome.task.merge.rollback_sha == pushed[0]
    assert (env.root / "pushed.txt").exists() and (env.root / "feature.txt").exists()


async def test_merge_twice_is_a_no_op(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    first = await env.merge(task.id)
    events = await env.store.last_seq()
    tip = env.tip()
    second = await env.merge(task.id)
    assert second.already_merged is True and second.task.state is State.DONE
    assert second.merge["merge_sha"] == first.merge["merge_sha"] == tip
    assert await env.store.last_seq() == events and env.tip() == tip


async def test_squash_strategy_makes_one_commit(env: Env) -> None:
    env.settings.values["merge.strategy"] = "squash"
    task = await env.task([{"feature.txt": "one\n"}, {"feature.txt": "two\n", "more.txt": "m\n"}])
    before = env.tip()
    branch_tip = env.tip(task.branch or "")
    outcome = await env.merge(task.id)
    merge_sha = outcome.merge["merge_sha"]
    assert outcome.merge["strategy"] == "squash"
    assert parents(env.root, merge_sha) == [before]
    assert tree(env.root, merge_sha) == tree(env.root, branch_tip or "")
    assert (env.root / "feature.txt").read_text() == "two\n"
    # And it rolls back like any merge.
    rolled = await env.rollback(task.id)
    assert rolled.rollback["method"] == "reset" and env.tip() == before


async def test_dry_run_reports_and_changes_nothing(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    commit_files(env.root, {"other.txt": "x\n"}, "main moved")
    before, branch_tip = env.tip(), env.tip(task.branch or "")
    outcome = await env.merge(task.id, dry_run=True)
    assert outcome.dry_run is True and outcome.preflight is not None and outcome.preflight["ok"] is True
    assert outcome.merge["would_rebase"] is True
    assert env.tip() == before and env.tip(task.branch or "") == branch_tip
    assert outcome.task.state is State.AWAITING_REVIEW
    (env.root / "README.md").write_text("dirty\n")
    report = await env.merge(task.id, dry_run=True)
    assert report.preflight is not None and report.preflight["ok"] is False
    assert (await env.store.get_task(task.id)).state is State.AWAITING_REVIEW


async def test_worktree_with_uncommitted_work_is_kept(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    assert task.worktree is not None
    (Path(task.worktree) / "notes.txt").write_text("scratch notes\n")
    outcome = await env.merge(task.id)
    assert outcome.task.state is State.DONE
    assert outcome.merge["worktree_removed"] is False
    assert outcome.merge["worktree_kept"] == task.worktree and "notes.txt" in outcome.merge["note"]
    assert outcome.task.worktree == task.worktree
    assert (Path(task.worktree) / "notes.txt").exists()


async def test_merge_refuses_tasks_not_awaiting_review(env: Env) -> None:
    async with env.store.tx() as tx:
        await tx.append(1, "task.created", {"description": "just created"})
    with pytest.raises(RefusedError, match="only a task awaiting review"):
        await env.merge(1)
    assert await env.types(1) == ["task.created"]


# ----------------------------------------------------------------------------------------- git processes

# What the benchmarks (benchmarks/merge_overhead.py, rollback_overhead.py) time, one git process at a time: a
# new one here is a regression of their ratios against bare git (6 processes for a merge, 2 for a reset, 1 for
# git's in-place revert). Every process goes through `run_git` (GitCalls checks GitPython started no other).
MERGE_CALLS = [
    "rev-parse",  # both tips and their merge base: the rollback point, and did the target move?
    "worktree",  # where the target is checked out
    "status",  # that checkout is clean
    "diff-tree",  # what the merge writes (the target has not moved: the merged tree is the branch's own)
    "commit-tree",  # the merge commit, from the preflight's tips and tree (no identity lookup)
    "rev-parse",  # in the checkout: HEAD (the compare of compare-and-set), the merge's parents, the branch
    "merge",  # --ff-only: the move; its output confirms where the target went
    "worktree",  # remove the task's worktree (git refuses one with uncommitted work)
]
# Rollback: the tip, its tree and the merge's parents are read from git's files (a loose ref and loose
# commits: no process), as is where the target is checked out.
RESET_CALLS = ["reset"]  # reset --keep in the checkout
# merge-tree (git 2.38/2.39: against a stand-in commit this process writes itself), the revert commit, the
# fast-forward
REVERT_CALLS = ["merge-tree", "commit-tree", "merge"]


async def test_git_process_budget_of_merge_and_rollback(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.settings.values["merge.verify"] = False
    monkeypatch.setattr(plumbing, "_merge_base_option", False)  # git 2.38/2.39's revert (its stand-in commit)
    task = await env.task({"feature.txt": "new\n"})
    counted = GitCalls(monkeypatch)
    merged = await env.merge(task.id)
    assert merged.task.state is State.DONE and merged.merge["worktree_removed"] is True
    assert counted.commands() == MERGE_CALLS, counted.calls
    assert counted.processes == len(MERGE_CALLS)

    counted.calls.clear()
    counted.processes = 0
    rolled = await env.rollback(task.id)
    assert rolled.rollback["method"] == "reset"
    assert counted.commands() == RESET_CALLS and counted.processes == len(RESET_CALLS), counted.calls

    other = await env.task({"other.txt": "o\n"}, title="other")
    await env.merge(other.id)
    commit_files(env.root, {"later.txt": "later\n"}, "later work")
    counted.calls.clear()
    counted.processes = 0
    reverted = await env.rollback(other.id)
    assert counted.commands() == REVERT_CALLS and counted.processes == len(REVERT_CALLS), counted.calls
    assert not [args for args in counted.calls if "--hard" in args or args[:2] == ("worktree", "add")]
    assert reverted.rollback["method"] == "revert" and env.worktrees() == [env.root]


async def test_a_verified_merge_looks_at_the_checkout_again_before_moving(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gates take time: someone may start editing the target's checkout meanwhile. The move then lists
    the checkouts and checks them again instead of trusting the preflight's."""
    task = await env.task({"feature.txt": "new\n"})
    original = verify_in_scratch

    def verify(repo: Path, sha: str, scratch: Path, check: Callable[[Path], bool]) -> bool:
        ok = original(repo, sha, scratch, check)
        (env.root / "wip.txt").write_text("started while the gates ran\n")
        return ok

    monkeypatch.setattr(orchestrator, "verify_in_scratch", verify)
    before = env.tip()
    with pytest.raises(RefusedError, match=r"uncommitted changes \(wip\.txt\)") as caught:
        await env.merge(task.id)
    assert caught.value.details["step"] == "move" and env.tip() == before
    assert (env.root / "wip.txt").read_text() == "started while the gates ran\n"
    assert (await env.store.get_task(task.id)).state is State.AWAITING_REVIEW
