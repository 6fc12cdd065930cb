"""The merge ops: `list_merges` and the shapes of the ops' replies."""

from __future__ import annotations

import pytest

from cockpit.core.errors import RefusedError
from cockpit.core.merge.ops import list_merges
from cockpit.core.optable import build_ops
from cockpit.core.principals import PERSON_CONTEXT
from cockpit.core.service import TaskService
from cockpit_testkit.tasks import commit_files
from tests.unit.merge.envs import Env

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
