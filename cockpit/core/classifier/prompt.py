"""The prompt an external classifier command is given: the task, the peers, the JSON expected back."""

from __future__ import annotations

from collections.abc import Sequence

_SCHEMA = """{
  "scope": "small" | "large" | "ambiguous" | "reject",
  "reason": "one sentence a person can read",
  "title": "a short imperative title, at most 72 characters",
  "plan": [
    {"n": 1, "verb": "add" | "modify" | "delete" | "test" | "delegate" | "verify",
     "description": "what this step does, concretely",
     "peer": null,
     "depends_on": []}
  ],
  "questions": []
}"""


def build_prompt(
    description: str, peers: Sequence[str], *, repo_name: str = "", answers: Sequence[str] = ()
) -> str:
    """The prompt for an LLM CLI: the task, the peer repos, the JSON expected back and the scope rules."""
    repo = f'the git repository "{repo_name}"' if repo_name else "this git repository"
    peer_lines = "\n".join(p for p in peers if p.strip()) or "(none)"
    answer_block = ""
    if answers:
        listed = "\n".join(f"- {a}" for a in answers)
        answer_block = (
            "\n<answers>\nThe person answered earlier clarifying questions; these are part of the task:\n"
            f"{listed}\n</answers>\n"
        )
    return f"""You classify and plan one coding task for {repo}, for agent-cockpit.
A person reviews your plan before an AI coding agent carries it out in a git worktree.

<task>
{description.strip()}
</task>
{answer_block}
<peer_repos>
{peer_lines}
</peer_repos>

Scopes:
- "small": one concrete change inside this repository (one step, two with a test), no peer repo involved.
- "large": several steps or areas, refactors, migrations, rewrites, or ANY work in a peer repo. Work in a
  peer repo is a "delegate" step whose "peer" is exactly one name from <peer_repos>; its description is
  what that repo must do. Order: local work steps, a "test" step, delegate steps, then a final "verify" step
  that depends on the others.
- "ambiguous": too vague to plan (no concrete file, module, command or behaviour). Put 1 to 3 concrete
  clarifying questions in "questions" and leave "plan" empty.
- "reject": empty, destructive or out of scope (deleting the repository, rm -rf, force-pushing, dropping a
  database, leaking secrets, bypassing review). Leave "plan" empty and say why in "reason".

Rules for "plan": number steps 1, 2, 3 in order; "verb" is one of add, modify, delete, test, delegate,
verify; "depends_on" lists only numbers of earlier steps; only delegate steps have a "peer" (null otherwise).

Reply with exactly one JSON object of this shape and nothing else:
{_SCHEMA}
"""
