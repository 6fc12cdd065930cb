"""The task model as stored in projections and sent over the socket.

The projection is a pure fold of events (`cockpit.core.projection`); these dataclasses are its values and the
JSON shape every client sees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cockpit.core.states import State

Scope = Literal["small", "large", "ambiguous", "reject"]
SCOPES: tuple[str, ...] = ("small", "large", "ambiguous", "reject")
VERBS: tuple[str, ...] = ("add", "modify", "delete", "test", "delegate", "verify")

JSON = dict[str, Any]


@dataclass
class PlanStep:
    n: int
    verb: str
    description: str
    peer: str | None = None
    depends_on: list[int] = field(default_factory=list)
    # Execution bookkeeping (delegate steps: the peer task; any step: pending/running/done/failed).
    status: str = "pending"
    peer_task_id: int | None = None
    peer_state: str | None = None
    detail: str | None = None

    def to_json(self) -> JSON:
        return asdict(self)

    @classmethod
    def from_json(cls, data: JSON) -> PlanStep:
        return cls(
            n=int(data["n"]),
            verb=str(data["verb"]),
            description=str(data.get("description", "")),
            peer=data.get("peer"),
            depends_on=[int(x) for x in data.get("depends_on", [])],
            status=str(data.get("status", "pending")),
            peer_task_id=data.get("peer_task_id"),
            peer_state=data.get("peer_state"),
            detail=data.get("detail"),
        )


@dataclass
class Classification:
    """What the classifier decided, before it becomes events."""

    scope: str
    reason: str
    title: str
    plan: list[PlanStep]
    questions: list[str] = field(default_factory=list)
    classifier: str = "heuristic"
    fallback_reason: str | None = None

    def to_json(self) -> JSON:
        return {
            "scope": self.scope,
            "reason": self.reason,
            "title": self.title,
            "plan": [s.to_json() for s in self.plan],
            "questions": list(self.questions),
            "classifier": self.classifier,
            "fallback_reason": self.fallback_reason,
        }

    @classmethod
    def from_json(cls, data: JSON) -> Classification:
        return cls(
            scope=str(data["scope"]),
            reason=str(data.get("reason", "")),
            title=str(data.get("title", "")),
            plan=[PlanStep.from_json(s) for s in data.get("plan", [])],
            questions=[str(q) for q in data.get("questions", [])],
            classifier=str(data.get("classifier", "heuristic")),
            fallback_reason=data.get("fallback_reason"),
        )


@dataclass
class GateSpec:
    name: str
    command: str
    timeout_s: float = 600.0


@dataclass
class GateResult:
    name: str
    status: str  # "passed" | "failed"
    exit_code: int | None
    duration_s: float
    log_tail: list[str] = field(default_factory=list)
    reason: str | None = None

    def to_json(self) -> JSON:
        return asdict(self)

    @classmethod
    def from_json(cls, data: JSON) -> GateResult:
        return cls(
            name=str(data["name"]),
            status=str(data["status"]),
            exit_code=data.get("exit_code"),
            duration_s=float(data.get("duration_s", 0.0)),
            log_tail=[str(x) for x in data.get("log_tail", [])],
            reason=data.get("reason"),
        )


@dataclass
class MergeInfo:
    state: str  # preflight | merging | merged | refused | rolled_back | needs_attention
    target: str
    merge_sha: str | None = None
    rollback_sha: str | None = None
    strategy: str = "merge"
    rollback_method: str | None = None
    detail: str | None = None

    def to_json(self) -> JSON:
        return asdict(self)


@dataclass
class RunUsage:
    """Tokens (and cost, where the agent reports it) of one agent run: a pane from start to exit."""

    run: int
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    source: str | None = None

    def to_json(self) -> JSON:
        return asdict(self)

    @classmethod
    def from_json(cls, data: JSON) -> RunUsage:
        cost = data.get("cost_usd")
        return cls(
            run=int(data.get("run", 0)),
            input_tokens=int(data.get("input_tokens") or 0),
            output_tokens=int(data.get("output_tokens") or 0),
            cost_usd=float(cost) if cost is not None else None,
            source=data.get("source"),
        )


def usage_totals(runs: list[RunUsage]) -> JSON:
    """The `usage` object of a task (or of many): totals and, for a task, its runs."""
    costs = [r.cost_usd for r in runs if r.cost_usd is not None]
    return {
        "input_tokens": sum(r.input_tokens for r in runs),
        "output_tokens": sum(r.output_tokens for r in runs),
        "cost_usd": round(sum(costs), 6) if costs else None,
    }


@dataclass
class Link:
    repo: str
    id: int
    # The child's last recorded state (its finish, as `delegation.finished` recorded it); shown live instead.
    state: str | None = None
    # The delegate step it was sent for; None for a child an agent created with create_remote_task.
    step: int | None = None
    # A retry of the parent no longer waits on this (failed) child.
    released: bool = False

    def to_json(self) -> JSON:
        data: JSON = {"repo": self.repo, "id": self.id}
        if self.state is not None:
            data["state"] = self.state
        if self.step is not None:
            data["step"] = self.step
        if self.released:
            data["released"] = True
        return data

    @classmethod
    def from_json(cls, data: JSON) -> Link:
        step = data.get("step")
        return cls(str(data["repo"]), int(data["id"]), data.get("state"),
                   int(step) if step is not None else None, bool(data.get("released", False)))


@dataclass
class Task:
    id: int
    title: str
    description: str
    state: State = State.CREATED
    scope: str | None = None
    classifier: str | None = None
    reason: str | None = None
    plan: list[PlanStep] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    needs_input: bool = False
    source_repo: str | None = None
    source_task_id: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    approved_by: str | None = None
    # Execution (the execution issue).
    branch: str | None = None
    worktree: str | None = None
    base_sha: str | None = None
    pane: str | None = None
    agent: str | None = None
    agent_status: str = "idle"  # idle | running | needs_input | done (session still open) | exited
    attempt: int = 0
    script: str | None = None
    progress: str | None = None
    gates: list[GateResult] = field(default_factory=list)
    gated_sha: str | None = None  # the commit the gates last passed on: what a merge takes, exactly
    failure: str | None = None
    # Real agents: the agent's last words (end of turn or done report) and its token usage per run.
    last_message: str | None = None
    usage_runs: list[RunUsage] = field(default_factory=list)
    # Merge (the merge issue).
    merge: MergeInfo | None = None
    # Delegation: children are filled with live states when shown.
    children: list[Link] = field(default_factory=list)
    # A child that failed, was rejected or rolled back once this task could no longer fail (in review or
    # merged): the child named, and why.
    child_failure: str | None = None
    # Who created it: "person", "remote:<repo>", "agent" (a tool call, on behalf of task `on_behalf_of`)...
    created_by: str | None = None
    on_behalf_of: int | None = None

    @property
    def parent(self) -> Link | None:
        if self.source_repo is None or self.source_task_id is None:
            return None
        return Link(self.source_repo, self.source_task_id)

    def to_json(self) -> JSON:
        parent = self.parent
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "state": self.state.value,
            "scope": self.scope,
            "classifier": self.classifier,
            "reason": self.reason,
            "plan": [s.to_json() for s in self.plan],
            "questions": list(self.questions),
            "answers": list(self.answers),
            "needs_input": self.needs_input,
            "source_repo": self.source_repo,
            "source_task_id": self.source_task_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "approved_by": self.approved_by,
            "branch": self.branch,
            "worktree": self.worktree,
            "base_sha": self.base_sha,
            "pane": self.pane,
            "agent": self.agent,
            "agent_status": self.agent_status,
            "attempt": self.attempt,
            "script": self.script,
            "progress": self.progress,
            "gates": [g.to_json() for g in self.gates],
            "gated_sha": self.gated_sha,
            "failure": self.failure,
            "last_message": self.last_message,
            "usage": {**usage_totals(self.usage_runs), "runs": [r.to_json() for r in self.usage_runs]},
            "merge": self.merge.to_json() if self.merge else None,
            "children": [c.to_json() for c in self.children],
            "parent": parent.to_json() if parent else None,
            "child_failure": self.child_failure,
            "created_by": self.created_by,
            "on_behalf_of": self.on_behalf_of,
        }

    @classmethod
    def from_json(cls, data: JSON) -> Task:
        merge = data.get("merge")
        return cls(
            id=int(data["id"]),
            title=str(data["title"]),
            description=str(data["description"]),
            state=State(data["state"]),
            scope=data.get("scope"),
            classifier=data.get("classifier"),
            reason=data.get("reason"),
            plan=[PlanStep.from_json(s) for s in data.get("plan", [])],
            questions=list(data.get("questions", [])),
            answers=list(data.get("answers", [])),
            needs_input=bool(data.get("needs_input", False)),
            source_repo=data.get("source_repo"),
            source_task_id=data.get("source_task_id"),
            created_at=float(data.get("created_at", 0.0)),
            updated_at=float(data.get("updated_at", 0.0)),
            approved_by=data.get("approved_by"),
            branch=data.get("branch"),
            worktree=data.get("worktree"),
            base_sha=data.get("base_sha"),
            pane=data.get("pane"),
            agent=data.get("agent"),
            agent_status=str(data.get("agent_status", "idle")),
            attempt=int(data.get("attempt", 0)),
            script=data.get("script"),
            progress=data.get("progress"),
            gates=[GateResult.from_json(g) for g in data.get("gates", [])],
            gated_sha=data.get("gated_sha"),
            failure=data.get("failure"),
            last_message=data.get("last_message"),
            usage_runs=[RunUsage.from_json(r) for r in (data.get("usage") or {}).get("runs", [])],
            merge=MergeInfo(**merge) if merge else None,
            children=[Link.from_json(c) for c in data.get("children", [])],
            child_failure=data.get("child_failure"),
            created_by=data.get("created_by"),
            on_behalf_of=data.get("on_behalf_of"),
        )


@dataclass(frozen=True)
class Event:
    seq: int
    ts: float
    task_id: int | None
    type: str
    data: JSON
    key: str | None = None

    def to_json(self) -> JSON:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "task_id": self.task_id,
            "type": self.type,
            "data": self.data,
            "key": self.key,
        }
