"""Duplicate detection for incoming tasks against the repo's active tasks.

Runs before classification, so it must be cheap, dependency-free and fast at 10,000 active tasks.

Pipeline for one query:

1. Normalise: lower-case, split paths, snake_case and flags (camelCase stays whole), drop stopwords, apply
   a small developer-vocabulary synonym table and a conservative suffix stemmer. Tokens that came from
   identifiers, paths, numbers, flags, quoted text or ALL-CAPS words are marked *specific*.
2. Exact layer: a dict lookup on the normalised token sequence.
3. Candidates: an inverted index over normalised tokens, scored by IDF, rarest postings first under a
   fixed postings budget, so the cost does not grow with the index. Only the top-N candidates go on.
4. Layers on those candidates, cheapest first: token-set Jaccard, character-trigram Jaccard, IDF-weighted
   cosine. Each has its own threshold; the first layer with a candidate over its threshold wins.

False positives are worse than misses here (a wrongly merged task silently drops work), so every layer
runs behind vetoes: a specific token (file, number, identifier, flag) unmatched on *both* sides means the
two texts name different things; opposite actions (add/remove, enable/disable) never match; and IDF mass
unmatched on both sides (a substituted subject: "settings page" vs "login page") discounts the score.

The caller re-checks inside its insert transaction; this index only has to be cheap to update in place.
Not thread-safe: the owner serialises access (the daemon does so on its event loop).
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["LAYERS", "DedupIndex", "DedupMatch", "Normalised", "normalise"]

LAYERS = ("exact", "token", "trigram", "tfidf")


@dataclass(frozen=True)
class DedupMatch:
    """The existing task a new text duplicates, the layer that decided it, and that layer's score."""

    task_id: int
    layer: str
    score: float

    def to_json(self) -> dict[str, object]:
        return {"task_id": self.task_id, "layer": self.layer, "score": round(self.score, 4)}


# --- normalisation -------------------------------------------------------------------------------------

# Apostrophes split words, so negations appear as their stems ("don", "isn").
_STOPWORDS = frozenset(
    (
        "a", "an", "the", "and", "or", "but", "nor", "to", "of", "in", "on", "at", "by", "for", "from",
        "into", "onto", "off", "with", "without", "within", "via", "per", "as", "than", "then", "so",
        "that", "this", "these", "those", "there", "here", "it", "its", "is", "are", "was", "were", "be",
        "been", "being", "am", "do", "does", "did", "done", "doing", "have", "has", "had", "having", "i",
        "we", "you", "he", "she", "they", "them", "their", "our", "ours", "us", "me", "my", "your",
        "yours", "his", "her", "will", "would", "shall", "should", "can", "could", "may", "might", "must",
        "need", "needs", "needed", "please", "also", "just", "only", "still", "all", "any", "every",
        "each", "some", "no", "not", "dont", "cannot", "very", "too", "more", "most", "when", "while",
        "where", "which", "who", "whom", "what", "why", "how", "if", "else", "again", "now", "currently",
        "instead", "properly", "correctly", "gracefully", "everywhere", "able", "make", "makes", "making",
        "made", "get", "gets", "got", "let", "lets", "new", "use", "uses", "using", "whenever",
        "thing", "things", "something", "stuff", "etc", "eg", "ie", "after", "before", "during",
        "about", "ago", "don", "doesn", "isn", "won", "didn", "shouldn", "aren", "wasn", "cant",
    )
)

# Multi-word phrases folded to one token before splitting, so both spellings meet in the index.
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(rf"\b{pattern}\b", re.IGNORECASE), replacement)
    for pattern, replacement in (
        (r"single[\s-]+sign[\s-]*on", "sso"),
        (r"(?:log|logs|logged|logging|sign|signs|signed|signing)[\s-]+in|signin", "login"),
        (r"(?:sign|signs|signed|signing)[\s-]+up", "signup"),
        (r"(?:set|sets|setting)[\s-]+up", "setup"),
        (r"(?:clean|cleans|cleaned|cleaning)[\s-]+up", "cleanup"),
        (r"pull[\s-]+request", "pr"),
        (r"e-mail", "email"),
        (r"turn[\s-]+on", "enable"),
        (r"turn[\s-]+off", "disable"),
        (r"get[\s-]+rid[\s-]+of", "remove"),
        (r"speed[\s-]+up", "speedup"),
    )
)

# Developer-vocabulary synonyms, first word is canonical. Kept conservative on purpose: merging two words
# that can name different things (user/account, order/sort) would create false duplicates.
_SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("add", "create", "implement", "introduce", "support"),
    ("remove", "delete", "drop", "eliminate", "cleanup", "purge"),
    ("fix", "repair", "resolve"),
    ("update", "upgrade", "bump", "change", "modify", "adjust", "tweak"),
    ("large", "big", "huge"),
    ("small", "tiny"),
    ("show", "display", "render"),
    ("perf", "performance", "speed", "speedup", "fast", "faster", "slow", "slower", "latency", "sluggish"),
    ("crash", "panic", "segfault"),
    ("error", "exception"),
    ("doc", "docs", "documentation", "document"),
    ("test", "tests", "testing", "spec", "specs"),
    ("config", "configuration", "configure", "setup"),
    ("auth", "authentication", "authenticate", "authn"),
    ("signup", "register", "registration"),
    ("kubernetes", "k8s"),
    ("repo", "repository"),
    ("db", "database"),
    ("dir", "directory", "folder"),
    ("env", "environment"),
    ("js", "javascript"),
    ("ts", "typescript"),
    ("message", "msg"),
    ("image", "img"),
    ("button", "btn"),
    ("dep", "deps", "dependency", "dependencies"),
    ("hint", "hints", "annotation", "annotations", "annotate"),
    ("double", "twice"),
    ("email", "mail"),
    ("enable", "allow", "permit"),
    ("disable", "forbid"),
    ("increase", "raise", "grow"),
    ("reduce", "decrease", "lower", "shrink"),
    ("migrate", "migration", "move", "port", "switch"),
    ("validate", "validation", "verify", "check"),
    ("handle", "catch"),
    ("stale", "outdated", "obsolete"),
    ("flaky", "intermittent", "intermittently", "nondeterministic"),
    ("broken", "broke", "break", "breaks"),
    ("improve", "enhance", "optimize", "optimise", "optimization", "optimisation"),
    ("page", "screen", "view"),
    ("translate", "translation", "localize", "localise", "localization", "localisation", "i18n"),
    ("prevent", "avoid"),
    ("mode", "theme"),
    ("endpoint", "route"),
    ("app", "application"),
    ("function", "func", "method"),
    ("flag", "option"),
    ("bug", "defect"),
    ("paginate", "pagination", "paging"),
    ("retry", "retries", "retried"),
)

# Actions that undo each other: a task to do one is never a duplicate of a task to do the other.
_OPPOSITES: tuple[tuple[str, str], ...] = (
    ("add", "remove"),
    ("enable", "disable"),
    ("increase", "reduce"),
    ("show", "hide"),
    ("lock", "unlock"),
    ("encrypt", "decrypt"),
    ("import", "export"),
    ("upload", "download"),
    ("serialize", "deserialize"),
    ("install", "uninstall"),
    ("subscribe", "unsubscribe"),
    ("archive", "unarchive"),
    ("pin", "unpin"),
    ("mute", "unmute"),
)

# Generic words: which of these a person picked says little about *what* the work is, so seeing one on
# one side and another on the other ("write tests" / "add tests", "bug" / "broken") is not a change of
# subject. Verbs that name the operation itself (remove, archive, rename, cache) are deliberately absent.
_WEAK_WORDS = (
    "add", "fix", "update", "write", "improve", "make", "run", "cover", "include", "expose", "return",
    "ensure", "need", "want", "try", "handle", "investigate", "ask", "send", "put", "keep", "start", "limit",
    "enforce", "bug", "broken", "issue", "problem", "wrong", "incorrect", "error", "fail", "work", "app",
)

# Weight of a generic word relative to its IDF: they are frequent in real backlogs but may not be in this
# repo's yet, and must not drive a match on their own.
_WEAK_FACTOR = 0.5
# How hard a substituted subject counts against a match. High on purpose: on the labelled pairs, no true
# duplicate survives a substituted content word that the synonym table does not know, but many hard
# non-duplicates differ in exactly one such word.
_SUBSTITUTION_WEIGHT = 3.0

_HTTP_METHOD_RE = re.compile(r"\b(get|post|put|patch|delete|head|options)\s+(?=/)", re.IGNORECASE)
_CHUNK_RE = re.compile(r"`[^`]*`|\S+")
_EDGE_PUNCT = "\"'`.,;:!?()[]{}<>*"
_VERSION_RE = re.compile(r"v?\d+(?:\.\d+)*")
_PIECE_RE = re.compile(r"v?\d+(?:\.\d+)+|[A-Za-z0-9]+")
_DOUBLE_END_RE = re.compile(r"([b-df-hj-kmnp-rtvwxz])\1$")


def _stem(word: str) -> str:
    """A deliberately small suffix stripper: plurals, -ing, -ed, -able/-ible, trailing -e.

    It only needs to send inflections of one word to the same key; it does not need to produce words.
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith(("ies", "ied")) and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("ing") and len(word) > 5:
        word = word[:-3]
        word = word[:-1] if _DOUBLE_END_RE.search(word) else word
    elif word.endswith("ed") and len(word) > 4:
        word = word[:-2]
        word = word[:-1] if _DOUBLE_END_RE.search(word) else word
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    # "collapsible" / "collapsing", but not "disable" -> "dis".
    if word.endswith(("abl", "ibl")) and len(word) >= 8:
        word = word[:-3]
    return word


def _build_synonyms() -> dict[str, str]:
    table: dict[str, str] = {}
    for group in _SYNONYM_GROUPS:
        canonical = _stem(group[0])
        for word in group:
            table[word] = canonical
            table[_stem(word)] = canonical
    return table


_SYNONYMS = _build_synonyms()
_WEAK = frozenset(_SYNONYMS.get(w, _stem(w)) for w in _WEAK_WORDS)
_OPPOSITE_OF: dict[str, frozenset[str]] = {}
for _a, _b in _OPPOSITES:
    _ka, _kb = _SYNONYMS.get(_a, _stem(_a)), _SYNONYMS.get(_b, _stem(_b))
    _OPPOSITE_OF[_ka] = _OPPOSITE_OF.get(_ka, frozenset()) | {_kb}
    _OPPOSITE_OF[_kb] = _OPPOSITE_OF.get(_kb, frozenset()) | {_ka}


def _canonical(word: str) -> str:
    return _SYNONYMS.get(word) or _SYNONYMS.get(_stem(word)) or _stem(word)


def _is_specific(chunk: str, quoted: bool) -> bool:
    """Whether a chunk names one particular thing (file, number, identifier, flag, acronym)."""
    if quoted or any(c.isdigit() for c in chunk):
        return True
    if any(c in chunk for c in "/_.#:=@") or chunk.startswith("--"):
        return True
    letters = [c for c in chunk if c.isalpha()]
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        return True
    # camelCase / PascalCase identifiers ("UserService", "userId"): upper-case after lower-case.
    return any(a.islower() and b.isupper() for a, b in itertools.pairwise(chunk))


@dataclass(frozen=True)
class Normalised:
    """A text reduced to what dedup compares."""

    tokens: tuple[str, ...]
    specific: frozenset[str]

    @property
    def key(self) -> str:
        return " ".join(self.tokens)


def normalise(text: str) -> Normalised:
    """Reduce a task text to canonical tokens and the subset of them that are specific."""
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 8 and sum(c.isupper() for c in letters) > 0.6 * len(letters):
        # Shouted text: capitals carry no signal (no acronyms, no identifiers), so read it in lower case.
        text = text.lower()
    # "GET /users" and "get /users" name the same route; mark the method literal so it is kept.
    text = _HTTP_METHOD_RE.sub(lambda m: f"`{m.group(1).lower()}` ", text)
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    tokens: list[str] = []
    specific: set[str] = set()
    for position, raw in enumerate(_CHUNK_RE.findall(text)):
        quoted = raw.startswith("`") and raw.endswith("`") and len(raw) > 1
        chunk = raw.strip(_EDGE_PUNCT)
        if not chunk:
            continue
        # A capital letter standing alone mid-sentence is a name ("feature A", "plan B"), not an article.
        letter_name = len(chunk) == 1 and chunk.isupper() and position > 0
        is_specific = letter_name or _is_specific(chunk, quoted)
        all_caps = is_specific and chunk.isalpha() and chunk.isupper()
        # camelCase stays whole ("GitHub" is not "git hub"); separators split ("test_sync_conflicts").
        for piece in _PIECE_RE.findall(chunk):
            word = piece.lower()
            if _VERSION_RE.fullmatch(word):
                # "5.0" and "5", "v2.3.0" and "2.3", "v2" and "2" name the same version.
                word = word.lstrip("v")
                while word.endswith(".0"):
                    word = word[:-2]
            elif (len(word) == 1 and not (word.isdigit() or letter_name)) or (
                word in _STOPWORDS and not (all_caps or quoted)
            ):
                continue
            # Identifier pieces keep their literal meaning ("created_at" is not "add_at"): whole-word synonyms
            # only ("k8s", "docs").
            token = _SYNONYMS.get(word) or _stem(word) if is_specific and not all_caps else _canonical(word)
            tokens.append(token)
            if is_specific:
                specific.add(token)
    return Normalised(tuple(tokens), frozenset(specific))


def _trigrams(tokens: Iterable[str]) -> frozenset[str]:
    grams: set[str] = set()
    for token in tokens:
        padded = f" {token} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return frozenset(grams)


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


@dataclass(frozen=True)
class _Doc:
    norm: Normalised
    terms: frozenset[str]
    grams: frozenset[str]


def _make_doc(text: str) -> _Doc:
    norm = normalise(text)
    terms = frozenset(norm.tokens)
    return _Doc(norm, terms, _trigrams(sorted(terms)))


# --- the index -----------------------------------------------------------------------------------------


class DedupIndex:
    """Incrementally maintained index of active task texts; answers "is this text already a task?"."""

    def __init__(
        self,
        *,
        token_threshold: float = 0.8,
        trigram_threshold: float = 0.75,
        tfidf_threshold: float = 0.7,
        postings_budget: int = 1500,
        candidate_limit: int = 50,
    ) -> None:
        self.token_threshold = token_threshold
        self.trigram_threshold = trigram_threshold
        self.tfidf_threshold = tfidf_threshold
        # Upper bound on posting entries walked per query: keeps candidate generation flat as N grows.
        self.postings_budget = postings_budget
        self.candidate_limit = candidate_limit
        self._docs: dict[int, _Doc] = {}
        self._postings: dict[str, set[int]] = {}
        self._exact: dict[str, set[int]] = {}
        self._inv_len: dict[int, float] = {}

    # -- maintenance

    def add(self, task_id: int, text: str) -> None:
        """Index `text` as task `task_id`, replacing any previous text for that id."""
        self.remove(task_id)
        doc = _make_doc(text)
        self._docs[task_id] = doc
        self._inv_len[task_id] = 1.0 / math.sqrt(max(1, len(doc.terms)))
        for term in doc.terms:
            self._postings.setdefault(term, set()).add(task_id)
        if doc.norm.tokens:
            self._exact.setdefault(doc.norm.key, set()).add(task_id)

    def remove(self, task_id: int) -> None:
        """Forget task `task_id`; a no-op when it is not indexed."""
        doc = self._docs.pop(task_id, None)
        if doc is None:
            return
        del self._inv_len[task_id]
        for term in doc.terms:
            posting = self._postings[term]
            posting.discard(task_id)
            if not posting:
                del self._postings[term]
        exact = self._exact.get(doc.norm.key)
        if exact is not None:
            exact.discard(task_id)
            if not exact:
                del self._exact[doc.norm.key]

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._docs

    # -- weights

    def _idf(self, term: str) -> float:
        # Smoothed IDF from the live document frequencies, so it tracks adds and removes exactly.
        # Generic words are discounted on top: they are frequent in real backlogs but may not be in this one.
        df = len(self._postings.get(term, ()))
        idf = math.log((len(self._docs) + 1) / (df + 1)) + 1.0
        return idf * _WEAK_FACTOR if term in _WEAK else idf

    # -- candidates

    def candidates(self, text: str, limit: int = 50) -> list[int]:
        """Ids of the indexed tasks most worth comparing with `text`, best first, at most `limit`."""
        return self._candidates(_make_doc(text), limit)

    def _candidates(self, doc: _Doc, limit: int) -> list[int]:
        if limit <= 0:
            return []
        postings = self._postings
        known = sorted((len(postings[t]), t) for t in doc.terms if t in postings)
        if not known:
            return []
        budget = self.postings_budget
        scores: dict[int, float] = {}
        spent = 0
        walked = 0
        # Rarest terms first: they are the most telling and their postings are the shortest. Walking stops
        # at the budget, so a query costs the same at 10,000 tasks as at 1,000.
        for df, term in known:
            if spent + df > budget:
                break
            idf = self._idf(term)
            get = scores.get
            for task_id in postings[term]:
                scores[task_id] = get(task_id, 0.0) + idf
            spent += df
            walked += 1
        if not scores:
            # Every query term is common: intersect postings (set ops run in C) until the pool fits.
            pool = postings[known[0][1]]
            for _, term in known[1:]:
                narrowed = pool & postings[term]
                if not narrowed:
                    break
                pool = narrowed
                if len(pool) <= budget:
                    break
            scores = dict.fromkeys(sorted(pool)[:budget], 0.0)
        for _, term in known[walked:]:
            # Terms past the budget only re-rank what the rarer ones found.
            posting = postings[term]
            idf = self._idf(term)
            for task_id in posting.intersection(scores):
                scores[task_id] += idf
        # Normalise by length so long texts that mention everything do not crowd out close matches.
        inv_len = self._inv_len
        ranked = [(score * inv_len[task_id], -task_id) for task_id, score in scores.items()]
        # Ties broken by id, so the answer depends on the index's contents, never on its history.
        return [-neg_id for _, neg_id in heapq.nlargest(limit, ranked)]

    # -- matching

    def find_duplicate(self, text: str) -> DedupMatch | None:
        """The best existing task `text` duplicates, or None. Layers are tried cheapest first."""
        doc = _make_doc(text)
        if not doc.terms:
            return None
        exact = self._exact.get(doc.norm.key)
        if exact:
            return DedupMatch(min(exact), "exact", 1.0)
        pairs = [(task_id, self._docs[task_id]) for task_id in self._candidates(doc, self.candidate_limit)]
        if not pairs:
            return None
        weights = _Weights(self._idf)
        fitness: dict[int, float] = {}

        def fit(task_id: int, other: _Doc) -> float:
            # Vetoes and the substitution discount cost more than the raw scores, so they are computed
            # only for candidates a layer would otherwise accept, once each.
            value = fitness.get(task_id)
            if value is None:
                value = 0.0 if _vetoed(doc, other) else _substitution_discount(doc, other, weights)
                fitness[task_id] = value
            return value

        layers: tuple[tuple[str, float, Callable[[_Doc], float]], ...] = (
            ("token", self.token_threshold, lambda o: _jaccard(doc.terms, o.terms)),
            ("trigram", self.trigram_threshold, lambda o: _jaccard(doc.grams, o.grams)),
            ("tfidf", self.tfidf_threshold, lambda o: _cosine(doc, o, weights)),
        )
        for layer, threshold, raw_score in layers:
            top: tuple[float, int] | None = None
            for task_id, other in pairs:
                raw = raw_score(other)
                # A discount never raises a score, so a raw score that cannot win needs no discount.
                if raw < threshold or (top is not None and raw < top[0]):
                    continue
                score = raw * fit(task_id, other)
                # Ties go to the older (lower) id, so the answer does not depend on candidate order.
                if score >= threshold and (top is None or (score, -task_id) > (top[0], -top[1])):
                    top = (score, task_id)
            if top is not None:
                return DedupMatch(top[1], layer, min(1.0, top[0]))
        return None

    def explain(self, text: str, task_id: int) -> dict[str, float | bool]:
        """Every layer's raw score between `text` and one indexed task (for tuning and debugging)."""
        doc, other = _make_doc(text), self._docs[task_id]
        weights = _Weights(self._idf)
        return {
            "vetoed": _vetoed(doc, other),
            "discount": _substitution_discount(doc, other, weights),
            "token": _jaccard(doc.terms, other.terms),
            "trigram": _jaccard(doc.grams, other.grams),
            "tfidf": _cosine(doc, other, weights),
        }


class _Weights(dict[str, float]):
    """Per-query memo of term weights: each term's IDF is looked up at most once per query."""

    def __init__(self, idf: Callable[[str], float]) -> None:
        super().__init__()
        self._idf = idf

    def __missing__(self, term: str) -> float:
        value = self[term] = self._idf(term)
        return value


def _vetoed(a: _Doc, b: _Doc) -> bool:
    """True when the texts provably name different work, whatever their overlap."""
    only_a = a.terms - b.terms
    only_b = b.terms - a.terms
    if only_a & a.norm.specific and only_b & b.norm.specific:
        return True
    for term in only_a:
        opposite = _OPPOSITE_OF.get(term)
        if opposite is not None and opposite & only_b:
            return True
    return False


def _substitution_discount(a: _Doc, b: _Doc, idf: Mapping[str, float]) -> float:
    """Factor in (0,1]: how much of the pair is a substituted subject rather than added context.

    Extra words on one side only are usually context ("... to the API"); distinct content words on both
    sides usually mean a different subject ("settings page" vs "login page"). The smaller side's unmatched
    IDF mass (generic words and near-identical spellings excluded) is that substitution, weighed
    _SUBSTITUTION_WEIGHT times against the shared mass.
    """
    shared = sum(idf[t] for t in a.terms & b.terms)
    if shared == 0.0:
        return 0.0
    only_a = [t for t in a.terms - b.terms if t not in _WEAK]
    only_b = [t for t in b.terms - a.terms if t not in _WEAK]
    if not only_a or not only_b:
        return 1.0
    # Inflections the stemmer missed ("submission" / "submit") are the same word, not a substitution.
    paired = {t for t in only_a for u in only_b if _same_root(t, u)}
    paired |= {u for u in only_b for t in only_a if _same_root(t, u)}
    mass_a = sum(idf[t] for t in only_a if t not in paired)
    mass_b = sum(idf[t] for t in only_b if t not in paired)
    return shared / (shared + _SUBSTITUTION_WEIGHT * min(mass_a, mass_b))


def _same_root(a: str, b: str) -> bool:
    # A long shared prefix: "submission" / "submit", "storage" / "stored" is too short to tell.
    if a[:5] != b[:5] or not (a.isalpha() and b.isalpha()):
        return False
    shorter = min(len(a), len(b))
    if shorter < 5:
        return False
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    return common >= 5 and common >= 0.7 * shorter


def _cosine(a: _Doc, b: _Doc, idf: Mapping[str, float]) -> float:
    shared = sum(idf[t] ** 2 for t in a.terms & b.terms)
    if shared == 0.0:
        return 0.0
    norm_a = math.sqrt(sum(idf[t] ** 2 for t in a.terms))
    norm_b = math.sqrt(sum(idf[t] ** 2 for t in b.terms))
    return shared / (norm_a * norm_b)
