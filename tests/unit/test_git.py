"""cockpit.core.git against real repositories."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import git as gitpython
import pytest

from cockpit.core import git as cg
from cockpit.core.errors import GitError, RefusedError
from cockpit.core.merge import engine, guards, plumbing, rebase, rollback
from cockpit_testkit.gitrepos import git


def commit_files(repo: Path, files: dict[str, str], message: str = "change") -> str:
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


# ------------------------------------------------------------------------------------------------ refs


def test_ref_sha_resolves_short_full_and_missing(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert cg.ref_sha(repo, "main") == head
    assert cg.ref_sha(repo, "refs/heads/main") == head
    assert cg.ref_sha(repo, "nope") is None
    assert cg.ref_sha(repo, "refs/heads/nope") is None
    assert cg.ref_sha(repo, "--all") is None
    git(repo, "tag", "-a", "v1", "-m", "tag")
    assert cg.ref_sha(repo, "v1") == head  # annotated tag peeled to its commit


def test_ref_sha_prefers_branch_over_same_named_tag(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "feature", first)
    git(repo, "branch", "feature")
    git(repo, "checkout", "-q", "feature")
    second = commit_files(repo, {"a.txt": "a\n"})
    assert cg.ref_sha(repo, "feature") == second


def test_ref_sha_outside_a_repository_is_an_error(short_tmp: Path) -> None:
    plain = short_tmp / "plain"
    plain.mkdir()
    with pytest.raises(GitError, match="not a git repository"):
        cg.ref_sha(plain, "main")


# ------------------------------------------------------------------------------------------- worktrees


def test_create_list_checkouts_and_remove_worktree(repo: Path, short_tmp: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    wt = short_tmp / "wt" / "task-1"
    assert cg.create_worktree(repo, wt, "cockpit/task-1", "main") == base
    assert (wt / "README.md").read_text() == "# demo\n"
    assert git(wt, "symbolic-ref", "HEAD") == "refs/heads/cockpit/task-1"

    infos = cg.list_worktrees(repo)
    assert [i.is_main for i in infos] == [True, False]
    assert infos[0].path.resolve() == repo.resolve() and infos[0].branch == "main"
    assert infos[1].path.resolve() == wt.resolve()
    assert infos[1].branch == "cockpit/task-1" and infos[1].head == base

    assert [p.resolve() for p in cg.checkouts_of(repo, "main")] == [repo.resolve()]
    assert [p.resolve() for p in cg.checkouts_of(repo, "cockpit/task-1")] == [wt.resolve()]
    assert [p.resolve() for p in cg.checkouts_of(repo, "refs/heads/cockpit/task-1")] == [wt.resolve()]
    assert cg.checkouts_of(repo, "other") == []

    cg.remove_worktree(repo, wt)
    assert not wt.exists()
    assert len(cg.list_worktrees(repo)) == 1
    assert cg.ref_sha(repo, "cockpit/task-1") == base  # the branch is kept


def test_create_worktree_reuses_a_kept_branch(repo: Path, short_tmp: Path) -> None:
    wt = short_tmp / "wt1"
    cg.create_worktree(repo, wt, "cockpit/task-2", "main")
    work = commit_files(wt, {"feature.txt": "done\n"})
    cg.remove_worktree(repo, wt)

    wt2 = short_tmp / "wt2"
    base = cg.create_worktree(repo, wt2, "cockpit/task-2", "main")
    assert base == git(repo, "rev-parse", "main")
    assert git(wt2, "rev-parse", "HEAD") == work
    assert (wt2 / "feature.txt").read_text() == "done\n"


def test_create_worktree_errors(repo: Path, short_tmp: Path) -> None:
    with pytest.raises(GitError, match="does not exist"):
        cg.create_worktree(repo, short_tmp / "x", "cockpit/t", "no-such-branch")
    occupied = short_tmp / "occupied"
    occupied.mkdir()
    (occupied / "file").write_text("keep me\n")
    with pytest.raises(GitError, match="not empty"):
        cg.create_worktree(repo, occupied, "cockpit/t", "main")
    assert (occupied / "file").read_text() == "keep me\n"
    with pytest.raises(GitError, match="already checked out"):
        cg.create_worktree(repo, short_tmp / "y", "main", "main")


def test_remove_worktree_refuses_uncommitted_work(repo: Path, short_tmp: Path) -> None:
    wt = short_tmp / "wt"
    cg.create_worktree(repo, wt, "cockpit/task-3", "main")
    (wt / "README.md").write_text("edited\n")
    with pytest.raises(RefusedError, match=r"uncommitted work \(README.md\)"):
        cg.remove_worktree(repo, wt)
    assert (wt / "README.md").read_text() == "edited\n"

    git(wt, "checkout", "--", "README.md")
    (wt / "new.txt").write_text("untracked\n")
    with pytest.raises(RefusedError, match=r"new\.txt"):
        cg.remove_worktree(repo, wt)
    assert (wt / "new.txt").read_text() == "untracked\n"
    assert len(cg.list_worktrees(repo)) == 2


def test_remove_worktree_ignores_ignored_files_and_prunes_missing(repo: Path, short_tmp: Path) -> None:
    commit_files(repo, {".gitignore": "build/\n"})
    wt = short_tmp / "wt"
    cg.create_worktree(repo, wt, "cockpit/task-4", "main")
    (wt / "build").mkdir()
    (wt / "build" / "out.o").write_text("binary\n")
    assert cg.is_clean(wt)
    cg.remove_worktree(repo, wt)
    assert not wt.exists()

    wt2 = short_tmp / "wt2"
    cg.create_worktree(repo, wt2, "cockpit/task-5", "main")
    shutil.rmtree(wt2)  # deleted behind git's back
    assert cg.list_worktrees(repo)[1].prunable
    assert cg.checkouts_of(repo, "cockpit/task-5") == []
    cg.remove_worktree(repo, wt2)
    assert len(cg.list_worktrees(repo)) == 1


def test_remove_worktree_refuses_main_checkout(repo: Path) -> None:
    with pytest.raises(RefusedError, match="main checkout"):
        cg.remove_worktree(repo, repo)


# ------------------------------------------------------------------------------------------ cleanliness


def test_is_clean_and_dirty_files(repo: Path) -> None:
    commit_files(repo, {".gitignore": "*.log\n", "a.txt": "a\n", "b.txt": "b\n"})
    assert cg.is_clean(repo) and cg.dirty_files(repo) == []

    (repo / "debug.log").write_text("ignored\n")
    assert cg.is_clean(repo)

    (repo / "sub").mkdir()
    (repo / "sub" / "new file.txt").write_text("untracked\n")
    assert not cg.is_clean(repo)
    assert cg.dirty_files(repo) == ["sub/new file.txt"]

    (repo / "a.txt").write_text("changed\n")
    git(repo, "mv", "b.txt", "c.txt")
    assert sorted(cg.dirty_files(repo)) == ["a.txt", "c.txt", "sub/new file.txt"]


# --------------------------------------------------------------------------------------------- history


def test_history_helpers(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    commit_files(repo, {"one.txt": "1\n"})
    head = commit_files(repo, {"two.txt": "2\n", "README.md": "# demo\nmore\n"})
    git(repo, "checkout", "-q", "main")
    moved = commit_files(repo, {"main-only.txt": "m\n"})

    assert cg.commits_beyond(repo, "main", "feature") == 2
    assert cg.commits_beyond(repo, "feature", "main") == 1
    assert cg.commits_beyond(repo, head, head) == 0
    # three-dot: only what the feature branch changed, not main's later commit
    assert cg.changed_files(repo, "main", "feature") == ["README.md", "one.txt", "two.txt"]
    assert cg.merge_base(repo, "main", "feature") == base
    assert cg.merge_base(repo, moved, base) == base
    text = cg.diff(repo, "main", "feature")
    assert "+more" in text and "two.txt" in text and "main-only.txt" not in text
    assert text.endswith("\n")

    git(repo, "checkout", "-q", "--orphan", "island")
    git(repo, "rm", "-rfq", ".")
    commit_files(repo, {"x.txt": "x\n"})
    assert cg.merge_base(repo, "main", "island") is None
    with pytest.raises(GitError):
        cg.merge_base(repo, "main", "no-such-ref")


def test_is_ancestor_and_head_sha(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    second = commit_files(repo, {"a.txt": "a\n"})
    assert cg.is_ancestor(repo, first, second)
    assert not cg.is_ancestor(repo, second, first)
    assert cg.head_sha(repo) == second


def test_commit_env_supplies_an_identity_only_when_missing(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cg.commit_env(repo) == {}
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(key, raising=False)
    git(repo, "config", "--unset", "user.name")
    git(repo, "config", "--unset", "user.email")
    git(repo, "config", "user.useConfigOnly", "true")
    env = cg.commit_env(repo)
    assert env["GIT_COMMITTER_NAME"] == "agent-cockpit"
    assert env["GIT_AUTHOR_EMAIL"] == cg.FALLBACK_EMAIL


# ------------------------------------------------------------------------------------- git call counts


class GitCalls:
    """Every git command run through `run_git` (the engine's single runner, patched where the git helpers,
    the merge engine and the orchestrator look it up), and every process GitPython started: a test that
    compares the two knows that no git process was started some other way."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.processes = 0
        real_run = cg.run_git
        real_execute = gitpython.Git.execute

        def run_git(cwd: Path, *args: str, **kwargs: Any) -> cg.GitResult:
            self.calls.append(args)
            return real_run(cwd, *args, **kwargs)

        def execute(git_self: gitpython.Git, command: Any, *args: Any, **kwargs: Any) -> Any:
            self.processes += 1
            return real_execute(git_self, command, *args, **kwargs)

        monkeypatch.setattr(cg, "run_git", run_git)
        for module in (engine, guards, plumbing, rebase, rollback):
            monkeypatch.setattr(module, "run_git", run_git)
        monkeypatch.setattr(gitpython.Git, "execute", execute)

    def commands(self) -> list[str]:
        """The git subcommand of each call (after any `-c name=value` options)."""
        names = []
        for args in self.calls:
            rest = list(args)
            while rest and rest[0] == "-c":
                rest = rest[2:]
            names.append(rest[0] if rest else "")
        return names


def test_remove_worktree_is_one_git_call(
    repo: Path, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wt = short_tmp / "wt"
    cg.create_worktree(repo, wt, "cockpit/task-6", "main")
    counted = GitCalls(monkeypatch)
    cg.remove_worktree(repo, wt)
    assert counted.commands() == ["worktree"] and counted.processes == 1
    assert not wt.exists() and len(cg.list_worktrees(repo)) == 1


def test_remove_worktree_keeps_untracked_files_hidden_by_config(repo: Path, short_tmp: Path) -> None:
    """`git worktree remove` decides with `git status`; a user's status.showUntrackedFiles=no must not make
    it delete untracked files."""
    git(repo, "config", "status.showUntrackedFiles", "no")
    wt = short_tmp / "wt"
    cg.create_worktree(repo, wt, "cockpit/task-7", "main")
    (wt / "notes.txt").write_text("mine\n")
    with pytest.raises(RefusedError, match=r"uncommitted work \(notes\.txt\)") as info:
        cg.remove_worktree(repo, wt)
    assert info.value.details == {"reason": "dirty_worktree", "files": ["notes.txt"]}
    assert (wt / "notes.txt").read_text() == "mine\n"


def test_remove_worktree_refuses_a_locked_worktree(repo: Path, short_tmp: Path) -> None:
    wt = short_tmp / "wt"
    cg.create_worktree(repo, wt, "cockpit/task-8", "main")
    git(repo, "worktree", "lock", str(wt))
    with pytest.raises(RefusedError, match="locked"):
        cg.remove_worktree(repo, wt)
    assert wt.exists()


def test_remove_worktree_of_a_plain_directory(repo: Path, short_tmp: Path) -> None:
    plain = short_tmp / "plain"
    plain.mkdir()
    (plain / "keep.txt").write_text("keep\n")
    with pytest.raises(GitError, match="not a worktree"):
        cg.remove_worktree(repo, plain)
    assert (plain / "keep.txt").read_text() == "keep\n"
    cg.remove_worktree(repo, short_tmp / "nowhere")  # nothing there: nothing to do


def test_identity_is_looked_up_only_when_a_commit_fails_for_lack_of_one(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    counted = GitCalls(monkeypatch)
    made = cg.run_git_with_identity(repo, "commit-tree", tree, "-m", "configured").stdout
    assert counted.commands() == ["commit-tree"]
    assert git(repo, "log", "-1", "--format=%an", made) == "Test Author"

    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(key, raising=False)
    git(repo, "config", "--unset", "user.name")
    git(repo, "config", "--unset", "user.email")
    git(repo, "config", "user.useConfigOnly", "true")
    counted.calls.clear()
    made = cg.run_git_with_identity(repo, "commit-tree", tree, "-m", "no identity").stdout
    assert counted.commands() == ["commit-tree", "var", "var", "commit-tree"]
    assert git(repo, "log", "-1", "--format=%an <%ae>", made) == f"agent-cockpit <{cg.FALLBACK_EMAIL}>"
    with pytest.raises(GitError, match="commit-tree"):
        cg.run_git_with_identity(repo, "commit-tree", "0" * 40, "-m", "no such tree")
