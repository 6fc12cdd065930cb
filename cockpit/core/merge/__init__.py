"""Verified merges with a recorded rollback point, and rollback (docs/design.md, Merge and rollback).

The git engine's contract: the rollback point is read from the target ref itself; the merge commit is built
with plumbing (`merge-tree --write-tree` + `commit-tree`) without moving any ref; it can be verified in a
scratch worktree; the target then moves by compare-and-set (`update-ref new old`, or `merge --ff-only` inside
the checkout that has the target checked out, after checking its HEAD). Rollback moves the ref back
(compare-and-set or `reset --keep`) while the merge is still the tip, and makes a revert commit once later
commits exist; the revert is built with plumbing too (a three-way `merge-tree` whose base is the merge), never
in a checkout. Nothing here ever runs `reset --hard`, touches uncommitted work, or leaves a ref half-moved:
every refusal leaves refs, index and files exactly as they were.

Git processes are the whole cost of a merge, so each step starts as few as it can: one `rev-parse` reads
both branch tips and their merge base; `build_merge_commit` takes the preflight's tips and merge tree instead
of computing them again; `move_target` takes the preflight's checkout list; the fallback identity is looked
up only when a commit fails for the lack of one; the worktree list gives each checkout's HEAD; the output of
`merge --ff-only` says where it moved the target. Slower reads happen only on the paths that refuse.

The engine never touches the task store: the recording layer records merge.preflight / merge.started /
merge.finished around these calls (merge.started carries `PlannedMerge.rollback_sha` and `merge_sha`,
before `move_target`), and `reconcile` answers what happened after a crash in between.

The git engine, by step: `preflight` (the checks), `guards` (what a merge may not overwrite), `rebase` (the
task branch onto a moved target), `engine` (build, verify in scratch, compare-and-set move), `plumbing`
(merge-tree, commit-tree, revisions), `rollback` (reset or revert).

The recording layer (events, the store, the lock): `orchestrator` (`merge_task`, the steps of a merge),
`rollback` (`rollback_task`), `reconcile` (after a crash, from the ref), `lock` (the cross-process lock and
the test hook), `context` (what the steps share), `ops` (the socket ops). The daemon's queue of merges is
`cockpit.daemon.merge`.
"""
