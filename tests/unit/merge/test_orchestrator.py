"""The merge orchestrator (cockpit.core.merge's recording layer) over real git repos and a real Store."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cockpit.core import git as cg
from cockpit.core.config import Settings
from cockpit.core.errors import CockpitError, RefusedError
from cockpit.core.merge import orchestrator, plumbing
from cockpit.core.merge.context import MergeContext, MergeOutcome, RollbackOutcome
from cockpit.core.merge.engine import PlannedMerge, build_merge_commit, move_target, verify_in_scratch
from cockpit.core.merge.lock import LOCK_NAME, PAUSE_ENV, LockBusy, merge_lock
from cockpit.core.merge.ops import list_merges
from cockpit.core.merge.orchestrator import merge_task
from cockpit.core.merge.reconcile import reconcile_merging
from cockpit.core.merge.rollback import rollback_task
from cockpit.core.models import GateSpec, Task
from cockpit.core.optable import build_ops
from cockpit.core.paths import RepoPaths
from cockpit.core.principals import PERSON_CONTEXT
from cockpit.core.service import TaskService
from cockpit.core.states import State
from cockpit.core.store import Store
from tests.support.gitrepos import git
from tests.support.tasks import commit_files, init_cockpit, reviewable_task
from tests.support.waiting import async_wait_until
from tests.unit.test_git import GitCalls

BASE_FILES = {"README.md": "# demo\n", "app.txt": "line 1\nline 2\nline 3\n"}


@dataclass
class Env:
    root: Path
    paths: RepoPaths
    store: Store
    settings: Settings

    def ctx(self) -> MergeContext:
        return MergeContext(self.store, self.paths, self.settings)

    async def task(self, files: dict[str, str | None] | list[dict[str, str | None]],
                   title: str = "demo change") -> Task:
        return await reviewable_task(self.store, self.paths, files, title=title)

    def tip(self, branch: str = "main") -> str | None:
        return cg.ref_sha(self.root, branch)

    async def types(self, task_id: int) -> list[str]:
        return [e.type for e in await self.store.task_events(task_id)]

    async def merge(self, task_id: int, **kw: Any) -> MergeOutcome:
        return await merge_task(self.ctx(), task_id, **kw)

    async def rollback(self, task_id: int) -> RollbackOutcome:
        return await rollback_task(self.ctx(), task_id)

    def worktrees(self) -> list[Path]:
        return [w.path for w in cg.list_worktrees(self.root)]


@pytest.fixture
async def env(repo_factory: Callable[..., Path]) -> AsyncIterator[Env]:
    root = repo_factory("repo", files=BASE_FILES)
    paths = init_cockpit(root)
    store = await Store.open(paths.db)
    try:
        yield Env(root, paths, store, Settings())
    finally:
        await store.close()


def present(path: str | Path | None) -> bool:
    return path is not None and Path(path).exists()


def scratch_left(env: Env) -> list[Path]:
    scratch = env.ctx().scratch
    return list(scratch.iterdir()) if scratch.is_dir() else []


def expected_tree(repo: Path, base: str, add_from: str, name: str) -> str:
    """The tree of `base` plus the file `name` as it is in commit `add_from` (built in a private index)."""
    index = repo / ".cockpit" / "expected.index"
    run_env = {**os.environ, "GIT_INDEX_FILE": str(index)}

    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, env=run_env, check=True, capture_output=True,
                              text=True).stdout.strip()

    run("read-tree", base)
    run("update-index", "--add", "--cacheinfo", f"100644,{run('rev-parse', f'{add_from}:{name}')},{name}")
    written = run("write-tree")
    index.unlink()
    return written


def hold_lock(path: Path) -> subprocess.Popen[str]:
    """Another process holding the merge lock until its stdin closes."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys\n"
         f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\nsys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def parents(repo: Path, sha: str) -> list[str]:
    return git(repo, "rev-list", "--parents", "-n", "1", sha).split()[1:]


def tree(repo: Path, rev: str) -> str:
    return git(repo, "rev-parse", f"{rev}^{{tree}}")


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


async def test_two_merges_at_once_are_serialised(env: Env) -> None:
    a = await env.task({"a.txt": "a\n"}, title="task a")
    b = await env.task({"b.txt": "b\n"}, title="task b")
    first, second = await asyncio.gather(env.merge(a.id), env.merge(b.id))
    assert first.task.state is State.DONE and second.task.state is State.DONE
    events = [e for e in await env.store.events_since(0) if e.type.startswith("merge.")]
    # One merge runs from preflight to finished before the other starts.
    owners = [e.task_id for e in events]
    assert owners in ([a.id] * 3 + [b.id] * 4, [b.id] * 3 + [a.id] * 4)
    assert (env.root / "a.txt").exists() and (env.root / "b.txt").exists()


async def test_the_lock_is_shared_with_other_processes(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    holder = hold_lock(env.paths.cockpit / LOCK_NAME)
    try:
        with pytest.raises(LockBusy):
            async with merge_lock(env.paths, wait=False):
                pass
        running = asyncio.ensure_future(env.merge(task.id))
        await async_wait_until(_blocked_on_flock, timeout=10, message="the merge never waited for the lock")
        assert not running.done() and "merge.preflight" not in await env.types(task.id)
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
        assert (await running).task.state is State.DONE
    finally:
        holder.kill()
        holder.wait(10)


def _blocked_on_flock() -> bool:
    """This process waits for a flock (a `->` line of /proc/locks names the waiter's pid)."""
    lines = Path("/proc/locks").read_text().splitlines()
    return any("->" in line and "FLOCK" in line and f" {os.getpid()} " in line for line in lines)


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


# ---------------------------------------------------------------------------------------------- reconcile


async def _planned(env: Env, task: Task) -> PlannedMerge:
    """Record merge.preflight and merge.started as a merge that then died would have."""
    planned = build_merge_commit(env.root, task.branch or "", "main", "merge", "Merge (died)")
    await env.store.append(task.id, "merge.preflight", {"target": "main", "strategy": "merge"})
    await env.store.append(task.id, "merge.started", planned.to_json())
    return planned


async def test_reconcile_at_the_rollback_point_returns_to_review(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    await _planned(env, task)
    settled = await reconcile_merging(env.ctx())
    assert [t.state for t in settled] == [State.AWAITING_REVIEW]
    assert settled[0].merge is not None and "nothing was merged" in (settled[0].merge.detail or "")
    assert (await env.merge(task.id)).task.state is State.DONE


async def test_reconcile_at_the_planned_merge_completes_the_record(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    planned = await _planned(env, task)
    move_target(env.root, planned)
    settled = await reconcile_merging(env.ctx())
    assert [t.state for t in settled] == [State.DONE]
    assert settled[0].merge is not None and settled[0].merge.merge_sha == planned.merge_sha
    assert not present(task.worktree)
    finished = (await env.store.task_events(task.id))[-1]
    assert finished.type == "merge.finished" and finished.data["reconciled"] is True


async def test_reconcile_elsewhere_flags_for_a_person_and_touches_nothing(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    planned = await _planned(env, task)
    elsewhere = commit_files(env.root, {"x.txt": "x\n"}, "someone else")
    settled = await reconcile_merging(env.ctx())
    assert [t.state for t in settled] == [State.MERGING]
    m = settled[0].merge
    assert m is not None and m.state == "needs_attention"
    assert planned.merge_sha[:10] in (m.detail or "") and planned.rollback_sha[:10] in (m.detail or "")
    assert env.tip() == elsewhere and present(task.worktree)
    seq = await env.store.last_seq()
    await reconcile_merging(env.ctx())  # said once, not on every start
    assert await env.store.last_seq() == seq
    with pytest.raises(CockpitError) as caught:
        await env.merge(task.id)
    assert caught.value.code == "needs_attention"
    # A person puts main back at the rollback point: the next merge settles and goes ahead.
    git(env.root, "reset", "--keep", "-q", planned.rollback_sha)
    assert (await env.merge(task.id)).task.state is State.DONE


@pytest.mark.parametrize(("step", "state"), [("started", State.AWAITING_REVIEW),
                                              ("verified", State.AWAITING_REVIEW),
                                              ("moved", State.DONE)])
async def test_a_cancelled_merge_is_settled_from_the_ref(
    env: Env, monkeypatch: pytest.MonkeyPatch, step: str, state: State
) -> None:
    monkeypatch.setenv(PAUSE_ENV, step)
    task = await env.task({"feature.txt": "new\n"})
    before = env.tip()
    running = asyncio.ensure_future(env.merge(task.id))
    marker = env.paths.cockpit / f"merge-paused.{step}"
    await async_wait_until(marker.exists, timeout=30, message=f"the merge never paused at {step}")
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    after = await env.store.get_task(task.id)
    assert after.state is state
    assert env.tip() == (before if state is State.AWAITING_REVIEW else after.merge and after.merge.merge_sha)
    assert scratch_left(env) == []


async def test_cancelled_while_a_verify_gate_runs(env: Env, short_tmp: Path) -> None:
    fifo = short_tmp / "hold.fifo"
    os.mkfifo(fifo)
    env.settings.gates = [GateSpec("hold", f"cat {fifo} > /dev/null", 60)]
    task = await env.task({"feature.txt": "new\n"})
    before = env.tip()
    running = asyncio.ensure_future(env.merge(task.id))

    log = env.paths.gate_log(task.id)

    def holding() -> bool:  # the gate's header is logged as it starts
        return log.exists() and "===== gate hold:" in log.read_text()

    await async_wait_until(holding, timeout=30, message="the verify gate never started")
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    after = await env.store.get_task(task.id)
    assert after.state is State.AWAITING_REVIEW and env.tip() == before
    assert scratch_left(env) == [] and env.worktrees() == [env.root, Path(task.worktree or "")]


# --------------------------------------------------------------------------------------------------- list


async def test_list_merges_newest_first_with_the_rollback_method_now(env: Env) -> None:
    a = await env.task({"a.txt": "a\n"}, title="task a")
    b = await env.task({"b.txt": "b\n"}, title="task b")
    refused = await env.task({"README.md": "# from the task\n"}, title="task c")
    await env.merge(a.id)
    await env.merge(b.id)
    commit_files(env.root, {"README.md": "# from main\n"}, "main edits readme")
    with pytest.raises(RefusedError):
        await env.merge(refused.id)
    rows = await list_merges(env.ctx())
    assert [(r["task_id"], r["rollback_now"]) for r in rows] == [(b.id, "revert"), (a.id, "revert")]
    await env.rollback(b.id)
    rows = await list_merges(env.ctx())
    assert [(r["task_id"], r["state"], r["rollback_now"], r["rollback_method"]) for r in rows] == [
        (b.id, "rolled_back", None, "revert"), (a.id, "merged", "revert", None)]
    assert rows[1]["merge_sha"] and rows[1]["rollback_sha"] and rows[1]["target"] == "main"
    everything = await list_merges(env.ctx(), include_all=True)
    assert {r["task_id"] for r in everything} == {a.id, b.id, refused.id}


async def test_ops_shapes(env: Env) -> None:
    service = TaskService(env.paths, env.store, env.settings)
    ops = build_ops(service)
    task = await env.task({"feature.txt": "new\n"})
    dry = await ops.dispatch("merge_task", {"id": task.id, "dry_run": True}, PERSON_CONTEXT)
    assert set(dry) >= {"task", "merge", "preflight", "rebased", "dry_run"} and dry["dry_run"] is True
    done = await ops.dispatch("merge_task", {"id": task.id}, PERSON_CONTEXT)
    assert done["task"]["state"] == "done" and done["task"]["merge"]["state"] == "merged"
    assert done["merge"]["merge_sha"] == env.tip()
    listed = await ops.dispatch("list_merges", {})
    assert listed["merges"][0]["rollback_now"] == "reset"
    rolled = await ops.dispatch("rollback_task", {"id": task.id}, PERSON_CONTEXT)
    assert set(rolled["rollback"]) == {"method", "from_sha", "to_sha"}
    assert rolled["task"]["merge"]["rollback_method"] == "reset"
    assert not await env.store.replay_differences()
