"""The words the heuristic knows: verbs, vague and problem words, areas, what is refused."""

from __future__ import annotations

import re

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
WORD_VERBS: dict[str, str] = {word: verb for verb, words in _VERB_GROUPS.items() for word in words}

# Verbs that say nothing about *what* to do: a clause made of these and filler is context, not a step.
VAGUE_VERBS = frozenset(
    {
        "fix", "update", "change", "improve", "make", "handle", "clean", "tidy", "polish", "tweak", "enhance",
        "refine", "optimize", "optimise", "refactor", "rework", "rewrite", "redesign", "overhaul", "modify",
        "adjust", "do", "work", "look", "sort", "speed", "simplify", "restructure", "reorganize",
        "reorganise", "harden",
    }
)

# Nouns and modifiers too general to be the object of a change.
VAGUE_WORDS = frozenset(
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

QUALITY_WORDS = frozenset(
    {"better", "best", "good", "great", "nice", "nicer", "cleaner", "faster", "simpler", "robust", "readable",
     "maintainable", "reliable", "usable", "efficient", "modern", "properly", "correctly", "nicely"}
)

STOP_WORDS = frozenset(
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
PROBLEM_WORDS = frozenset(
    {
        "typo", "typos", "bug", "bugs", "crash", "crashes", "error", "errors", "exception", "exceptions",
        "warning", "warnings", "regression", "regressions", "failure", "failures", "traceback", "leak",
        "leaks", "broken", "fails", "failing", "wrong", "misspelling", "misspelled", "deadlock", "race",
        "flaky", "500", "slow", "hangs", "freezes", "timeout", "timeouts",
    }
)

# A clause holding one of these describes how things are ("the page is slow") rather than naming a thing.
STATEMENT_WORDS = frozenset(
    {
        "is", "are", "was", "were", "isn't", "aren't", "wasn't", "doesn't", "don't", "does", "has", "have",
        "needs", "should", "must", "can't", "cannot", "won't", "fails", "breaks", "takes", "looks", "seems",
        "keeps", "shows", "returns", "throws", "crashes", "hangs", "freezes", "leaks", "errors",
    }
)

# Words that make a task wide even as one clause.
LARGE_PATTERNS: tuple[tuple[str, str], ...] = (
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
AREAS: dict[str, frozenset[str]] = {
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
TEST_WORDS = frozenset({"test", "tests", "testing", "unittest", "unittests", "spec", "specs", "coverage"})
EXT_AREAS: dict[str, str] = {
    ".md": "docs", ".rst": "docs", ".txt": "docs", ".css": "ui", ".scss": "ui", ".tsx": "ui", ".jsx": "ui",
    ".vue": "ui", ".svelte": "ui", ".html": "ui", ".sql": "data", ".yml": "config", ".yaml": "config",
    ".toml": "config", ".ini": "config", ".cfg": "config", ".env": "config",
}

# Destructive or out-of-bounds requests: (pattern, "asks to ...", why it is refused).
_SECRET = (
    r"(?:\b(?:secrets?|credentials?|passwords?|api[ _-]?keys?|private[ _-]?keys?|ssh[ _-]?keys?|"
    r"access[ _-]?tokens?|auth[ _-]?tokens?|api[ _-]?tokens?)\b|\.env\b)"
)
REJECT_RULES: tuple[tuple[re.Pattern[str], str, str], ...] = (
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

LEAD_FILLERS = frozenset(
    {
        "please", "pls", "plz", "we", "i", "you", "need", "needs", "to", "should", "must", "let's", "lets",
        "let", "us", "can", "could", "would", "will", "also", "then", "and", "just", "so", "now", "go",
        "ahead", "kindly", "want", "wanna", "gotta", "have", "has", "todo", "todo:", "task:", "quickly",
        "finally", "first", "next", "maybe", "try", "like",
    }
)

# Runs of word characters; a run's trailing punctuation is cut in `words_of` (a regex that backtracks over a
# long run of "-" or "." for each start position would be quadratic).
RUN_RE = re.compile(r"[A-Za-z0-9_./'*-]+")
RUN_TAIL_RE = re.compile(r"[./'-]+$")
BLANKS_RE = re.compile(r"[^\S\n]+")
SENTENCE_RE = re.compile(r"(?:\r?\n)+|(?<=[.!?])\s+")
CLAUSE_SEP_RE = re.compile(r"(\s*[,;]\s*|\s+(?:and|then|plus)\s+)", re.I)
