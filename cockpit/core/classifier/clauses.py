"""The heuristic's reading of a text: split into clauses, each with its verb, objects, peers and areas."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cockpit.core import textfold
from cockpit.core.classifier.vocabulary import (
    AREAS,
    BLANKS_RE,
    CLAUSE_SEP_RE,
    EXT_AREAS,
    LEAD_FILLERS,
    PROBLEM_WORDS,
    RUN_RE,
    RUN_TAIL_RE,
    SENTENCE_RE,
    STATEMENT_WORDS,
    STOP_WORDS,
    TEST_WORDS,
    VAGUE_VERBS,
    VAGUE_WORDS,
    WORD_VERBS,
)

MAX_CLAUSES = 200  # clauses read for a plan: past a few the task is large anyway


def words_of(text: str) -> list[str]:
    words: list[str] = []
    for run in RUN_RE.findall(text):
        tail = RUN_TAIL_RE.search(run)
        head = run[: tail.start()] if tail else run
        if head:
            words.append(head.lower())
        # A bare "/" is a word of its own ("/" as a route), also after the end of a run.
        words.extend("/" for ch in (tail.group() if tail else "") if ch == "/")
    return words


def normalise_text(text: str) -> str:
    """The text the heuristic reads: look-alike letters folded to ASCII (`textfold`), blanks collapsed."""
    return BLANKS_RE.sub(" ", textfold.fold(text))


def lemma_verb(word: str) -> str | None:
    """The step verb for `word` if it is (an inflection of) a known action verb."""
    for c in inflection_bases(word):
        if c in WORD_VERBS:
            return c
    return None


def inflection_bases(word: str) -> list[str]:
    """`word` and the stems it may be an inflection of ("wiped" -> wiped, wipe, wip)."""
    w = word.lower()
    candidates = [w]
    if w.endswith("ies"):
        candidates.append(w[:-3] + "y")
    if w.endswith("es"):
        candidates.append(w[:-2])
    if w.endswith("s"):
        candidates.append(w[:-1])
    if w.endswith("ed"):
        candidates += [w[:-2], w[:-1]]
        if len(w) > 4 and w[-3] == w[-4]:
            candidates.append(w[:-3])
    if w.endswith("ing"):
        candidates += [w[:-3], w[:-3] + "e"]
        if len(w) > 5 and w[-4] == w[-5]:
            candidates.append(w[:-4])
    return candidates


@functools.lru_cache(maxsize=256)
def _peer_pattern(peer: str) -> re.Pattern[str]:
    # A whole word: not glued to letters, digits, "_" or "-", and not a path or file name ("docs/x.md",
    # "frontend.py"); "-" and "_" in the name also match a space ("web-app" ~ "web app").
    parts = [re.escape(p) for p in re.split(r"[-_\s]+", peer.strip()) if p]
    body = r"[-_\s]+".join(parts) if parts else re.escape(peer)
    return re.compile(rf"(?<![\w./-]){body}(?![\w-]|[./]\w)", re.I)


def peers_in(text: str, peers: Sequence[str]) -> list[str]:
    """Peers named in `text`, in order of first mention (ties: order of `peers`)."""
    found: list[tuple[int, int, str]] = []
    seen: set[str] = set()
    for order, peer in enumerate(peers):
        if not peer.strip() or peer.lower() in seen:
            continue
        seen.add(peer.lower())
        m = _peer_pattern(peer).search(text)
        if m:
            found.append((m.start(), order, peer))
    return [p for _, _, p in sorted(found)]


@dataclass
class Clause:
    text: str  # as written, leading filler dropped
    words: list[str]  # lowercased
    verb_word: str | None  # the leading verb's lemma ("fix", "add" ...)
    verb: str | None  # the step verb it maps to
    concrete: list[str]  # words naming something concrete (files, modules, peers ...)
    peers: list[str]
    areas: list[str]
    is_test: bool = False
    test_noun: bool = False  # no verb, but it is about tests: "a test that renders it"
    problem: bool = False  # names a problem: "typo in README", "the page is slow"
    statement: bool = False  # a sentence about the state of things ("the page is slow"), not a noun phrase
    short: bool = False  # at most three content words
    inherited: str | None = None  # verb borrowed from the clause before
    context: list[str] = field(default_factory=list)  # verbless clauses before it that it is about


def leading_verb(words: list[str]) -> tuple[str | None, int]:
    for i, w in enumerate(words):
        if w in LEAD_FILLERS:
            continue
        lemma = lemma_verb(w)
        return lemma, i
    return None, len(words)


def _strip_lead(text: str) -> str:
    """Drop leading filler words ("please", "we need to", "also") from a clause, keep its case."""
    tokens = text.split()
    i = 0
    while i < len(tokens) - 1 and tokens[i].lower().strip(",:") in LEAD_FILLERS:
        i += 1
    return " ".join(tokens[i:])


def _areas_of(words: list[str]) -> list[str]:
    areas: set[str] = set()
    for w in dict.fromkeys(words):
        for name, vocab in AREAS.items():
            if w in vocab:
                areas.add(name)
        if w.startswith("/") and len(w) > 1:
            areas.add("api")
        for ext, name in EXT_AREAS.items():
            if w.endswith(ext) and len(w) > len(ext):
                areas.add(name)
    return sorted(areas)


def analyse(text: str, peers: Sequence[str]) -> list[Clause]:
    clauses: list[Clause] = []
    sentences = [s.strip() for s in SENTENCE_RE.split(text) if s and s.strip()]
    for sentence in sentences:
        if len(clauses) >= MAX_CLAUSES:
            break
        parts = CLAUSE_SEP_RE.split(sentence)
        pieces: list[list[str]] = []
        for idx in range(0, len(parts), 2):
            piece = parts[idx].strip().rstrip(".!?").strip()
            sep = parts[idx - 1] if idx > 0 else ""
            if not piece:
                continue
            words = words_of(piece)
            lead, _ = leading_verb(words)
            content = [w for w in words if w not in LEAD_FILLERS]
            # A short verbless piece belongs to the one before it: "fix typo in README and CHANGELOG".
            if pieces and lead is None and len(content) <= 3:
                glue = sep.strip()
                pieces[-1].append(f"{glue} {piece}" if glue in {",", ";"} else f" {glue} {piece}")
                continue
            pieces.append([piece])
        for piece in ("".join(p) for p in pieces):
            words = words_of(piece)
            lead, at = leading_verb(words)
            verb = WORD_VERBS[lead] if lead else None
            if verb == "add" and any(w in TEST_WORDS for w in words[at + 1 : at + 4]):
                verb = "test"  # "add a test for ...", "write tests"
            content = [w for w in words if w not in STOP_WORDS and w not in LEAD_FILLERS]
            test_noun = lead is None and any(w in TEST_WORDS for w in content[:2])
            peer_hits = peers_in(piece, peers)
            peer_words = {w for p in peer_hits for w in words_of(p)}
            # Verbs in object position are things ("fix the build", "clear the cache"), unless vague.
            concrete = [
                w
                for i, w in enumerate(words)
                if (lead is None or i != at)
                and w not in STOP_WORDS
                and w not in VAGUE_WORDS
                and w not in LEAD_FILLERS
                and lemma_verb(w) not in VAGUE_VERBS
                and w not in TEST_WORDS
                and w not in peer_words
                and not w.isdigit()
            ]
            concrete += [p.lower() for p in peer_hits]
            clauses.append(
                Clause(
                    text=_strip_lead(piece),
                    words=words,
                    verb_word=lead,
                    verb=verb,
                    concrete=concrete,
                    peers=peer_hits,
                    areas=_areas_of(words),
                    is_test=verb == "test" or test_noun,
                    test_noun=test_noun,
                    problem=any(w in PROBLEM_WORDS for w in words),
                    statement=any(w in STATEMENT_WORDS for w in words)
                    and not (content and content[0] in PROBLEM_WORDS - STATEMENT_WORDS),
                    short=len(content) <= 3,
                )
            )
    return clauses


def capitalize(text: str) -> str:
    text = " ".join(text.split()).rstrip(" .,;:")
    first = text.split(" ", 1)[0]
    if any(mark in first for mark in "/._`") or first[:1] in "-$":
        return text  # a path or an identifier keeps its case: `app/reports.py`, not `App/reports.py`
    return text[:1].upper() + text[1:] if text else text
