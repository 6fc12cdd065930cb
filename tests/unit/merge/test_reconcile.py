"""Crash reconcile: what the ref says after a crash between merge.started and merge.finished, and
`reconcile_merging` settling the tasks from it (real git repos, a real Store)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from cockpit.core.errors import CockpitError
from cockpit.core.merge.engine import PlannedMerge, build_merge_commit, move_target
from cockpit.core.merge.lock import PAUSE_ENV
from cockpit.core.merge.reconcile import reconcile, reconcile_merging
from cockpit.core.models import GateSpec, Task
from cockpit.core.states import State
from cockpit_testkit.gitrepos import git
from cockpit_testkit.tasks import commit_files
from cockpit_testkit.waiting import async_wait_until
from tests.unit.merge.envs import Env, present, scratch_left
from tests.unit.merge.setups import BRANCH, Setup

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
