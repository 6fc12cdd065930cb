"""What the ref says after a crash between merge.started and merge.finished."""

from __future__ import annotations

from cockpit.core.merge.engine import build_merge_commit, move_target
from cockpit.core.merge.reconcile import reconcile
from tests.support.gitrepos import git
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
