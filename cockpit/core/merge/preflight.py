"""The checks before a merge: branch and target, the gated commit, conflicts, what it would overwrite."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cockpit.core.errors import GitError
from cockpit.core.git import (
    branch_ref,
    checkouts_of,
    dirty_files,
    merge_base,
    short_branch,
)
from cockpit.core.merge.guards import (
    COCKPIT_DIR,
    TreeChange,
    cockpit_paths,
    cockpit_refusal,
    overwrite_refusal,
    overwritten_paths,
    tree_changes,
)
from cockpit.core.merge.plumbing import MergeTreeResult, list_files, merge_tree, read_tips, short

# -------------------------------------------------------------------------------------------- preflight


@dataclass
class PreflightCheck:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Preflight:
    target: str
    target_sha: str | None
    branch: str
    branch_sha: str | None
    checks: list[PreflightCheck] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    target_moved: bool = False  # merge-base(branch, target) != target tip: rebase and re-gate first
    checkouts: list[Path] = field(default_factory=list)  # where the target is checked out
    merge_bases: list[str] | None = None  # of the two tips, when both exist
    tree: str | None = None  # the merged tree, when it merges cleanly (for build_merge_commit)
    changes: tuple[TreeChange, ...] = ()  # what the merge writes, relative to the target's tip
    overwritten: list[str] = field(default_factory=list)  # untracked paths in a checkout it would write over

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def refused_files(self) -> list[str]:
        """The paths a failed path check names: under `.cockpit/`, or written over in a checkout."""
        return cockpit_paths(self.changes) or list(self.overwritten)

    def reason(self) -> str:
        """What failed, as a word for `merge.refused` (the first failed check decides)."""
        names = [check.name for check in self.failed()]
        for name, cause in (("no_conflicts", "conflicts"), ("branch_gated", "branch_moved"),
                            ("no_cockpit_paths", "cockpit_paths"), ("no_overwrite", "would_overwrite")):
            if name in names:
                return cause
        return "preflight"

    def failed(self) -> list[PreflightCheck]:
        return [check for check in self.checks if not check.ok]

    def summary(self) -> str:
        """One line for a person: 'ok' or what failed."""
        bad = self.failed()
        if not bad:
            return "preflight ok" + (" (target moved: rebase first)" if self.target_moved else "")
        return "; ".join(f"{check.name}: {check.detail}" for check in bad)

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "target": self.target,
            "target_sha": self.target_sha,
            "branch": self.branch,
            "branch_sha": self.branch_sha,
            "checks": [check.to_json() for check in self.checks],
            "conflicts": list(self.conflicts),
            "target_moved": self.target_moved,
            "checkouts": [str(path) for path in self.checkouts],
        }


def merged_tree(
    repo: Path, target_sha: str, branch_sha: str, branch_tree: str | None, bases: list[str]
) -> tuple[MergeTreeResult, tuple[TreeChange, ...]]:
    """The merged tree and what it changes relative to the target. When the target is the merge base (it has
    not moved since the branch forked) the merge is the branch's own tree: no merge-tree is needed."""
    if bases == [target_sha] and branch_tree:
        merged = MergeTreeResult(tree=branch_tree, conflicts=[], messages=[])
    else:
        merged = merge_tree(repo, target_sha, branch_sha)
        if not merged.clean:
            return merged, ()
    return merged, tree_changes(repo, target_sha, merged.tree)


def preflight(repo: Path, branch: str, target: str, *, gated: str | None = None) -> Preflight:
    """Check, without changing anything, whether `branch` can be merged into `target`.

    Checks: target_exists, branch_exists, branch_gated (only when `gated` is given: the commit the gates
    passed on, "" for none on record; the branch's tip must be it), target_checkouts_clean, no_conflicts,
    no_cockpit_paths (the merge adds, changes or removes nothing under `.cockpit/`) and no_overwrite (it
    writes over no ignored or untracked path in a checkout of the target). `target_moved` is information for
    the caller (rebase the branch and run the gates again), not a failed check. Four git calls when it passes
    with the target checked out once and not moved: both tips, the branch's tree and their merge base, the
    worktree list, the checkout's status, and what the merge changes (a target that moved adds merge-tree).
    """
    target_name, branch_name = short_branch(target), short_branch(branch)
    target_sha, branch_sha, branch_tree, bases = read_tips(
        repo, branch_ref(target_name), branch_ref(branch_name)
    )
    pf = Preflight(target=target_name, target_sha=target_sha, branch=branch_name, branch_sha=branch_sha)

    pf.checks.append(
        PreflightCheck(
            "target_exists",
            target_sha is not None,
            f"{target_name} at {short(target_sha)}"
            if target_sha
            else f"target branch {target_name} does not exist; create it or set task.target_branch",
        )
    )
    pf.checks.append(
        PreflightCheck(
            "branch_exists",
            branch_sha is not None,
            f"{branch_name} at {short(branch_sha)}"
            if branch_sha
            else f"task branch {branch_name} does not exist; retry the task to recreate it",
        )
    )
    if gated is not None:
        if not gated:
            detail = f"no commit of {branch_name} has passed the gates on record; run the gates again"
        elif branch_sha != gated:
            detail = (
                f"{branch_name} moved since its gates passed (they passed on {short(gated)}, the branch is "
                f"at {short(branch_sha)}): the new commits were never checked; run the gates on the new tip"
            )
        else:
            detail = f"the gates passed on {short(gated)}, the branch's tip"
        pf.checks.append(PreflightCheck("branch_gated", bool(gated) and branch_sha == gated, detail))

    if target_sha is not None:
        pf.checkouts = checkouts_of(repo, target_name)
    dirty: list[str] = []
    for checkout in pf.checkouts:
        files = dirty_files(checkout)
        if files:
            dirty.append(f"{checkout} ({list_files(files, 3)})")
    if dirty:
        where = "; ".join(dirty)
        detail = f"{target_name} is checked out with uncommitted changes at {where}; commit or stash them"
    elif pf.checkouts:
        detail = "clean: " + ", ".join(str(path) for path in pf.checkouts)
    else:
        detail = f"{target_name} is not checked out anywhere"
    pf.checks.append(PreflightCheck("target_checkouts_clean", not dirty, detail))

    if target_sha is None or branch_sha is None:
        pf.checks.append(PreflightCheck("no_conflicts", False, "not checked: a branch is missing"))
        return pf
    if target_name == branch_name:
        pf.checks.append(PreflightCheck("no_conflicts", False, "the task branch is the target branch"))
        return pf

    if bases is None:  # both exist, yet the one-call read failed: ask git the slow way
        base = merge_base(repo, branch_sha, target_sha)
        bases = [base] if base else []
    pf.merge_bases = bases
    pf.target_moved = bases != [target_sha]
    try:
        merged, changes = merged_tree(repo, target_sha, branch_sha, branch_tree, bases)
    except GitError as exc:
        pf.checks.append(PreflightCheck("no_conflicts", False, exc.message))
        return pf
    pf.conflicts = list(merged.conflicts)
    pf.tree = merged.tree if merged.clean else None
    pf.changes = changes
    pf.checks.append(
        PreflightCheck(
            "no_conflicts",
            merged.clean,
            "merges cleanly"
            if merged.clean
            else f"conflicts with {target_name} in {list_files(merged.conflicts)}; rebase and resolve",
        )
    )
    if not merged.clean:
        return pf
    cockpit = cockpit_paths(changes)
    pf.checks.append(
        PreflightCheck(
            "no_cockpit_paths",
            not cockpit,
            cockpit_refusal(cockpit).message if cockpit else f"nothing under {COCKPIT_DIR}/",
        )
    )
    in_the_way: list[str] = []
    for checkout in pf.checkouts:
        hits = overwritten_paths(checkout, changes)
        if hits:
            in_the_way.append(overwrite_refusal(checkout, hits).message)
            pf.overwritten.extend(hits)
    pf.checks.append(
        PreflightCheck(
            "no_overwrite",
            not in_the_way,
            "; ".join(in_the_way)
            if in_the_way
            else "writes over no ignored or untracked file"
            if pf.checkouts
            else f"{target_name} is not checked out: no files are written",
        )
    )
    return pf
