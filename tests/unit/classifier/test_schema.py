"""Reading an external classifier's answer: the JSON found in its output, lenient and strict checks."""

from __future__ import annotations

import pytest

from cockpit.core.classifier import (
    extract_json_object,
    parse_classification,
)
from tests.unit.classifier.cases import PEERS

# --------------------------------------------------------------------------------------------------------
# Parsing an external answer
# --------------------------------------------------------------------------------------------------------


def test_extract_json_handles_prose_fences_and_braces_in_strings() -> None:
    text = 'Sure {not json}.\n```json\n{"scope": "small", "x": "a } b { \\" c"}\n```\nbye'
    assert extract_json_object(text) == {"scope": "small", "x": 'a } b { " c'}
    assert extract_json_object('{"a": {"b": 1}} then {"scope": "large"}') == {"scope": "large"}
    assert extract_json_object('{"a": {"b": 1}}') == {"a": {"b": 1}}
    with pytest.raises(ValueError, match="no JSON object"):
        extract_json_object("nothing here")
    with pytest.raises(ValueError, match="invalid JSON"):
        extract_json_object("{scope: small}")


def test_parse_is_lenient_where_nothing_depends_on_it() -> None:
    c = parse_classification(
        {
            "scope": "LARGE",
            "reason": "two repos",
            "plan": [
                {"verb": "Add", "description": "add x"},
                {"verb": "delegate", "description": "use x", "peer": "Frontend", "depends_on": ["1"]},
            ],
        },
        PEERS,
        description="add x and use it in frontend",
    )
    assert c.scope == "large"
    assert c.title == "add x and use it in frontend"
    assert [(s.n, s.verb, s.peer, s.depends_on) for s in c.plan] == [
        (1, "add", None, []),
        (2, "delegate", "frontend", [1]),
    ]
    rejected = parse_classification(
        {"scope": "reject", "reason": "no", "plan": [{"verb": "add", "description": "x"}]}, PEERS
    )
    assert rejected.plan == []


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ([], "not a JSON object"),
        ({"reason": "x"}, 'no "scope"'),
        ({"scope": "medium", "plan": []}, "scope \"medium\" is not one of"),
        ({"scope": "small", "plan": [{"verb": "deploy", "description": "x"}]}, 'unknown verb "deploy"'),
        ({"scope": "small", "plan": [{"verb": "add", "description": ""}]}, "no description"),
        ({"scope": "large", "plan": [{"verb": "delegate", "description": "x", "peer": "mobile"}]},
         'delegates to "mobile", which is not a peer repo (frontend, docs)'),
        ({"scope": "large", "plan": [{"verb": "delegate", "description": "x"}]}, "names no peer"),
        ({"scope": "large", "plan": [{"verb": "add", "description": "x", "peer": "frontend"}]},
         "only delegate steps go to a peer"),
        ({"scope": "large", "plan": [{"verb": "add", "description": "x", "depends_on": [2]},
                                     {"verb": "test", "description": "y"}]}, "not an earlier step"),
        ({"scope": "large", "plan": [{"n": 1, "verb": "add", "description": "x"},
                                     {"n": 1, "verb": "test", "description": "y"}]}, "numbered twice"),
        ({"scope": "small", "plan": [{"verb": "delegate", "description": "x", "peer": "docs"}]},
         "cross-repo work is large"),
        ({"scope": "small", "plan": []}, "no steps"),
        ({"scope": "ambiguous", "plan": []}, "no questions"),
        ({"scope": "small", "plan": "do it"}, "must be a list"),
        ({"scope": "small", "plan": [{"n": True, "verb": "add", "description": "x"}]}, "must be a number"),
    ],
)
def test_parse_is_strict_where_it_matters(obj: object, problem: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        parse_classification(obj, PEERS)
    assert problem in str(info.value)
