"""A merge never destroys local state: an agent's branch is untrusted input (real git repos, real Store).

Each test is an attack on the merge: a branch that touches `.cockpit/`, one that writes over a person's
ignored or untracked files, a branch that moves after its gates passed, gate artefacts in the worktree, a
refusal after a rebase, and titles no commit message can hold.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cockpit.core import git as cg
from cockpit.core import merging
from cockpit.core.config import Settings
from cockpit.core.errors import RefusedError
from cockpit.core.models import GateSpec, Task
from cockpit.core.paths import RepoPaths
from cockpit.core.states import State
from cockpit.core.store import Store
from tests.support.gitrepos import git
from tests.support.tasks import init_cockpit, reviewable_task

BASE_FILES = {"README.md": "# demo\n", "app.txt": "line 1\nline 2\nline 3\n", ".gitignore": "*.env\nbuild/\n"}


@dataclass
class Env:
    root: Path
    paths: RepoPaths
    store: Store
    settings: Settings

    def ctx(self) -> merging.MergeContext:
        return merging.MergeContext(self.store, self.paths, self.settings)

    async def task(self, files: dict[str, str | None] | list[dict[str, str | None]],
                   title: str = "demo change", prepare: Callable[[Path], None] | None = None) -> Task:
        return await reviewable_task(self.store, self.paths, files, title=title, prepare=prepare)

    def tip(self, branch: str = "main") -> str | None:
        return cg.ref_sha(self.root, branch)

    async def merge(self, task_id: int, **kw: Any) -> merging.MergeOutcome:
        return await merging.merge_task(self.ctx(), task_id, **kw)

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
    rolled = await merging.rollback_task(env.ctx(), task.id)
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
