"""The checks before a merge, on real git repos."""

from __future__ import annotations

import json

from cockpit.core.merge.plumbing import merge_tree
from cockpit.core.merge.preflight import preflight
from cockpit_testkit.gitrepos import git
from tests.unit.merge.setups import BRANCH, Setup

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
