"""Classify a task (small / large / ambiguous / reject) and plan it.

Two classifiers share one result type, `Classification`:

* **An external command** (`[classifier] command` in `.cockpit/config.toml`, e.g. ``claude -p``). The command
  string is split with `shlex.split` and run without a shell, in its own session (process group). The prompt
  from `build_prompt` is **always written to its stdin**; in addition, every argument that contains the
  placeholder ``{prompt}`` gets the prompt substituted there (``claude -p {prompt}`` passes it as an argument
  too). Whatever the command prints on stdout is searched for the first balanced JSON object that parses
  (prose before and after it, a ```` ```json ```` fence and braces inside strings are fine; a wrapper of the
  form ``{"result": "<text>"}`` such as ``claude -p --output-format json`` prints is unwrapped once).
  The object must look like::

      {"scope": "small|large|ambiguous|reject", "reason": "...", "title": "... (optional)",
       "plan": [{"n": 1, "verb": "add", "description": "...", "peer": null, "depends_on": []}],
       "questions": ["..."]}

  Lenient where nothing depends on it: a missing ``n`` is the step's position, missing ``depends_on`` /
  ``plan`` / ``questions`` are empty, a missing title comes from the description, verbs, scopes and peer
  names are case-insensitive, a rejected task's plan is dropped. Strict where the rest of the system
  depends on it: the scope must be one of `SCOPES`, every verb one of `VERBS`, every step needs a
  description, step numbers are unique, ``depends_on`` names only earlier steps, a ``delegate`` step names a
  peer of the workspace (and only delegate steps name one), a small task may not delegate, a small or large
  task has at least one step and an ambiguous one at least one question. A valid answer is returned with
  ``classifier="command:<argv[0]'s base name>"`` (``command:claude``).

  On **any** failure (bad command syntax, executable missing, non-zero exit, timeout, output over 1 MiB, no
  JSON, invalid JSON, schema violation) the result is the heuristic's, with ``classifier="heuristic"`` and
  ``fallback_reason`` saying exactly what went wrong. On timeout (or when the caller is cancelled) the whole
  process group is killed with SIGKILL and the command is reaped, so nothing is left behind. A command that
  answers and exits but leaves a child holding its stdout is not a hang: after a short grace the rest of its
  group is killed and what it printed is the answer.

* **The built-in heuristic** (`classify_heuristic`): deterministic, offline, no model. The text it reads is
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
  large     never small (`_never_small`): a destructive verb (wipe, erase,   local work steps, ``test``,
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

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import shlex
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cockpit.core import textfold
from cockpit.core.models import SCOPES, VERBS, Classification, PlanStep

__all__ = [
    "MAX_OUTPUT_BYTES",
    "PROMPT_PLACEHOLDER",
    "build_prompt",
    "classify",
    "classify_heuristic",
    "extract_json_object",
    "make_title",
    "normalise_text",
    "parse_classification",
]

log = logging.getLogger(__name__)

PROMPT_PLACEHOLDER = "{prompt}"
MAX_OUTPUT_BYTES = 1024 * 1024
MAX_STEPS = 50
MAX_STEP_TEXT = 500  # characters of one step's description; the task's own text says the rest
MAX_CLAUSES = 200  # clauses read for a plan: past a few the task is large anyway
INLINE_CLASSIFY_CHARS = 2048  # longer texts are classified in a thread, off the caller's event loop
TITLE_MAX = 72
_STDERR_TAIL = 8192
_STRAGGLER_GRACE_S = 0.5


# --------------------------------------------------------------------------------------------------------
# Titles
# --------------------------------------------------------------------------------------------------------


def make_title(description: str) -> str:
    """The first non-empty line, whitespace collapsed, cut on a word boundary to at most 72 characters."""
    line = next((ln for ln in description.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    if not line:
        return "(untitled)"
    if len(line) <= TITLE_MAX:
        return line
    cut = line[: TITLE_MAX - 1]
    space = cut.rfind(" ")
    if space >= TITLE_MAX // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


# --------------------------------------------------------------------------------------------------------
# The heuristic: vocabulary
# --------------------------------------------------------------------------------------------------------

_VERB_GROUPS: dict[str, tuple[str, ...]] = {
    "modify": (
        "fix", "update", "change", "rename", "bump", "modify", "improve", "refactor", "adjust", "tweak",
        "correct", "edit", "replace", "move", "convert", "upgrade", "downgrade", "migrate", "rework",
        "rewrite", "optimize", "optimise", "make", "handle", "clean", "tidy", "polish", "enable", "disable",
        "switch", "use", "allow", "ensure", "support", "redesign", "restructure", "simplify", "extract",
        "split", "merge", "reorganize", "reorganise", "format", "reformat", "speed", "increase", "decrease",
        "reduce", "raise", "lower", "limit", "set", "configure", "translate", "localize", "localise", "pin",
        "unpin", "patch", "resolve", "address", "harden", "sanitize", "sanitise", "validate", "refresh",
        "sync", "align", "standardize", "normalize", "normalise", "deprecate", "enhance", "refine",
        "overhaul", "rearchitect", "re-architect", "port", "wire", "hook", "expand", "shorten", "cache",
        "retry", "log", "paginate", "sort", "escape", "guard", "lint", "show", "display", "print", "hide",
        "return", "emit", "accept", "warn", "raise", "call", "load", "save", "store", "parse", "render",
    ),
    "add": (
        "add", "create", "write", "implement", "introduce", "build", "generate", "expose", "scaffold",
        "document", "define", "provide", "include", "append", "insert", "install", "bootstrap", "new",
    ),
    "delete": (
        "remove", "delete", "drop", "strip", "purge", "eliminate", "uninstall", "prune", "erase", "unexport",
    ),
    "test": ("test", "retest", "cover"),
    "verify": ("verify", "check", "confirm", "audit"),
}
_VERBS: dict[str, str] = {word: verb for verb, words in _VERB_GROUPS.items() for word in words}

# Verbs that say nothing about *what* to do: a clause made of these and filler is context, not a step.
_VAGUE_VERBS = frozenset(
    {
        "fix", "update", "change", "improve", "make", "handle", "clean", "tidy", "polish", "tweak", "enhance",
        "refine", "optimize", "optimise", "refactor", "rework", "rewrite", "redesign", "overhaul", "modify",
        "adjust", "do", "work", "look", "sort", "speed", "simplify", "restructure", "reorganize",
        "reorganise", "harden",
    }
)

# Nouns and modifiers too general to be the object of a change.
_VAGUE_WORDS = frozenset(
    {
        "better", "best", "good", "great", "nice", "nicer", "cleaner", "faster", "slower", "simpler", "more",
        "less", "stuff", "things", "thing", "everything", "something", "anything", "code", "codebase",
        "project", "app", "application", "repo", "repository", "system", "quality", "performance", "speed",
        "ux", "ui/ux", "design", "bit", "bits", "lot", "lots", "misc", "miscellaneous", "various", "etc",
        "issue", "issues", "problem", "problems", "bug", "bugs", "error", "errors", "general", "generally",
        "overall", "whole", "entire", "cleanup", "clean-up", "improvement", "improvements", "fixes",
        "changes", "updates", "tweaks", "polish", "mess", "messy", "ugly", "slow", "broken", "wrong",
        "weird", "bad", "board", "way", "ways", "area", "areas", "part", "parts", "place", "places",
        "somewhere", "stuff.", "work", "working", "robust", "robustness", "maintainable", "readable",
        "readability", "maintainability", "reliability", "reliable", "usable", "usability", "experience",
        "sense", "sure", "okay", "ok", "fine", "properly", "correctly", "right", "better.", "nicely",
        "cleanly", "efficient", "efficiency", "modern", "up-to-date",
    }
)

_QUALITY_WORDS = frozenset(
    {"better", "best", "good", "great", "nice", "nicer", "cleaner", "faster", "simpler", "robust", "readable",
     "maintainable", "reliable", "usable", "efficient", "modern", "properly", "correctly", "nicely"}
)

_STOP_WORDS = frozenset(
    {
        "a", "an", "the", "this", "that", "these", "those", "it", "its", "it's", "they", "them", "their",
        "we", "us", "our", "i", "me", "my", "you", "your", "he", "she", "his", "her", "to", "of", "in", "on",
        "at", "by", "for", "with", "from", "into", "onto", "up", "down", "out", "off", "over", "under",
        "about", "and", "or", "but", "so", "as", "if", "then", "than", "too", "also", "very", "really",
        "quite", "just", "only", "please", "pls", "plz", "some", "any", "all", "each", "every", "few",
        "many", "much", "other", "another", "such", "same", "is", "are", "was", "were", "be", "been",
        "being", "am", "do", "does", "did", "doing", "done", "have", "has", "had", "having", "can", "could",
        "should", "would", "will", "shall", "may", "might", "must", "need", "needs", "needed", "want",
        "wants", "let", "let's", "lets", "get", "got", "go", "going", "try", "here", "there", "now", "again",
        "still", "yet", "already", "asap", "soon", "today", "yes", "no", "not", "nope", "yeah", "yep",
        "thanks", "thank", "one", "ones", "bit", "what", "which", "who", "how", "why", "when", "where",
        "whatever", "somehow", "maybe", "perhaps", "possibly", "like", "kind", "sort", "look", "around",
        "less", "well", "way", "both", "either", "neither", "nothing", "none", "ever", "never", "always",
        "sometimes", "often", "while", "since", "because", "via", "per", "new", "old", "own",
    }
)

# A clause with no verb that names one of these is a fix ("typo in README" -> "Fix typo in README").
_PROBLEM_WORDS = frozenset(
    {
        "typo", "typos", "bug", "bugs", "crash", "crashes", "error", "errors", "exception", "exceptions",
        "warning", "warnings", "regression", "regressions", "failure", "failures", "traceback", "leak",
        "leaks", "broken", "fails", "failing", "wrong", "misspelling", "misspelled", "deadlock", "race",
        "flaky", "500", "slow", "hangs", "freezes", "timeout", "timeouts",
    }
)

# A clause holding one of these describes how things are ("the page is slow") rather than naming a thing.
_STATEMENT_WORDS = frozenset(
    {
        "is", "are", "was", "were", "isn't", "aren't", "wasn't", "doesn't", "don't", "does", "has", "have",
        "needs", "should", "must", "can't", "cannot", "won't", "fails", "breaks", "takes", "looks", "seems",
        "keeps", "shows", "returns", "throws", "crashes", "hangs", "freezes", "leaks", "errors",
    }
)

# Words that make a task wide even as one clause.
_LARGE_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"\brefactor(?:s|ed|ing)?\b", "refactor"),
    (r"\bmigrat(?:e|es|ed|ing)\b", "migrate"),
    (r"\bredesign(?:s|ed|ing)?\b", "redesign"),
    (r"\brewrit(?:e|es|ing)|rewritten\b", "rewrite"),
    (r"\boverhaul(?:s|ed|ing)?\b", "overhaul"),
    (r"\bre-?architect(?:s|ed|ing)?\b", "re-architect"),
    (r"\bacross\b", "across"),
    (r"\bthroughout\b", "throughout"),
    (r"\b(?:the\s+)?entire\b", "entire"),
    (
        r"\b(?:whole|entire)\s+(?:[\w.-]+\s+)?(?:codebase|code\s*base|project|app|application|repo|repository|system|module|"
        r"package|library|folder|directory|dir|service|component|layer|file|class|api|backend|frontend)\b",
        "whole codebase",
    ),
    (
        r"\b(?:all|every)\s+(?:the\s+|of\s+the\s+|our\s+)?(?:[\w.*-]+\s+)?"
        r"(?:endpoints?|files?|modules?|pages?|screens?|services?|routes?|handlers?|components?|"
        r"packages?|tables?|models?|views?|controllers?|commands?|apis?)\b",
        "all endpoints",
    ),
)

# Areas a clause can touch; two clauses in different areas make a task large.
_AREAS: dict[str, frozenset[str]] = {
    "api": frozenset(
        {"api", "apis", "endpoint", "endpoints", "route", "routes", "handler", "handlers", "server", "rest",
         "graphql", "grpc", "webhook", "webhooks", "backend", "request", "requests", "response", "http"}
    ),
    "ui": frozenset(
        {"ui", "page", "pages", "component", "components", "button", "buttons", "screen", "screens", "view",
         "views", "css", "style", "styles", "layout", "modal", "dialog", "form", "forms", "frontend", "menu",
         "sidebar", "navbar", "theme", "widget", "widgets", "tab", "tabs"}
    ),
    "data": frozenset(
        {"database", "db", "schema", "migration", "migrations", "table", "tables", "column", "columns",
         "query", "queries", "sql", "index", "indexes", "orm", "model", "models", "cache", "redis"}
    ),
    "docs": frozenset(
        {"readme", "docs", "documentation", "changelog", "guide", "tutorial", "docstring", "docstrings",
         "comment", "comments", "manual", "faq"}
    ),
    "build": frozenset(
        {"ci", "pipeline", "docker", "dockerfile", "build", "packaging", "package", "dependency",
         "dependencies", "deps", "makefile", "workflow", "workflows", "release", "version", "deploy",
         "deployment", "lockfile", "requirements"}
    ),
    "auth": frozenset(
        {"auth", "authentication", "authorization", "login", "logout", "session", "sessions", "token",
         "tokens", "permission", "permissions", "password", "passwords", "oauth", "sso", "signup", "role",
         "roles"}
    ),
    "config": frozenset({"config", "configuration", "settings", "setting", "env", "environment", "flag",
                         "flags", "option", "options"}),
}
_TEST_WORDS = frozenset({"test", "tests", "testing", "unittest", "unittests", "spec", "specs", "coverage"})
_EXT_AREAS: dict[str, str] = {
    ".md": "docs", ".rst": "docs", ".txt": "docs", ".css": "ui", ".scss": "ui", ".tsx": "ui", ".jsx": "ui",
    ".vue": "ui", ".svelte": "ui", ".html": "ui", ".sql": "data", ".yml": "config", ".yaml": "config",
    ".toml": "config", ".ini": "config", ".cfg": "config", ".env": "config",
}

# Destructive or out-of-bounds requests: (pattern, "asks to ...", why it is refused).
_SECRET = (
    r"(?:\b(?:secrets?|credentials?|passwords?|api[ _-]?keys?|private[ _-]?keys?|ssh[ _-]?keys?|"
    r"access[ _-]?tokens?|auth[ _-]?tokens?|api[ _-]?tokens?)\b|\.env\b)"
)
_REJECT_RULES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(
            r"\b(?:delete|remove|destroy|wipe|nuke|erase|trash)\s+(?:the\s+|this\s+|our\s+|my\s+|whole\s+|"
            r"entire\s+|git\s+)*(?:repo|repository|codebase|code\s*base|project|\.git)\b"
            r"(?!\s*(?:pattern|class|interface|layer|object|url|link|setting|field|name|card|list|page|"
            r"dialog|button|endpoint|api|method|function|helper|module|table)s?\b)",
            re.I,
        ),
        "delete the repository",
        "destroying the project is out of scope",
    ),
    (
        re.compile(r"\b(?:delete|erase|wipe|purge|rewrite|destroy)\s+(?:the\s+|all\s+|our\s+)*(?:git\s+)?"
                   r"(?:commit\s+)?history\b", re.I),
        "rewrite or delete the git history",
        "shared history is never rewritten",
    ),
    (
        re.compile(r"\b(?:delete|remove|drop)\s+(?:the\s+)?(?:main|master|production|prod|release)\s+branch\b"
                   r"|\b(?:delete|remove)\s+all\s+(?:the\s+)?branches\b", re.I),
        "delete a shared branch",
        "shared branches are never deleted by a task",
    ),
    (
        re.compile(r"\bforce[- ]?push", re.I),
        "force-push",
        "rewriting pushed history is refused",
    ),
    (
        re.compile(r"\breset\s+--hard\b", re.I),
        "run git reset --hard",
        "it throws away uncommitted work",
    ),
    (
        re.compile(r"\bdrop\s+(?:the\s+)?(?:production\s+|prod\s+|whole\s+|entire\s+|live\s+)?(?:database|db)\b"
                   r"|\bdrop\s+all\s+(?:the\s+)?tables\b|\b(?:wipe|truncate|delete)\s+(?:the\s+)?"
                   r"(?:production|prod|live)\s+(?:database|db|data)\b", re.I),
        "drop a database",
        "destroying data is out of scope",
    ),
    (
        re.compile(r"\b(?:leak|exfiltrate|steal|publish|upload|share|dump|send|post|paste|expose|reveal|"
                   r"commit|print|log|email|tweet|push)\b[^.;\n]{0,40}?" + _SECRET, re.I),
        "leak secrets",
        "secrets, credentials and keys never leave their store",
    ),
    (
        re.compile(
            r"\b(?:bypass|skip|disable|circumvent|ignore|turn\s+off)\s+(?:the\s+|all\s+)*"
            r"(?:human\s+|review\s+|merge\s+|quality\s+)?(?:gates?|approvals?|human\s+review)\b",
            re.I,
        ),
        "bypass the gates or the human approval",
        "gates and approvals are not optional",
    ),
    (
        re.compile(r"\bmkfs\b|\bformat\s+(?:the\s+)?(?:hard\s+)?(?:disk|drive|partition)\b|:\(\)\s*\{|"
                   r"\bfork\s*bomb\b|\bchmod\s+-r\s+777\s+/", re.I),
        "damage the machine",
        "it is destructive and out of scope",
    ),
)

_LEAD_FILLERS = frozenset(
    {
        "please", "pls", "plz", "we", "i", "you", "need", "needs", "to", "should", "must", "let's", "lets",
        "let", "us", "can", "could", "would", "will", "also", "then", "and", "just", "so", "now", "go",
        "ahead", "kindly", "want", "wanna", "gotta", "have", "has", "todo", "todo:", "task:", "quickly",
        "finally", "first", "next", "maybe", "try", "like",
    }
)

# Runs of word characters; a run's trailing punctuation is cut in `_words` (a regex that backtracks over a
# long run of "-" or "." for each start position would be quadratic).
_RUN_RE = re.compile(r"[A-Za-z0-9_./'*-]+")
_RUN_TAIL_RE = re.compile(r"[./'-]+$")
_BLANKS_RE = re.compile(r"[^\S\n]+")
_SENTENCE_RE = re.compile(r"(?:\r?\n)+|(?<=[.!?])\s+")
_CLAUSE_SEP_RE = re.compile(r"(\s*[,;]\s*|\s+(?:and|then|plus)\s+)", re.I)


# --------------------------------------------------------------------------------------------------------
# The heuristic: analysis
# --------------------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    words: list[str] = []
    for run in _RUN_RE.findall(text):
        tail = _RUN_TAIL_RE.search(run)
        head = run[: tail.start()] if tail else run
        if head:
            words.append(head.lower())
        # A bare "/" is a word of its own ("/" as a route), also after the end of a run.
        words.extend("/" for ch in (tail.group() if tail else "") if ch == "/")
    return words


def normalise_text(text: str) -> str:
    """The text the heuristic reads: look-alike letters folded to ASCII (`textfold`), blanks collapsed."""
    return _BLANKS_RE.sub(" ", textfold.fold(text))


def _lemma_verb(word: str) -> str | None:
    """The step verb for `word` if it is (an inflection of) a known action verb."""
    for c in _inflection_bases(word):
        if c in _VERBS:
            return c
    return None


def _inflection_bases(word: str) -> list[str]:
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


def _peers_in(text: str, peers: Sequence[str]) -> list[str]:
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
class _Clause:
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


def _leading_verb(words: list[str]) -> tuple[str | None, int]:
    for i, w in enumerate(words):
        if w in _LEAD_FILLERS:
            continue
        lemma = _lemma_verb(w)
        return lemma, i
    return None, len(words)


def _strip_lead(text: str) -> str:
    """Drop leading filler words ("please", "we need to", "also") from a clause, keep its case."""
    tokens = text.split()
    i = 0
    while i < len(tokens) - 1 and tokens[i].lower().strip(",:") in _LEAD_FILLERS:
        i += 1
    return " ".join(tokens[i:])


def _areas_of(words: list[str]) -> list[str]:
    areas: set[str] = set()
    for w in dict.fromkeys(words):
        for name, vocab in _AREAS.items():
            if w in vocab:
                areas.add(name)
        if w.startswith("/") and len(w) > 1:
            areas.add("api")
        for ext, name in _EXT_AREAS.items():
            if w.endswith(ext) and len(w) > len(ext):
                areas.add(name)
    return sorted(areas)


def _analyse(text: str, peers: Sequence[str]) -> list[_Clause]:
    clauses: list[_Clause] = []
    sentences = [s.strip() for s in _SENTENCE_RE.split(text) if s and s.strip()]
    for sentence in sentences:
        if len(clauses) >= MAX_CLAUSES:
            break
        parts = _CLAUSE_SEP_RE.split(sentence)
        pieces: list[list[str]] = []
        for idx in range(0, len(parts), 2):
            piece = parts[idx].strip().rstrip(".!?").strip()
            sep = parts[idx - 1] if idx > 0 else ""
            if not piece:
                continue
            words = _words(piece)
            lead, _ = _leading_verb(words)
            content = [w for w in words if w not in _LEAD_FILLERS]
            # A short verbless piece belongs to the one before it: "fix typo in README and CHANGELOG".
            if pieces and lead is None and len(content) <= 3:
                glue = sep.strip()
                pieces[-1].append(f"{glue} {piece}" if glue in {",", ";"} else f" {glue} {piece}")
                continue
            pieces.append([piece])
        for piece in ("".join(p) for p in pieces):
            words = _words(piece)
            lead, at = _leading_verb(words)
            verb = _VERBS[lead] if lead else None
            if verb == "add" and any(w in _TEST_WORDS for w in words[at + 1 : at + 4]):
                verb = "test"  # "add a test for ...", "write tests"
            content = [w for w in words if w not in _STOP_WORDS and w not in _LEAD_FILLERS]
            test_noun = lead is None and any(w in _TEST_WORDS for w in content[:2])
            peer_hits = _peers_in(piece, peers)
            peer_words = {w for p in peer_hits for w in _words(p)}
            # Verbs in object position are things ("fix the build", "clear the cache"), unless vague.
            concrete = [
                w
                for i, w in enumerate(words)
                if (lead is None or i != at)
                and w not in _STOP_WORDS
                and w not in _VAGUE_WORDS
                and w not in _LEAD_FILLERS
                and _lemma_verb(w) not in _VAGUE_VERBS
                and w not in _TEST_WORDS
                and w not in peer_words
                and not w.isdigit()
            ]
            concrete += [p.lower() for p in peer_hits]
            clauses.append(
                _Clause(
                    text=_strip_lead(piece),
                    words=words,
                    verb_word=lead,
                    verb=verb,
                    concrete=concrete,
                    peers=peer_hits,
                    areas=_areas_of(words),
                    is_test=verb == "test" or test_noun,
                    test_noun=test_noun,
                    problem=any(w in _PROBLEM_WORDS for w in words),
                    statement=any(w in _STATEMENT_WORDS for w in words)
                    and not (content and content[0] in _PROBLEM_WORDS - _STATEMENT_WORDS),
                    short=len(content) <= 3,
                )
            )
    return clauses


def _capitalize(text: str) -> str:
    text = " ".join(text.split()).rstrip(" .,;:")
    return text[:1].upper() + text[1:] if text else text


# Shell commands, read token by token (linear in the text, whatever it repeats).
_COMMAND_SPLIT_RE = re.compile(r"[;|&\n`()]+|\$\(|(?<=[.!?])\s")
_PUSH_FORCE_FLAGS = frozenset({"-f", "--force", "--force-with-lease", "--force-if-includes", "--mirror",
                               "--delete", "-d", "--prune"})


def _short_flags(token: str) -> str:
    return token[1:] if token.startswith("-") and not token.startswith("--") else ""


def _shell_danger(text: str) -> str | None:
    """What a destructive shell command in `text` would do ("run rm -rf"), or None.

    `rm` with both a recursive and a force flag in any spelling (-rf, -r -f, -Rf, --recursive --force), and a
    `push` that forces, mirrors or deletes (-f, --force..., +ref, :ref, --mirror, --delete).
    """
    for segment in _COMMAND_SPLIT_RE.split(text):
        tokens = [t.strip("\"'.,") for t in segment.lower().split()]
        rm = recursive = force = push = False
        for token in tokens:
            if token in ("rm", "/bin/rm", "rmdir"):
                rm, recursive, force = True, False, False
            elif rm:
                flags = _short_flags(token)
                recursive = recursive or token == "--recursive" or "r" in flags
                force = force or token == "--force" or "f" in flags
                if recursive and force:
                    return "run rm -rf"
            if token == "push":
                push = True
            elif push and (token in _PUSH_FORCE_FLAGS or token.startswith("--force")
                           or (len(token) > 1 and token[0] in "+:" and token[1] != ":")):
                return "force-push"
    return None


def _reject_reason(text: str) -> str | None:
    if not text.strip() or not _words(text):
        return "empty description: there is nothing to do."
    danger = _shell_danger(text)
    if danger == "run rm -rf":
        return "asks to run rm -rf: deleting files wholesale is not a task to hand an agent."
    if danger == "force-push":
        return "asks to force-push: rewriting pushed history is refused."
    for pattern, what, why in _REJECT_RULES:
        if pattern.search(text):
            return f"asks to {what}: {why}."
    return None


# Never small, whatever else the text says: each of these needs a person to read the plan.
_DESTRUCTIVE_VERBS = frozenset(
    {"wipe", "destroy", "nuke", "erase", "purge", "truncate", "overwrite", "clobber", "obliterate", "shred"}
)
# Destructive only as the verb of a clause ("empty utils.py", not "on empty input").
_DESTRUCTIVE_LEADS = frozenset({"empty", "blank", "zero", "gut", "trash", "scrap", "discard", "clear"})
_DESTRUCTIVE_RE = re.compile(
    r"\b(?:replace|overwrite|clear|blank\s+out|strip)\s+(?:the\s+|all\s+)?(?:contents?|bod(?:y|ies)|"
    r"everything)\b|\bdelete\s+(?:all|everything|every)\b|\bremove\s+(?:all|everything|every)\b",
    re.I,
)
_SECURITY_WORDS = frozenset(
    {"auth", "authn", "authz", "authenticate", "authentication", "authorize", "authorise", "authorization",
     "authorisation", "login", "logins", "logon", "logout", "signin", "signup", "password", "passwords",
     "passwd", "passphrase", "credential", "credentials", "permission", "permissions", "acl", "acls",
     "rbac", "csrf", "xss", "cors", "csp", "encrypt", "encrypted", "encryption", "decrypt", "decryption",
     "crypto", "cryptography", "signature", "signatures", "certificate", "certificates", "cert", "certs",
     "tls", "ssl", "oauth", "sso", "saml", "jwt", "token", "tokens", "session", "sessions", "secret",
     "secrets", "2fa", "mfa", "otp", "totp", "sudo", "sudoers", "privilege", "privileges", "firewall",
     "sandbox", "sanitize", "sanitise", "sanitizer", "escaping", "hmac", "nonce", "apikey", "ssh",
     "keyring", "keychain", "security", "vulnerability", "cve", "exploit"}
)
_SHELL_WORDS = frozenset(
    {"sudo", "su", "curl", "wget", "chmod", "chown", "chgrp", "dd", "mkfs", "kill", "pkill", "killall",
     "shutdown", "reboot", "eval", "exec", "bash", "sh", "zsh", "rm", "rmdir", "mv", "xargs", "crontab",
     "systemctl", "iptables", "nc", "netcat", "ssh", "scp", "rsync", "docker", "kubectl", "npx"}
)
_SHELL_GIT = frozenset({"push", "reset", "clean", "rebase", "filter-branch", "filter-repo", "update-ref",
                        "gc", "prune", "reflog", "checkout", "restore", "branch", "tag", "remote", "config"})
_RUN_VERBS = frozenset({"run", "execute", "exec", "invoke", "type", "launch"})


def _word_parts(word: str) -> list[str]:
    """A word and its parts ("auth.py" -> auth, py; "login_form" -> login, form)."""
    return [word, *(p for p in re.split(r"[./_-]+", word) if p and p != word)]


def _never_small(text: str, clauses: Sequence[_Clause]) -> str | None:
    """Why a task that would otherwise be small needs a person's review, or None."""
    words = _words(text)
    for w in dict.fromkeys(words):
        if not _DESTRUCTIVE_VERBS.isdisjoint(_inflection_bases(w)):
            return f'says "{w}": destructive changes need a reviewed plan.'
    for i, w in enumerate(words):
        if w == "git" and i + 1 < len(words) and words[i + 1] in _SHELL_GIT:
            return f'runs "git {words[i + 1]}": shell commands need a reviewed plan.'
    match = _DESTRUCTIVE_RE.search(text)
    if match is not None:
        return f'says "{" ".join(match.group().split())}": destructive changes need a reviewed plan.'
    for w in dict.fromkeys(words):
        hit = next((p for p in _word_parts(w) if p in _SECURITY_WORDS), None)
        if hit is not None:
            return f'touches a security-sensitive area ("{hit}"): it needs a reviewed plan.'
    for c in clauses:
        _, at = _leading_verb(c.words)
        lead = c.words[at] if at < len(c.words) else ""
        if lead in _DESTRUCTIVE_LEADS:
            return f'says "{lead}": destructive changes need a reviewed plan.'
        if lead in _RUN_VERBS:
            return f"asks to {lead} a command: shell commands need a reviewed plan."
    shell = next((w for w in words if w in _SHELL_WORDS), None)
    if shell is not None or "`" in text or "$(" in text:
        what = f'"{shell}"' if shell is not None else "a shell command"
        return f"runs {what}: shell commands need a reviewed plan."
    return None


def _vague_verb(clauses: Sequence[_Clause]) -> str | None:
    """The vague word to ask about: "improve", "clean up", or "better" in "make it better"."""
    for c in clauses:
        for i, w in enumerate(c.words):
            if _lemma_verb(w) in _VAGUE_VERBS and w not in ("make", "makes", "do", "does"):
                return f"{w} up" if c.words[i + 1 : i + 2] == ["up"] else w
    vague = [w for c in clauses for w in c.words if w in _VAGUE_WORDS and w not in _STOP_WORDS]
    qualities = [w for w in vague if w in _QUALITY_WORDS]
    return qualities[0] if qualities else vague[0] if vague else None


def _questions(clauses: Sequence[_Clause], peers: Sequence[str], objects: Sequence[str]) -> list[str]:
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
    clauses: Sequence[_Clause], text: str, peers: Sequence[str], answers: Sequence[str], title: str
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
    words = [w for w in _words(text) if w not in _STOP_WORDS]
    has_verb = any(_lemma_verb(w) for w in _words(text))
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
    for pattern, name in _LARGE_PATTERNS:
        if re.search(pattern, text, re.I):
            return name
    return None


def _step_text(c: _Clause) -> tuple[str, str]:
    """The step verb and description for a clause."""
    context = f" ({'; '.join(c.context)})" if c.context else ""
    if c.verb is not None:
        verb, text = c.verb, c.text
    elif c.test_noun:
        verb, text = "test", f"add {c.text}"
    elif c.problem:
        verb, text = "modify", f"fix: {c.text}" if c.statement else f"fix {c.text}"
    elif c.inherited:
        verb, text = _VERBS[c.inherited], f"{c.inherited} {c.text}"
    else:
        verb, text = "modify", c.text
    return verb, _cap(_capitalize(text) + context)


def _cap(text: str) -> str:
    return text if len(text) <= MAX_STEP_TEXT else text[: MAX_STEP_TEXT - 1].rstrip() + "…"


def _work_clauses(clauses: Sequence[_Clause]) -> list[_Clause]:
    """The clauses that become steps, in order.

    Concrete clauses are steps, and so are specific verbs with an implied object ("add tests"). A short
    verbless clause borrows the verb before it ("improve things" + "README" -> "Improve README"); with no
    verb before it, it is the context of the next step ("README" + "fix the install link" -> "Fix the
    install link (README)"), and that step goes to any peer the context names.
    """
    out: list[_Clause] = []
    pending: list[_Clause] = []
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
        if c.concrete or (c.verb_word is not None and c.verb_word not in _VAGUE_VERBS):
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

    rejected = _reject_reason(text)
    if rejected is not None:
        return Classification(scope="reject", reason=rejected, title=title, plan=[])

    clauses = _analyse(text, peer_list)
    vague = _ambiguous(clauses, text, peer_list, answers, title)
    if vague is not None:
        return vague

    work = _work_clauses(clauses)
    local = [c for c in work if not c.peers and not c.is_test]
    tests = [c for c in work if not c.peers and c.is_test]
    named_peers = _peers_in(text, peer_list)
    remote: dict[str, list[_Clause]] = {p: [c for c in work if p in c.peers] for p in named_peers}
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

    careful = _never_small(text, clauses)
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


def _distinct_areas(local: Sequence[_Clause]) -> bool:
    """Two clauses touch different areas when neither's areas cover the other's."""
    a, b = set(local[0].areas), set(local[1].areas)
    return bool(a) and bool(b) and not (a & b)


def _large_plan(
    local: Sequence[_Clause], tests: Sequence[_Clause], remote: dict[str, list[_Clause]]
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
            _cap("; ".join(_step_text(c)[1] for c in tests[:20]))
            if tests
            else "Add or update tests covering the changes above, and run them"
        )
        steps.append(PlanStep(n=len(steps) + 1, verb="test", description=desc, depends_on=list(work_ns)))
    for peer, clauses in remote.items():
        desc = _cap("; ".join(dict.fromkeys(_step_text(c)[1] for c in clauses[:20])))
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


# --------------------------------------------------------------------------------------------------------
# The prompt
# --------------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------------
# Parsing and validating a command's answer
# --------------------------------------------------------------------------------------------------------


class _Failure(Exception):
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


def _extract_json(text: str, *, unwrap: bool = True) -> dict[str, Any]:
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
                with contextlib.suppress(_Failure):
                    return _extract_json(inner, unwrap=False)
            if first_dict is None:
                first_dict = obj
        pos = end + 1
    if first_dict is not None:
        return first_dict
    if first_error is not None:
        raise _Failure(f"classifier command printed invalid JSON ({first_error})")
    raise _Failure("classifier command printed no JSON object")


def extract_json_object(text: str) -> dict[str, Any]:
    """The first balanced JSON object in `text` (see `classify`); ValueError saying why when there is none."""
    try:
        return _extract_json(text)
    except _Failure as exc:
        raise ValueError(str(exc)) from None


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise _Failure(f"{what} must be a number, got {json.dumps(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _Failure(f"{what} must be a number, got {json.dumps(value)}")


def _as_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _Failure(f"{what} must be a string, got {json.dumps(value)[:40]}")
    return " ".join(value.split())


def parse_classification(
    obj: Any, peers: Sequence[str], *, description: str = "", classifier: str = "command"
) -> Classification:
    """Validate a classifier's JSON object (see the module docstring); raise ValueError naming the problem."""
    try:
        return _validate(obj, peers, description=description, classifier=classifier)
    except _Failure as exc:
        raise ValueError(str(exc)) from None


def _validate(obj: Any, peers: Sequence[str], *, description: str, classifier: str) -> Classification:
    if not isinstance(obj, dict):
        raise _Failure("the answer is not a JSON object")
    raw_scope = obj.get("scope")
    if raw_scope is None:
        raise _Failure('the answer has no "scope"')
    scope = _as_text(raw_scope, '"scope"').lower()
    if scope not in SCOPES:
        raise _Failure(f"scope {json.dumps(raw_scope)} is not one of {', '.join(SCOPES)}")
    reason = _cap(_as_text(obj.get("reason") or "", '"reason"')) or "the classifier gave no reason."
    raw_title = obj.get("title")
    title = make_title(_as_text(raw_title, '"title"')) if raw_title else make_title(description)

    raw_questions = obj.get("questions") or []
    if not isinstance(raw_questions, list):
        raise _Failure('"questions" must be a list of strings')
    questions = [_cap(q) for q in (_as_text(q, "each question") for q in raw_questions[:10]) if q]

    raw_plan = obj.get("plan") or []
    if not isinstance(raw_plan, list):
        raise _Failure('"plan" must be a list of steps')
    if len(raw_plan) > MAX_STEPS:
        raise _Failure(f"the plan has {len(raw_plan)} steps (at most {MAX_STEPS})")
    canonical = {p.strip().lower(): p.strip() for p in peers if p.strip()}
    steps: list[PlanStep] = []
    seen: set[int] = set()
    for i, raw in enumerate(raw_plan, start=1):
        if not isinstance(raw, dict):
            raise _Failure(f"plan step {i} is not an object")
        n = _as_int(raw["n"], f'step {i} "n"') if raw.get("n") is not None else i
        label = f"step {n}"
        if n < 1:
            raise _Failure(f"{label}: step numbers start at 1")
        if n in seen:
            raise _Failure(f"{label} is numbered twice")
        verb = _as_text(raw.get("verb", ""), f'{label} "verb"').lower()
        if verb not in VERBS:
            raise _Failure(
                f"{label} has unknown verb {json.dumps(raw.get('verb'))} (expected one of {', '.join(VERBS)})"
            )
        desc = _cap(_as_text(raw.get("description", ""), f'{label} "description"'))
        if not desc:
            raise _Failure(f"{label} has no description")
        raw_peer = raw.get("peer")
        peer: str | None = None
        if verb == "delegate":
            if not raw_peer:
                raise _Failure(f"{label} delegates but names no peer")
            name = _as_text(raw_peer, f'{label} "peer"')
            if name.lower() not in canonical:
                known = ", ".join(canonical.values()) or "none"
                raise _Failure(f"{label} delegates to {json.dumps(name)}, which is not a peer repo ({known})")
            peer = canonical[name.lower()]
        elif raw_peer:
            raise _Failure(f"{label} names peer {json.dumps(raw_peer)} but only delegate steps go to a peer")
        raw_deps = raw.get("depends_on") or []
        if not isinstance(raw_deps, list):
            raise _Failure(f'{label} "depends_on" must be a list of step numbers')
        deps: list[int] = []
        for d in raw_deps:
            dep = _as_int(d, f"{label} depends_on entry")
            if dep not in seen:
                raise _Failure(f"{label} depends on step {dep}, which is not an earlier step")
            if dep not in deps:
                deps.append(dep)
        seen.add(n)
        steps.append(PlanStep(n=n, verb=verb, description=desc, peer=peer, depends_on=deps))

    if scope == "reject":
        steps = []
    elif scope == "ambiguous":
        if not questions:
            raise _Failure("scope is ambiguous but there are no questions to ask")
    else:
        if not steps:
            raise _Failure(f"scope is {scope} but the plan has no steps")
        if scope == "small":
            for s in steps:
                if s.verb == "delegate":
                    raise _Failure(
                        f"scope is small but step {s.n} delegates to {s.peer} (cross-repo work is large)"
                    )
    return Classification(
        scope=scope, reason=reason, title=title, plan=steps, questions=questions, classifier=classifier
    )


# --------------------------------------------------------------------------------------------------------
# Running the command
# --------------------------------------------------------------------------------------------------------


def _kill_group(pid: int) -> None:
    # SIGKILL at once: a classifier holds no state worth a graceful exit. The group is killed before its
    # leader is reaped, or while a member of it still holds the output open, so the id is still the group's.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _read_capped(stream: asyncio.StreamReader, buffer: bytearray, limit: int) -> None:
    """Read into `buffer` until EOF, or until it holds more than `limit` bytes."""
    while len(buffer) <= limit:
        chunk = await stream.read(65536)
        if not chunk:
            return
        buffer += chunk


async def _read_tail(stream: asyncio.StreamReader) -> bytes:
    tail = b""
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return tail
        tail = (tail + chunk)[-_STDERR_TAIL:]


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    try:
        stdin.write(data)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command does not read stdin (it took {prompt} as an argument): fine
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            stdin.close()


def _last_line(data: bytes | bytearray) -> str:
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


class _ExitAwareProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The stream protocol plus a future set when the process exits.

    `Process.wait()` also waits for the pipes to close, so a child the command left holding its output would
    look like a hang; this tells the two apart.
    """

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


async def _spawn(argv: list[str], cwd: Path | None) -> tuple[asyncio.subprocess.Process, _ExitAwareProtocol]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _ExitAwareProtocol(limit=2**16, loop=loop),
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        start_new_session=True,  # its own process group: a timeout kills it and everything it started
    )
    return asyncio.subprocess.Process(transport, protocol, loop), protocol


async def _run(argv: list[str], prompt: str, timeout_s: float, cwd: Path | None) -> str:
    """Run the command with `prompt` on stdin; return its stdout, or raise _Failure saying what went wrong."""
    name = argv[0]
    try:
        proc, protocol = await _spawn(argv, cwd)
    except FileNotFoundError:
        if cwd is not None and not await asyncio.to_thread(os.path.isdir, cwd):
            raise _Failure(f"classifier command cannot run: working directory {cwd} does not exist") from None
        raise _Failure(f"classifier command not found: {name}") from None
    except PermissionError:
        raise _Failure(f"classifier command is not executable: {name}") from None
    except OSError as exc:
        raise _Failure(f"classifier command could not start: {name}: {exc.strerror or exc}") from None

    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out = bytearray()
    feeder = asyncio.create_task(_feed(proc.stdin, prompt.encode("utf-8")))
    out_task = asyncio.create_task(_read_capped(proc.stdout, out, MAX_OUTPUT_BYTES))
    err_task = asyncio.create_task(_read_tail(proc.stderr))
    too_much = f"classifier command printed more than {MAX_OUTPUT_BYTES // 1024} KiB"
    try:
        async with asyncio.timeout(timeout_s):
            # Whichever comes first: the command exits, or its output closes (or overflows: then stop).
            first: set[asyncio.Future[Any]] = {protocol.exited, out_task}
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if len(out) > MAX_OUTPUT_BYTES:
                raise _Failure(too_much)
            await protocol.exited
            if not (out_task.done() and err_task.done()):
                # The command exited but something it started still holds its output open: a moment's
                # grace, then the rest of its process group goes; if even that does not close the output
                # (a process that left the group), what was printed so far is the answer.
                await asyncio.wait({out_task, err_task}, timeout=_STRAGGLER_GRACE_S)
                if not (out_task.done() and err_task.done()):
                    _kill_group(proc.pid)
                    await asyncio.wait({out_task, err_task}, timeout=_STRAGGLER_GRACE_S)
            if len(out) > MAX_OUTPUT_BYTES:
                raise _Failure(too_much)
            err = err_task.result() if err_task.done() else b""
    except TimeoutError:
        raise _Failure(f"classifier command timed out after {float(timeout_s)}s") from None
    finally:
        if not protocol.exited.done() or not (out_task.done() and err_task.done()):
            _kill_group(proc.pid)  # timed out, cancelled, or a straggler still holds the output
        for task in (feeder, out_task, err_task):
            task.cancel()
        await asyncio.gather(feeder, out_task, err_task, return_exceptions=True)
        if not protocol.exited.done():
            # The child watcher reaps the killed command (no zombie); not `proc.wait()`, which would also
            # wait for pipes that a process outside the group may still hold.
            await asyncio.wait({protocol.exited}, timeout=5.0)
        if protocol.transport is not None:
            protocol.transport.close()

    code = proc.returncode
    assert code is not None

    if code < 0:
        raise _Failure(f"classifier command was killed by signal {-code}")
    if code != 0:
        detail = _last_line(err) or _last_line(out)
        raise _Failure(f"classifier command exited with status {code}" + (f": {detail}" if detail else ""))
    return bytes(out).decode("utf-8", "replace")


async def classify(
    description: str,
    peers: Sequence[str],
    *,
    command: str = "",
    timeout_s: float = 60.0,
    cwd: Path | None = None,
    answers: Sequence[str] = (),
    repo_name: str = "",
) -> Classification:
    """Classify with `command` (see the module docstring), or with the heuristic when it is empty or fails.

    Never raises for a misbehaving command: the heuristic's answer comes back with `fallback_reason` set.
    An empty description is rejected by the heuristic without running the command.
    """
    # Off the caller's loop when it could take a moment (linear, but 64 KiB is about a second); a short
    # text takes well under a millisecond, less than the hop to a thread.
    if len(description) + sum(len(a) for a in answers) > INLINE_CLASSIFY_CHARS:
        heuristic = await asyncio.to_thread(classify_heuristic, description, peers, answers=answers)
    else:
        heuristic = classify_heuristic(description, peers, answers=answers)
    if not command.strip() or not description.strip():
        return heuristic

    def fallback(reason: str) -> Classification:
        log.warning("classifier fell back to the heuristic: %s", reason)
        return replace(heuristic, classifier="heuristic", fallback_reason=reason)

    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return fallback(f"classifier command is not valid shell syntax ({exc}): {command}")
    if not argv:
        return fallback("classifier command is empty after parsing")
    prompt = build_prompt(description, peers, repo_name=repo_name, answers=answers)
    argv = [arg.replace(PROMPT_PLACEHOLDER, prompt) for arg in argv]
    label = f"command:{os.path.basename(argv[0]) or argv[0]}"
    try:
        output = await _run(argv, prompt, timeout_s, cwd)
        obj = _extract_json(output)
        try:
            result = _validate(obj, peers, description=description, classifier=label)
        except _Failure as exc:
            raise _Failure(f"classifier command returned an invalid answer: {exc}") from None
    except _Failure as exc:
        return fallback(str(exc))
    return result
