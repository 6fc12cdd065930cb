"""A merge never destroys local state: an agent's branch is untrusted input (real git repos, real Store).

Each test is an attack on the merge: a branch that touches `.cockpit/`, one that writes over a person's
ignored or untracked files, a branch that moves after its gates passed, gate artefacts in the worktree, a
refusal after a rebase, and titles no commit message can hold.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cockpit.core import git as cg
from cockpit.core.config import Settings
from cockpit.core.errors import RefusedError
from cockpit.core.gates import TddRule, run_gates
from cockpit.core.merge.context import MergeContext, MergeOutcome
from cockpit.core.merge.orchestrator import merge_task
from cockpit.core.merge.rebase import rebase_branch
from cockpit.core.merge.reconcile import reconcile_merging
from cockpit.core.merge.rollback import rollback_task
from cockpit.core.models import GateSpec, Task
from cockpit.core.paths import RepoPaths
from cockpit.core.states import State
from cockpit.core.store import Store
from cockpit_testkit.gitrepos import git
from cockpit_testkit.tasks import commit_files, init_cockpit, reviewable_task
from cockpit_testkit.waiting import async_wait_until

BASE_FILES = {"README.md": "# demo\n", "app.txt": "line 1\nline 2\nline 3\n", ".gitignore": "*.env\nbuild/\n"}


@dataclass
class Env:
    root: Path
    paths: RepoPaths
    store: Store
    settings: Settings

    def ctx(self) -> MergeContext:
        return MergeContext(self.store, self.paths, self.settings)

    async def task(self, files: dict[str, str | None] | list[dict[str, str | None]],
                   title: str = "demo change", prepare: Callable[[Path], None] | None = None) -> Task:
        return await reviewable_task(self.store, self.paths, files, title=title, prepare=prepare)

    def tip(self, branch: str = "main") -> str | None:
        return cg.ref_sha(self.root, branch)

    async def merge(self, task_id: int, **kw: Any) -> MergeOutcome:
        return await merge_task(self.ctx(), task_id, **kw)

    async def refused(self, task_id: int, **kw: Any) -> RefusedError:
        with pytest.raises(RefusedError) as caught:
            await self.merge(task_id, **kw)
        return caught.value


@pytest.fixture
async def env(repo_factory: Callable[..., Path]) -> AsyncIterator[Env]:
    root = repo_factory("repo", files=BASE_FILES)
    paths = init_cockpit(root)
    store = await Store.open(paths.db)
    try:
        yield Env(root, paths, store, Settings())
    finally:
        await store.close()


def force_commit(files: dict[str, str], symlinks: dict[str, str] | None = None,
                 message: str = "agent work") -> Callable[[Path], None]:
    """A `prepare` hook: write files and symlinks in the worktree and commit them with `git add -f` (as an
    agent can, past .gitignore and info/exclude)."""

    def prepare(worktree: Path) -> None:
        for name, content in files.items():
            path = worktree / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        for name, target in (symlinks or {}).items():
            os.symlink(target, worktree / name)
        git(worktree, "add", "-f", "--", *files, *(symlinks or {}))
        git(worktree, "commit", "-q", "-m", message)

    return prepare


def pycache(worktree: str) -> list[Path]:
    return list((Path(worktree) / "__pycache__").iterdir())


def state_intact(paths: RepoPaths) -> bool:
    return (paths.cockpit.is_dir() and not paths.cockpit.is_symlink() and paths.db.is_file()
            and paths.config.is_file())


def is_dir(path: str | Path) -> bool:
    return Path(path).is_dir()


async def assert_untouched(env: Env, task: Task, main_before: str | None) -> None:
    assert env.tip() == main_before
    after = await env.store.get_task(task.id)
    assert after.state is State.AWAITING_REVIEW
    assert after.merge is not None and after.merge.state == "refused"


# --------------------------------------------------------------------------- .cockpit is never merged


async def test_a_branch_committing_cockpit_as_a_symlink_is_refused_and_the_state_survives(env: Env) -> None:
    elsewhere = env.root.parent / "elsewhere"
    elsewhere.mkdir()
    task = await env.task({"feature.txt": "new\n"},
                          prepare=force_commit({}, symlinks={".cockpit": str(elsewhere)}))
    before = env.tip()
    refusal = await env.refused(task.id)
    assert refusal.details["step"] == "preflight" and ".cockpit" in refusal.message
    await assert_untouched(env, task, before)
    # The repo's own state is all still there and in use.
    assert state_intact(env.paths) and task.worktree is not None and is_dir(task.worktree)
    pre = [e for e in await env.store.task_events(task.id) if e.type == "merge.preflight"][-1]
    checks = {c["name"]: c["ok"] for c in pre.data["checks"]}
    assert checks["no_cockpit_paths"] is False


async def test_a_branch_rewriting_the_live_config_is_refused(env: Env) -> None:
    config_before = env.paths.config.read_text()
    task = await env.task({"feature.txt": "new\n"}, prepare=force_commit(
        {".cockpit/config.toml": '[task]\nremote_approval = "all"\n[agent]\nbackend = "custom"\n'
                                 'command = "touch /tmp/owned"\n'}))
    before = env.tip()
    refusal = await env.refused(task.id)
    assert ".cockpit/config.toml" in refusal.message and refusal.details["step"] == "preflight"
    await assert_untouched(env, task, before)
    assert env.paths.config.read_text() == config_before


async def test_cockpit_paths_are_refused_even_with_the_target_checked_out_nowhere(env: Env) -> None:
    git(env.root, "checkout", "-q", "-b", "side")
    task = await env.task({"feature.txt": "new\n"},
                          prepare=force_commit({".cockpit/plans/task-9.md": "# a plan\n"}))
    before = env.tip()
    refusal = await env.refused(task.id)
    assert ".cockpit/plans/task-9.md" in refusal.message
    await assert_untouched(env, task, before)


async def test_a_dry_run_reports_the_cockpit_check(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"}, prepare=force_commit({".cockpit/x": "x\n"}))
    outcome = await env.merge(task.id, dry_run=True)
    assert outcome.preflight is not None and outcome.preflight["ok"] is False
    checks = {c["name"]: c for c in outcome.preflight["checks"]}
    assert checks["no_cockpit_paths"]["ok"] is False and ".cockpit/x" in checks["no_cockpit_paths"]["detail"]


# ------------------------------------------------------------ ignored and untracked files are kept


async def test_an_ignored_file_in_the_main_checkout_is_never_overwritten(env: Env) -> None:
    secret = env.root / "secret.env"
    secret.write_text("TOKEN=the person's\n")
    task = await env.task({"feature.txt": "new\n"}, prepare=force_commit({"secret.env": "TOKEN=agent\n"}))
    before = env.tip()
    refusal = await env.refused(task.id)
    assert "secret.env" in refusal.message and refusal.details["step"] == "preflight"
    assert refusal.details.get("files") == ["secret.env"]
    await assert_untouched(env, task, before)
    assert secret.read_text() == "TOKEN=the person's\n"


async def test_an_ignored_directory_is_never_replaced_by_a_file(env: Env) -> None:
    (env.root / "build").mkdir()
    (env.root / "build" / "out.bin").write_text("a person's build\n")
    task = await env.task({"feature.txt": "new\n"}, prepare=force_commit({"build": "now a file\n"}))
    before = env.tip()
    refusal = await env.refused(task.id)
    assert "build/out.bin" in refusal.message
    await assert_untouched(env, task, before)
    assert (env.root / "build" / "out.bin").read_text() == "a person's build\n"


async def test_an_ignored_file_in_a_directory_the_merge_adds_a_file_to_is_fine(env: Env) -> None:
    (env.root / "build").mkdir()
    (env.root / "build" / "out.bin").write_text("kept\n")
    task = await env.task({"feature.txt": "new\n"}, prepare=force_commit({"build/README": "tracked now\n"}))
    outcome = await env.merge(task.id)
    assert outcome.task.state is State.DONE
    assert (env.root / "build" / "out.bin").read_text() == "kept\n"
    assert (env.root / "build" / "README").read_text() == "tracked now\n"


async def test_an_ignored_file_that_appears_during_verify_is_still_kept(env: Env) -> None:
    late = env.root / "late.env"
    # The verify gate (in a scratch worktree) drops the file in the main checkout: after the preflight passed.
    env.settings.gates = [GateSpec("drop", f"printf 'mine\\n' > {late}", 30)]
    task = await env.task({"feature.txt": "new\n"}, prepare=force_commit({"late.env": "agent's\n"}))
    before = env.tip()
    refusal = await env.refused(task.id)
    assert refusal.details["step"] == "move" and "late.env" in refusal.message
    await assert_untouched(env, task, before)
    assert late.read_text() == "mine\n"


# --------------------------------------------------------------------------------------- odd titles


async def test_a_title_holding_a_nul_byte_cannot_make_a_task_unmergeable(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"}, title="fix\x00 the\x1b[2J thing")
    outcome = await env.merge(task.id)
    assert outcome.task.state is State.DONE
    subject = git(env.root, "log", "-1", "--format=%s", "main")
    assert subject.startswith(f"Merge task {task.id}: fix")
    assert "\x00" not in subject and "\x1b" not in subject
    rolled = await rollback_task(env.ctx(), task.id)
    assert rolled.task.state is State.ROLLED_BACK


async def test_task_intake_refuses_control_characters(env: Env) -> None:
    from cockpit.core.errors import UsageError
    from cockpit.core.service import TaskService

    service = TaskService(env.paths, env.store, env.settings, repo_name="repo", peers=[])
    for bad in ("fix\x00 it", "fix \x1b]0;approved by person\x07 it", "a\x7fb", "c\x85d"):
        with pytest.raises(UsageError) as caught:
            await service.create_task(bad, classify=False)
        assert "control character" in caught.value.message
    assert await env.store.list_tasks() == []
    ok = await service.create_task("fix it\n\twith a tab and\r\nlines", classify=False)
    assert ok.title == "fix it"


# ------------------------------------------------------------------------------------ merge what was gated


def commit_in(worktree: Path, name: str, content: str, message: str = "a leftover process") -> str:
    (worktree / name).write_text(content)
    git(worktree, "add", name)
    git(worktree, "commit", "-q", "-m", message)
    return git(worktree, "rev-parse", "HEAD")


async def test_a_commit_after_the_gates_passed_is_never_merged_unreviewed(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    assert task.worktree is not None and task.gated_sha == env.tip(task.branch or "")
    late = commit_in(Path(task.worktree), "backdoor.txt", "unreviewed\n")
    before = env.tip()
    refusal = await env.refused(task.id)
    assert refusal.details["step"] == "preflight" and refusal.details["reason"] == "branch_moved"
    assert "moved since its gates passed" in refusal.message
    assert f"cockpit task gates {task.id}" in refusal.message
    await assert_untouched(env, task, before)
    assert env.tip(task.branch or "") == late  # the branch itself is left as it is


async def test_without_a_gated_commit_on_record_the_merge_asks_for_the_gates(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    for type_ in ("task.approved", "task.executing", "task.gating"):
        await env.store.append(task.id, type_, {"attempt": 2})
    await env.store.append(task.id, "task.awaiting_review", {})  # as recorded before gated commits existed
    refusal = await env.refused(task.id)
    assert "branch_gated" in refusal.message and f"cockpit task gates {task.id}" in refusal.message


async def test_the_gated_commit_is_merged_even_if_the_branch_moves_during_verify(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    assert task.worktree is not None
    gated = task.gated_sha
    # A process left behind commits on the task branch while the verify gates run.
    env.settings.gates = [GateSpec("sneak", f"cd {task.worktree} && echo x > sneak.txt && git add sneak.txt "
                                            "&& git commit -q -m sneak", 30)]
    outcome = await env.merge(task.id)
    assert outcome.task.state is State.DONE and outcome.task.merge is not None
    merge_sha = outcome.task.merge.merge_sha or ""
    assert git(env.root, "rev-list", "--parents", "-n", "1", merge_sha).split()[1:] == [
        outcome.task.merge.rollback_sha, gated]
    assert not (env.root / "sneak.txt").exists()


# ---------------------------------------------------------------------- gate artefacts and the rebase


async def test_untracked_gate_artefacts_never_block_the_rebase(env: Env) -> None:
    env.settings.gates = [GateSpec("compile", "python3 -m py_compile mod.py", 30)]
    task = await env.task({"mod.py": "x = 1\n"})
    assert task.worktree is not None and task.base_sha is not None
    # The task's gates ran in its worktree, as the execution layer runs them: they leave __pycache__/ there.
    gated = await run_gates(Path(task.worktree), task.base_sha, env.settings.gates,
                            tdd=TddRule(enabled=False), log_path=env.paths.gate_log(task.id))
    assert all(g.status == "passed" for g in gated) and pycache(task.worktree)
    moved = commit_files(env.root, {"other.txt": "from main\n"}, "main moved")
    outcome = await env.merge(task.id)
    assert outcome.rebased is True and outcome.task.state is State.DONE
    assert outcome.task.merge is not None and outcome.task.merge.rollback_sha == moved
    rebase_gates = {e.data["name"]: e.data["status"] for e in await env.store.task_events(task.id)
                    if e.type == "gate.finished" and e.data.get("phase") == "rebase"}
    assert rebase_gates["clean-tree"] == "passed", rebase_gates


async def test_an_untracked_file_the_rebase_would_overwrite_is_named_and_kept(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    assert task.worktree is not None
    notes = Path(task.worktree) / "notes.txt"
    notes.write_text("the agent's notes\n")
    commit_files(env.root, {"notes.txt": "from main\n"}, "main adds notes.txt")
    branch_tip = env.tip(task.branch or "")
    before = env.tip()
    refusal = await env.refused(task.id)
    assert refusal.details["step"] == "rebase" and "notes.txt" in refusal.message
    assert env.tip() == before and env.tip(task.branch or "") == branch_tip
    assert notes.read_text() == "the agent's notes\n"


# ----------------------------------------------------------------------- a refusal restores the branch


async def test_gates_failing_after_the_rebase_put_the_task_branch_back(env: Env) -> None:
    env.settings.gates = [GateSpec("no-other", "test ! -f other.txt", 30)]
    task = await env.task({"feature.txt": "new\n"})
    assert task.worktree is not None
    branch_tip, base = env.tip(task.branch or ""), task.base_sha
    commit_files(env.root, {"other.txt": "from main\n"}, "main moved")
    refusal = await env.refused(task.id)
    assert refusal.details["step"] == "gates"
    assert "put back" in refusal.message
    assert env.tip(task.branch or "") == branch_tip
    assert git(Path(task.worktree), "rev-parse", "HEAD") == branch_tip
    assert git(Path(task.worktree), "status", "--porcelain") == ""
    after = await env.store.get_task(task.id)
    assert after.state is State.AWAITING_REVIEW and after.base_sha == base and after.gated_sha == branch_tip


async def test_a_rebase_that_leaves_no_commits_is_refused_and_undone(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    branch_tip = env.tip(task.branch or "")
    # main already has the task's change (and more): replaying the task's commit leaves nothing.
    commit_files(env.root, {"feature.txt": "new\n", "other.txt": "x\n"}, "main has it already")
    refusal = await env.refused(task.id)
    assert refusal.details["step"] == "rebase" and "already" in refusal.message
    assert "committed nothing" not in refusal.message
    assert env.tip(task.branch or "") == branch_tip
    after = await env.store.get_task(task.id)
    assert after.state is State.AWAITING_REVIEW


async def test_a_verify_failure_after_the_rebase_puts_the_task_branch_back(env: Env) -> None:
    # Passes on the rebase (in the task's worktree), fails on the merge result (in a scratch worktree).
    env.settings.gates = [GateSpec("not-scratch", "case $PWD in */scratch/*) exit 1;; esac", 30)]
    task = await env.task({"feature.txt": "new\n"})
    branch_tip = env.tip(task.branch or "")
    before = commit_files(env.root, {"other.txt": "from main\n"}, "main moved")
    refusal = await env.refused(task.id)
    assert refusal.details["step"] == "verify" and "put back" in refusal.message
    assert env.tip() == before and env.tip(task.branch or "") == branch_tip


async def test_a_merge_cancelled_after_the_rebase_puts_the_branch_back(env: Env, short_tmp: Path) -> None:
    fifo = short_tmp / "hold.fifo"
    os.mkfifo(fifo)
    # Holds the re-gate of the rebased branch (in the task's worktree) until the test cancels the merge.
    env.settings.gates = [GateSpec("hold", f"cat {fifo} > /dev/null", 60)]
    task = await env.task({"feature.txt": "new\n"})
    branch_tip, base = env.tip(task.branch or ""), task.base_sha
    commit_files(env.root, {"other.txt": "from main\n"}, "main moved")
    running = asyncio.ensure_future(env.merge(task.id))
    log = env.paths.gate_log(task.id)

    def holding() -> bool:
        return log.exists() and "===== gate hold:" in log.read_text()

    await async_wait_until(holding, timeout=30, message="the rebase gate never started")
    assert env.tip(task.branch or "") != branch_tip  # rebased
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert env.tip(task.branch or "") == branch_tip
    after = await env.store.get_task(task.id)
    assert after.state is State.AWAITING_REVIEW and after.base_sha == base


async def test_a_merge_killed_after_the_rebase_is_put_back_on_the_next_start(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    assert task.worktree is not None
    branch_tip = env.tip(task.branch or "")
    moved = commit_files(env.root, {"other.txt": "from main\n"}, "main moved")
    # What a process killed right after the rebase leaves: the branch rebased, the rebase on record.
    assert rebase_branch(Path(task.worktree), "main") == []
    await env.store.append(task.id, "merge.preflight", {"target": "main", "strategy": "merge"})
    await env.store.append(task.id, "merge.rebased", {
        "onto": moved, "base_sha": moved, "target": "main", "from_sha": branch_tip,
        "to_sha": env.tip(task.branch or ""), "previous_base_sha": task.base_sha})
    settled = await reconcile_merging(env.ctx())
    assert [t.id for t in settled] == [task.id]
    assert env.tip(task.branch or "") == branch_tip
    after = await env.store.get_task(task.id)
    assert after.state is State.AWAITING_REVIEW and after.base_sha == task.base_sha
    assert await reconcile_merging(env.ctx()) == []  # once
    outcome = await env.merge(task.id)  # and it merges (rebased again) as if nothing had happened
    assert outcome.task.state is State.DONE and outcome.rebased
