"""Reading a classifier command's answer: the first JSON object it printed, checked against the schema."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

from cockpit.core.classifier.titles import MAX_STEPS, cap_step_text, make_title
from cockpit.core.models import SCOPES, VERBS, Classification, PlanStep


class Unusable(Exception):
    """Why the external classifier's answer is unusable; the message becomes `fallback_reason`."""


def _balanced_end(text: str, start: int) -> int | None:
    """Index of the `}` closing the `{` at `start`, honouring JSON strings and escapes; None if unclosed."""
    depth = 0
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def extract_json(text: str, *, unwrap: bool = True) -> dict[str, Any]:
    """The first balanced `{...}` in `text` that parses as a JSON object (preferring one with a "scope")."""
    first_dict: dict[str, Any] | None = None
    first_error: str | None = None
    pos = 0
    while True:
        start = text.find("{", pos)
        if start < 0:
            break
        end = _balanced_end(text, start)
        if end is None:
            if first_error is None:
                first_error = f"unbalanced braces from character {start}"
            pos = start + 1
            continue
        try:
            obj = json.loads(text[start : end + 1])
        except json.JSONDecodeError as exc:
            if first_error is None:
                first_error = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            pos = start + 1
            continue
        if isinstance(obj, dict):
            if "scope" in obj:
                return obj
            inner = obj.get("result")
            if unwrap and isinstance(inner, str) and "{" in inner:
                # `claude -p --output-format json` wraps the model's text: {"type": "result", "result": ...}.
                with contextlib.suppress(Unusable):
                    return extract_json(inner, unwrap=False)
            if first_dict is None:
                first_dict = obj
        pos = end + 1
    if first_dict is not None:
        return first_dict
    if first_error is not None:
        raise Unusable(f"classifier command printed invalid JSON ({first_error})")
    raise Unusable("classifier command printed no JSON object")


def extract_json_object(text: str) -> dict[str, Any]:
    """The first balanced JSON object in `text` (see `classify`); ValueError saying why when there is none."""
    try:
        return extract_json(text)
    except Unusable as exc:
        raise ValueError(str(exc)) from None


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise Unusable(f"{what} must be a number, got {json.dumps(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise Unusable(f"{what} must be a number, got {json.dumps(value)}")


def _as_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise Unusable(f"{what} must be a string, got {json.dumps(value)[:40]}")
    return " ".join(value.split())


def parse_classification(
    obj: Any, peers: Sequence[str], *, description: str = "", classifier: str = "command"
) -> Classification:
    """Validate a classifier's JSON object (see the module docstring); raise ValueError naming the problem."""
    try:
        return validate_answer(obj, peers, description=description, classifier=classifier)
    except Unusable as exc:
        raise ValueError(str(exc)) from None


def validate_answer(obj: Any, peers: Sequence[str], *, description: str, classifier: str) -> Classification:
    if not isinstance(obj, dict):
        raise Unusable("the answer is not a JSON object")
    raw_scope = obj.get("scope")
    if raw_scope is None:
        raise Unusable('the answer has no "scope"')
    scope = _as_text(raw_scope, '"scope"').lower()
    if scope not in SCOPES:
        raise Unusable(f"scope {json.dumps(raw_scope)} is not one of {', '.join(SCOPES)}")
    reason = cap_step_text(_as_text(obj.get("reason") or "", '"reason"')) or "the classifier gave no reason."
    raw_title = obj.get("title")
    title = make_title(_as_text(raw_title, '"title"')) if raw_title else make_title(description)

    raw_questions = obj.get("questions") or []
    if not isinstance(raw_questions, list):
        raise Unusable('"questions" must be a list of strings')
    questions = [cap_step_text(q) for q in (_as_text(q, "each question") for q in raw_questions[:10]) if q]

    raw_plan = obj.get("plan") or []
    if not isinstance(raw_plan, list):
        raise Unusable('"plan" must be a list of steps')
    if len(raw_plan) > MAX_STEPS:
        raise Unusable(f"the plan has {len(raw_plan)} steps (at most {MAX_STEPS})")
    canonical = {p.strip().lower(): p.strip() for p in peers if p.strip()}
    steps: list[PlanStep] = []
    seen: set[int] = set()
    for i, raw in enumerate(raw_plan, start=1):
        if not isinstance(raw, dict):
            raise Unusable(f"plan step {i} is not an object")
        n = _as_int(raw["n"], f'step {i} "n"') if raw.get("n") is not None else i
        label = f"step {n}"
        if n < 1:
            raise Unusable(f"{label}: step numbers start at 1")
        if n in seen:
            raise Unusable(f"{label} is numbered twice")
        verb = _as_text(raw.get("verb", ""), f'{label} "verb"').lower()
        if verb not in VERBS:
            raise Unusable(
                f"{label} has unknown verb {json.dumps(raw.get('verb'))} (expected one of {', '.join(VERBS)})"
            )
        desc = cap_step_text(_as_text(raw.get("description", ""), f'{label} "description"'))
        if not desc:
            raise Unusable(f"{label} has no description")
        raw_peer = raw.get("peer")
        peer: str | None = None
        if verb == "delegate":
            if not raw_peer:
                raise Unusable(f"{label} delegates but names no peer")
            name = _as_text(raw_peer, f'{label} "peer"')
            if name.lower() not in canonical:
                known = ", ".join(canonical.values()) or "none"
                raise Unusable(f"{label} delegates to {json.dumps(name)}, which is not a peer repo ({known})")
            peer = canonical[name.lower()]
        elif raw_peer:
            raise Unusable(f"{label} names peer {json.dumps(raw_peer)} but only delegate steps go to a peer")
        raw_deps = raw.get("depends_on") or []
        if not isinstance(raw_deps, list):
            raise Unusable(f'{label} "depends_on" must be a list of step numbers')
        deps: list[int] = []
        for d in raw_deps:
            dep = _as_int(d, f"{label} depends_on entry")
            if dep not in seen:
                raise Unusable(f"{label} depends on step {dep}, which is not an earlier step")
            if dep not in deps:
                deps.append(dep)
        seen.add(n)
        steps.append(PlanStep(n=n, verb=verb, description=desc, peer=peer, depends_on=deps))

    if scope == "reject":
        steps = []
    elif scope == "ambiguous":
        if not questions:
            raise Unusable("scope is ambiguous but there are no questions to ask")
    else:
        if not steps:
            raise Unusable(f"scope is {scope} but the plan has no steps")
        if scope == "small":
            for s in steps:
                if s.verb == "delegate":
                    raise Unusable(
                        f"scope is small but step {s.n} delegates to {s.peer} (cross-repo work is large)"
                    )
    return Classification(
        scope=scope, reason=reason, title=title, plan=steps, questions=questions, classifier=classifier
    )
