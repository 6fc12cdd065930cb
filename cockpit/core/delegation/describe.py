"""A peer task in one line for a person or a pane, and the hint of what to do next about it."""

from __future__ import annotations

from pathlib import Path

from cockpit.core.models import JSON


def describe(repo: str, task: JSON) -> str:
    """One line for a person (or the sender's pane): `peer task frontend#4 pending, awaiting approval`."""
    state = str(task.get("state"))
    where = f"peer task {repo}#{task.get('id')} {state}"
    reason = task.get("failure") or ""
    extra = {
        "created": "not classified yet",
        "pending": "awaiting approval",
        "pending_clarification": f"waiting for a person in {repo} to answer its questions",
        "approved": "waiting for an execution slot",
        "executing": "the agent is working" + (" and needs input" if task.get("needs_input") else ""),
        "gating": "running its gates",
        "awaiting_review": f"awaiting review by a person in {repo}",
        "merging": "its merge is under way",
        "done": "merged",
        "failed": str(reason) or "failed",
        "interrupted": str(reason) or "its agent stopped",
        "rejected": str(reason) or f"rejected in {repo}",
        "cancelled": str(reason) or f"cancelled in {repo}",
        "rolled_back": "its merge was rolled back",
    }.get(state, "")
    return f"{where}, {extra}" if extra else where


def hint_for(repo: str, task: JSON, *, via: str, root: Path | None = None) -> str:
    """What the sender (a person or a model) should do next about this peer task."""
    tid, state = task.get("id"), str(task.get("state"))
    wait = (f"wait_remote_task(repo={repo!r}, id={tid}) (`cockpit remote wait {repo} {tid}`) blocks until it "
            "finishes")
    approve_there = (f"a person must approve it in the {repo} tab of the cockpit (or "
                     f"`cockpit task approve {tid}` in {repo})")
    if state == "created":
        if via == "store":
            return (f"{repo}'s daemon is down: the task waits in `created` and is classified when the daemon "
                    f"starts (`cockpit daemon start --repo {root or repo}`); {wait}")
        return f"{repo} is still classifying it; get_remote_task shows the plan when it is ready; {wait}"
    if state == "pending":
        scope = task.get("scope") or "unclassified"
        return (f"{repo}#{tid} is {scope} and pending: {approve_there}. approve_remote_task works only where "
                f"{repo}'s remote_approval allows it; {wait}")
    if state == "pending_clarification":
        return (f"{repo}#{tid} has questions for a person in {repo} (`cockpit task clarify {tid}` there); "
                f"{wait}")
    if state in ("approved", "executing", "gating", "merging"):
        return f"{repo}#{tid} is under way; {wait}"
    if state == "awaiting_review":
        return f"{repo}#{tid} awaits review by a person in {repo}, who merges it; {wait}"
    if state == "done":
        return f"{repo}#{tid} is merged in {repo}: carry on with the steps that depend on it"
    if state in ("failed", "interrupted", "rolled_back"):
        return (f"{repo}#{tid} is {state}: a person in {repo} can retry it (`cockpit task retry {tid}` "
                "there); do not build on it")
    return f"{repo}#{tid} is {state} and will not be done; tell the person and do not build on it"
