"""Search across every stored transcript.

A query is words and "quoted phrases"; a segment matches when it holds all of
them, in any case. A bare word matches its other forms: it is reduced to its
English Snowball stem (snowballstemmer), which must start a word (`budgets`
finds "budget" and "budgeting" but not "overbudget"); a quoted phrase matches
exactly those whole words in that order, with any whitespace between them.
Segments are searched as a reader sees them, a person's edits included.

DuckDB's full-text extension would need `INSTALL fts`, a download at run time,
which this offline app cannot do; so each term becomes a cheap `ILIKE`
pre-filter (with `%` and `_` escaped) plus an RE2 regex for word boundaries,
both run inside DuckDB (`Storage.search_segments`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

from scribe.errors import ScribeError
from scribe.identity import Principal
from scribe.storage import Storage

MAX_QUERY_CHARS = 200
MAX_TERMS = 12
_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')
_RE2_SPECIAL = set(r"\.^$|?*+()[]{}")
_EDGE_PUNCTUATION = ".,;:!?()[]{}'"


class SearchQueryError(ScribeError):
    """The query is empty or too long."""


@dataclass(frozen=True)
class Term:
    text: str
    phrase: bool


@dataclass
class SearchHit:
    session_id: str
    title: str
    created_at: float
    transcript: str
    seq: int
    idx: int
    start_ms: int
    end_ms: int
    text: str
    speaker: str | None


@dataclass
class SearchPage:
    query: str
    terms: list[Term]
    hits: list[SearchHit]
    total: int
    limit: int
    offset: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.limit))


def parse_query(query: str) -> list[Term]:
    """Words and "quoted phrases"; an unclosed quote runs to the end of the query."""
    if len(query) > MAX_QUERY_CHARS:
        raise SearchQueryError(f"search query is longer than {MAX_QUERY_CHARS} characters")
    normalised = query.replace("\u201c", '"').replace("\u201d", '"')
    terms = []
    for match in _TOKEN.finditer(normalised):
        phrase, word = match.group(1), match.group(2)
        if phrase is not None:
            text = " ".join(phrase.split())
            if text:
                terms.append(Term(text, phrase=True))
        elif word.strip(_EDGE_PUNCTUATION):
            terms.append(Term(word.strip(_EDGE_PUNCTUATION), phrase=False))
    if not terms:
        raise SearchQueryError("search query is empty")
    if len(terms) > MAX_TERMS:
        raise SearchQueryError(f"search query has more than {MAX_TERMS} terms")
    return terms


@lru_cache(maxsize=1)
def _stemmer():
    return snowballstemmer.stemmer("english")


def word_root(word: str) -> str:
    """The part every form of `word` starts with: its Snowball stem, minus the final `i`
    the stemmer writes for `y` ("companies" -> "compani", but the text says "company")."""
    stem = _stemmer().stemWord(word.lower())
    if stem.endswith("i") and len(stem) > 2:
        stem = stem[:-1]
    return stem if len(stem) >= 2 else word.lower()


def like_pattern(word: str) -> str:
    """`%word%` for ILIKE with backslash as the escape character."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def regex_pattern(term: Term) -> str:
    """RE2 pattern: a word boundary before, and after too for a phrase; any whitespace inside."""
    words = term.text.split() if term.phrase else [word_root(term.text)]
    body = r"\s+".join("".join("\\" + ch if ch in _RE2_SPECIAL else ch for ch in w) for w in words)
    # RE2's \b is ASCII-only, so only assert a boundary next to an ASCII word character.
    start = r"\b" if _ascii_word(words[0][0]) else ""
    end = r"\b" if term.phrase and _ascii_word(words[-1][-1]) else ""
    return start + body + end


def _ascii_word(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def highlight(text: str, terms: list[Term]) -> list[tuple[str, bool]]:
    """`text` cut into pieces, each marked True where a term matched (what a reader looks for
    in a hit); the same patterns as the search, any case."""
    spans = sorted((m.start(), m.end()) for t in terms
                   for m in re.finditer(regex_pattern(t), text, re.IGNORECASE) if m.end() > m.start())
    pieces: list[tuple[str, bool]] = []
    at = 0
    for start, end in spans:
        if start < at:  # overlaps the previous match: extend it
            start = at
        if end <= at:
            continue
        if start > at:
            pieces.append((text[at:start], False))
        pieces.append((text[start:end], True))
        at = end
    if at < len(text):
        pieces.append((text[at:], False))
    return pieces


def search(storage: Storage, query: str, *, limit: int = 20, offset: int = 0,
           visible_to: Principal | None = None) -> SearchPage:
    """One page of hits for `query`, newest session first, then by time in the session.
    `visible_to`: only sessions that principal may read (hits and total alike)."""
    if limit < 1 or offset < 0:
        raise SearchQueryError("limit must be positive and offset not negative")
    terms = parse_query(query)
    words = sorted({w for t in terms for w in (t.text.split() if t.phrase else [word_root(t.text)])})
    rows, total = storage.search_segments(like=[like_pattern(w) for w in words],
                                          regex=[regex_pattern(t) for t in terms],
                                          limit=limit, offset=offset, visible_to=visible_to)
    return SearchPage(query=query, terms=terms, hits=[SearchHit(**r) for r in rows], total=total,
                      limit=limit, offset=offset)
