"""What the classifier tests share: the peers, a description, and the invariants of every classification."""

from __future__ import annotations

from cockpit.core.models import SCOPES, VERBS, Classification

PEERS = ["frontend", "docs"]
DESCRIPTION = "add /export endpoint and update the frontend client"


def assert_valid(c: Classification, peers: list[str]) -> None:
    """The invariants every classification must hold, whoever produced it."""
    assert c.scope in SCOPES
    assert c.reason.strip()
    assert c.title.strip()
    seen: set[int] = set()
    for step in c.plan:
        assert step.verb in VERBS
        assert step.description.strip()
        assert step.n not in seen
        assert set(step.depends_on) <= seen, f"step {step.n} depends on a later step"
        if step.verb == "delegate":
            assert step.peer in peers
        else:
            assert step.peer is None
        seen.add(step.n)
    if c.scope == "ambiguous":
        assert 1 <= len(c.questions) <= 3
    if c.scope in ("small", "large"):
        assert c.plan
    if c.scope == "small":
        assert all(s.verb != "delegate" for s in c.plan)
    if c.scope == "reject":
        assert not c.plan
