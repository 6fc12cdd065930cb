"""The built-in heuristic (`classify_heuristic`): deterministic, offline, no model. The text it reads is
the description plus any answers from a clarification round (one per line), so an answered ambiguous task
is simply classified again. The text is folded first (`normalise_text`: NFKC, no invisible characters,
look-alike letters as ASCII), and every rule is linear in its length. Rules, first match wins:

========= =============================================================== ================================
scope     when                                                            plan
========= =============================================================== ================================
reject    the text is empty; or it asks for something destructive or out  none
          of bounds: ``rm -rf``, deleting the repository / codebase / git
          history / main branch, force-pushing, ``reset --hard``, dropping
          a database, leaking / publishing / committing secrets,
          credentials or keys, bypassing the gates or the human approval,
          wiping a disk
ambiguous no clause names a concrete object: every word is filler, a      none; 1-3 concrete clarifying
          vague verb (improve, fix, clean up, make, optimise ...) or a      questions (what to change,
          vague noun (things, stuff, code, quality, bugs ...) - e.g.        what "improve" should mean,
          "improve things", "make it better", "fix stuff", "clean up";      which peer repo / how to check)
          or the text is at most three words with no action verb and no
          problem word ("README")
large     it names a peer repo: a whole-word, case-insensitive match of a   local work steps (one per
          peer's name ("frontend", "the frontend client", "docs repo"),     clause), a ``test`` step, one
          not part of another word, path or file name                       ``delegate`` step per peer
                                                                            (the clauses about that peer),
                                                                            a final ``verify`` step
large     it says refactor / migrate / redesign / rewrite / overhaul /      local work steps, ``test``,
          re-architect / across / throughout / entire / whole codebase /    ``verify``
          all (or every) endpoints, files, modules, pages, services ...
large     three or more separate change clauses, or two that touch          local work steps, ``test``,
          different areas (api, ui, data, docs, build, auth, config)        ``verify``
large     never small (`never_small`): a destructive verb (wipe, erase,   local work steps, ``test``,
          overwrite ...), a security-sensitive area (auth, login,           ``verify``
          password, permission, token ...), a shell command (run ...,
          sudo, curl, git push ...)
small     anything else: one concrete change ("fix typo in README",         one step per clause: usually
          "rename foo to bar in utils.py", "bump version"), possibly with   one, two with "and add a test"
          a test clause
========= =============================================================== ================================

Clauses: the text is split into sentences (newlines, ``.``/``?``/``!`` followed by space) and each
sentence at ``,`` ``;`` "and" "then" "plus"; a piece of at most three words with no leading verb is glued
back to the piece before it ("fix typo in README and CHANGELOG" is one clause). Clauses with nothing
concrete in them ("improve things" before an answer) are context, not steps.

Step verbs come from the clause's leading verb: fix/update/change/rename/bump/refactor/... -> ``modify``;
add/create/write/implement/document/... -> ``add`` (``test`` when its object is tests); remove/delete/
drop/... -> ``delete``; test -> ``test``; verify/check/confirm -> ``verify``. A clause without a leading
verb that names a problem ("typo in README") becomes "Fix ..." (``modify``); a short one takes the
previous clause's verb ("improve things" answered with "README" -> "Improve README") or, with none before
it, becomes the context of the next step ("README" answered with "fix the install link" -> "Fix the
install link (README)"); anything else is ``modify``.

Large plans are numbered in this order: local work steps; one ``test`` step depending on them (the text's
own test clause when there is one); one ``delegate`` step per peer, depending on the local work steps
(the contract exists before a peer builds on it); and a ``verify`` step depending on every step before it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cockpit.core.classifier.clauses import (
    Clause,
    analyse,
    capitalize,
    lemma_verb,
    normalise_text,
    peers_in,
    words_of,
)
from cockpit.core.classifier.danger import never_small, reject_reason
from cockpit.core.classifier.titles import MAX_STEPS, cap_step_text, make_title
from cockpit.core.classifier.vocabulary import (
    LARGE_PATTERNS,
    QUALITY_WORDS,
    STOP_WORDS,
    VAGUE_VERBS,
    VAGUE_WORDS,
    WORD_VERBS,
)
from cockpit.core.models import Classification, PlanStep


def _vague_verb(clauses: Sequence[Clause]) -> str | None:
    """The vague word to ask about: "improve", "clean up", or "better" in "make it better"."""
    for c in clauses:
        for i, w in enumerate(c.words):
            if lemma_verb(w) in VAGUE_VERBS and w not in ("make", "makes", "do", "does"):
                return f"{w} up" if c.words[i + 1 : i + 2] == ["up"] else w
    vague = [w for c in clauses for w in c.words if w in VAGUE_WORDS and w not in STOP_WORDS]
    qualities = [w for w in vague if w in QUALITY_WORDS]
    return qualities[0] if qualities else vague[0] if vague else None


def _questions(clauses: Sequence[Clause], peers: Sequence[str], objects: Sequence[str]) -> list[str]:
    questions: list[str] = []
    if objects:
        what = ", ".join(objects)
        questions.append(f"What should change in {what}: what is wrong today, and what should it do instead?")
    else:
        questions.append("Which part should change: name the file, module, command, endpoint or screen.")
        vague = _vague_verb(clauses)
        if vague:
            questions.append(f'What does "{vague}" mean here: what should be different when it is done?')
        else:
            questions.append("What exactly should be different when this is done?")
    if peers:
        questions.append(f"Does this need changes in a peer repo ({', '.join(peers)}), or only in this one?")
    else:
        questions.append("How will you check the result: a test to add, a command to run, or what to see?")
    return questions[:3]


def _ambiguous(
    clauses: Sequence[Clause], text: str, peers: Sequence[str], answers: Sequence[str], title: str
) -> Classification | None:
    concrete = [c for c in clauses if c.concrete]
    if not concrete:
        after = f" after {len(answers)} answer{'s' if len(answers) != 1 else ''}" if answers else ""
        return Classification(
            scope="ambiguous",
            reason=f"too vague to plan{after}: it names no file, module, command or behaviour to change.",
            title=title,
            plan=[],
            questions=_questions(clauses, peers, []),
        )
    words = [w for w in words_of(text) if w not in STOP_WORDS]
    has_verb = any(lemma_verb(w) for w in words_of(text))
    has_problem = any(c.problem for c in clauses)
    if not has_verb and not has_problem and len(words) <= 3:
        objects = [" ".join(c.text.split()).rstrip(" .,;:!?") for c in concrete]
        return Classification(
            scope="ambiguous",
            reason=f"says what to look at ({', '.join(objects)}) but not what to do with it.",
            title=title,
            plan=[],
            questions=_questions(clauses, peers, objects),
        )
    return None


def _large_keyword(text: str) -> str | None:
    for pattern, name in LARGE_PATTERNS:
        if re.search(pattern, text, re.I):
            return name
    return None


def _step_text(c: Clause) -> tuple[str, str]:
    """The step verb and description for a clause."""
    context = f" ({'; '.join(c.context)})" if c.context else ""
    if c.verb is not None:
        verb, text = c.verb, c.text
    elif c.test_noun:
        verb, text = "test", f"add {c.text}"
    elif c.problem:
        verb, text = "modify", f"fix: {c.text}" if c.statement else f"fix {c.text}"
    elif c.inherited:
        verb, text = WORD_VERBS[c.inherited], f"{c.inherited} {c.text}"
    else:
        verb, text = "modify", c.text
    return verb, cap_step_text(capitalize(text) + context)


def _work_clauses(clauses: Sequence[Clause]) -> list[Clause]:
    """The clauses that become steps, in order.

    Concrete clauses are steps, and so are specific verbs with an implied object ("add tests"). A short
    verbless clause borrows the verb before it ("improve things" + "README" -> "Improve README"); with no
    verb before it, it is the context of the next step ("README" + "fix the install link" -> "Fix the
    install link (README)"), and that step goes to any peer the context names.
    """
    out: list[Clause] = []
    pending: list[Clause] = []
    previous: str | None = None
    for c in clauses:
        verbless = c.verb_word is None and not c.problem and not c.test_noun
        if verbless and c.short and not c.statement and c.concrete:
            if previous is not None:
                c.inherited = previous
            else:
                pending.append(c)
                continue
        if c.verb_word is not None:
            previous = c.verb_word
        if c.concrete or (c.verb_word is not None and c.verb_word not in VAGUE_VERBS):
            if pending:
                c.context = [" ".join(p.text.split()).rstrip(" .,;:") for p in pending]
                c.peers = list(dict.fromkeys([*c.peers, *(peer for p in pending for peer in p.peers)]))
                c.areas = sorted({*c.areas, *(a for p in pending for a in p.areas)})
                pending = []
            out.append(c)
    return pending + out


def _join(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def classify_heuristic(
    description: str, peers: Sequence[str], *, answers: Sequence[str] = ()
) -> Classification:
    """Classify and plan `description` with the built-in rules (see the module docstring). Deterministic."""
    title = make_title(description)
    text = normalise_text("\n".join([description, *[a for a in answers if a.strip()]]))
    peer_list = [p for p in dict.fromkeys(p.strip() for p in peers) if p]

    rejected = reject_reason(text)
    if rejected is not None:
        return Classification(scope="reject", reason=rejected, title=title, plan=[])

    clauses = analyse(text, peer_list)
    vague = _ambiguous(clauses, text, peer_list, answers, title)
    if vague is not None:
        return vague

    work = _work_clauses(clauses)
    local = [c for c in work if not c.peers and not c.is_test]
    tests = [c for c in work if not c.peers and c.is_test]
    named_peers = peers_in(text, peer_list)
    remote: dict[str, list[Clause]] = {p: [c for c in work if p in c.peers] for p in named_peers}
    remote = {p: cs for p, cs in remote.items() if cs}

    if remote:
        names = list(remote)
        reason = (
            f"names peer repo {names[0]}: cross-repo work needs a delegate step."
            if len(names) == 1
            else f"names peer repos {_join(names)}: cross-repo work needs a delegate step for each."
        )
        return Classification("large", reason, title, _large_plan(local, tests, remote))

    keyword = _large_keyword(text)
    if keyword is not None:
        return Classification(
            "large", f'says "{keyword}": wide changes need a reviewed multi-step plan.', title,
            _large_plan(local, tests, {}),
        )

    careful = never_small(text, clauses)
    if careful is not None:
        return Classification("large", careful, title, _large_plan(local, tests, {}))

    areas = sorted({a for c in local for a in c.areas})
    many = len(local) >= 3 or len(local) + len(tests) > 4
    if many or (len(local) == 2 and len(areas) >= 2 and _distinct_areas(local)):
        where = f" across {_join(areas)}" if len(areas) >= 2 else ""
        return Classification(
            "large", f"{len(local)} separate changes{where}: several steps need a reviewed plan.", title,
            _large_plan(local, tests, {}),
        )

    steps: list[PlanStep] = []
    for c in [*local, *tests]:
        verb, desc = _step_text(c)
        deps = [s.n for s in steps] if verb in ("test", "verify") else []
        steps.append(PlanStep(n=len(steps) + 1, verb=verb, description=desc, depends_on=deps))
    if len(steps) == 1:
        reason = f"a single concrete change in this repo: one {steps[0].verb} step."
    else:
        reason = f"one concrete change in this repo with {len(steps)} steps, no peer repo involved."
    return Classification("small", reason, title, steps)


def _distinct_areas(local: Sequence[Clause]) -> bool:
    """Two clauses touch different areas when neither's areas cover the other's."""
    a, b = set(local[0].areas), set(local[1].areas)
    return bool(a) and bool(b) and not (a & b)


def _large_plan(
    local: Sequence[Clause], tests: Sequence[Clause], remote: dict[str, list[Clause]]
) -> list[PlanStep]:
    steps: list[PlanStep] = []
    room = MAX_STEPS - 2 - len(remote)  # the test and verify steps, one delegate step per peer
    for c in local[: room - 1] if len(local) > room else local:
        verb, desc = _step_text(c)
        steps.append(PlanStep(n=len(steps) + 1, verb=verb, description=desc))
    if len(local) > room:
        rest = len(local) - len(steps)
        steps.append(PlanStep(n=len(steps) + 1, verb="modify",
                              description=f"The {rest} further changes the description lists"))
    work_ns = [s.n for s in steps]
    if local or tests:
        desc = (
            cap_step_text("; ".join(_step_text(c)[1] for c in tests[:20]))
            if tests
            else "Add or update tests covering the changes above, and run them"
        )
        steps.append(PlanStep(n=len(steps) + 1, verb="test", description=desc, depends_on=list(work_ns)))
    for peer, clauses in remote.items():
        desc = cap_step_text("; ".join(dict.fromkeys(_step_text(c)[1] for c in clauses[:20])))
        steps.append(PlanStep(n=len(steps) + 1, verb="delegate", description=desc, peer=peer,
                              depends_on=list(work_ns)))
    if remote:
        where = _join(list(remote))
        verify = f"Verify the whole change: the tests pass here and the delegated work in {where} is done"
    else:
        verify = "Verify the whole change: run the tests and check the result against the description"
    steps.append(PlanStep(n=len(steps) + 1, verb="verify", description=verify,
                          depends_on=[s.n for s in steps]))
    return steps
