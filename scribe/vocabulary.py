"""The team vocabulary as the models read it, and words learnt from people's corrections.

The vocabulary (names, products, jargon) is stored by `scribe.storage` (`vocabulary`,
`session_vocabulary`); every lane asks `Storage.vocabulary_for(session_id)` and hands the
words to its backend as an input of `Transcriber.transcribe(audio, vocabulary=...)`: the
local models get them as Whisper's prompt, Gemini as a line of its instruction.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from scribe.core import Segment, VocabularyTerm, Word, words_text

T = TypeVar("T")

PROMPT_CHARS = 500
"""About 150 Whisper tokens: the prompt stays well inside the 223 tokens Whisper reads (it
drops the oldest beyond that), and the earliest terms, the session's own and the newest,
are the ones kept."""


def whisper_prompt(terms: Sequence[str]) -> str:
    """'Siobhan, DuckDB, Kubeflow.': the terms in priority order, as many as fit."""
    kept: list[str] = []
    length = 0
    for term in terms:
        if length + len(term) + 2 > PROMPT_CHARS:
            break
        kept.append(term)
        length += len(term) + 2
    return ", ".join(kept) + "." if kept else ""


def keep_term_changes(plain: str, biased: str, terms: Sequence[str]) -> str:
    """`plain` (decoded without the vocabulary) with only those of `biased`'s changes that
    write a term: a list of names read before decoding also nudges ordinary words
    ("into" -> "until"), and those changes are dropped. Words are compared ignoring case
    and punctuation; where they agree, `plain`'s spelling stays."""
    return " ".join(_keep_changes(plain.split(), biased.split(), terms, str))


CONFIDENCE_SLACK = 0.0
"""How far (in mean log-probability) the decode with the vocabulary may be below the decode
without it over a stretch for its terms still to be taken there (BENCHMARKS.md "Team vocabulary")."""


def keep_term_segments(plain: list[Segment], biased: list[Segment], terms: Sequence[str],
                       slack: float | None = CONFIDENCE_SLACK) -> list[Segment]:
    """The segments of a decode without the vocabulary, where the decode with it wrote a term
    and is not less sure of that stretch than the plain one (`slack`; None: any stretch)
    replaced by `keep_term_changes` of the two over the same stretch of time (overlapping
    segments of both decodes form one stretch; timed words are merged the same way, each
    kept word with its own time). Without any term written, `plain` as it is."""
    if not any(holds_term(s.text, terms) for s in biased):
        return plain
    merged: list[Segment] = []
    unbiased = {id(s) for s in plain}
    for group in _overlapping(plain, biased):
        ours = [s for s in group if id(s) in unbiased]
        theirs = [s for s in group if id(s) not in unbiased]
        if not any(holds_term(s.text, terms) for s in theirs) or not _as_sure(theirs, ours, slack):
            merged += ours
            continue
        words: list[Word] = []
        if all(s.words for s in group):
            words = _keep_changes([w for s in ours for w in s.words], [w for s in theirs for w in s.words], terms,
                                  lambda w: w.text.strip())
            text = words_text(words)
        else:
            text = keep_term_changes(" ".join(s.text for s in ours), " ".join(s.text for s in theirs), terms)
        merged.append(Segment(start=min(s.start for s in group), end=max(s.end for s in group), text=text,
                              confidence=_least(s.confidence for s in group),
                              no_speech_prob=_least(s.no_speech_prob for s in group), words=words))
    return [s for s in merged if s.text.strip()]


def _keep_changes(before: list[T], after: list[T], terms: Sequence[str], text: Callable[[T], str]) -> list[T]:
    """`before`'s words, with `after`'s where the two differ and `after`'s words write a term."""
    matcher = difflib.SequenceMatcher(a=[_key(text(w)) for w in before], b=[_key(text(w)) for w in after],
                                      autojunk=False)
    kept: list[T] = []
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        changed = op != "equal" and holds_term(" ".join(text(w) for w in after[b0:b1]), terms)
        kept += after[b0:b1] if changed else before[a0:a1]
    return kept


def _as_sure(biased: list[Segment], plain: list[Segment], slack: float | None) -> bool:
    """Whether the biased decode's least sure segment is no more than `slack` below the plain
    one's. A name the list put into speech that holds none is decoded against the sound, so the
    model is less sure of it than of the words it replaced; a term it heard is not."""
    least_biased, least_plain = _least(s.confidence for s in biased), _least(s.confidence for s in plain)
    if slack is None or not least_biased or not least_plain:
        return True
    return math.log(least_biased) >= math.log(least_plain) - slack


def holds_term(text: str, terms: Sequence[str]) -> bool:
    """Whether `text` writes one of `terms` as whole words (any case)."""
    return any(re.search(rf"(?<!\w){re.escape(t)}(?!\w)", text, re.IGNORECASE) for t in terms if t.strip())


def _key(word: str) -> str:
    return re.sub(r"[^\w]", "", word.lower())


def _least(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _overlapping(plain: list[Segment], biased: list[Segment]) -> list[list[Segment]]:
    """Both decodes' segments in time order, grouped where they overlap in time."""
    groups: list[list[Segment]] = []
    end = float("-inf")
    for segment in sorted([*plain, *biased], key=lambda s: (s.start, s.end)):
        if groups and segment.start < end:
            groups[-1].append(segment)
        else:
            groups.append([segment])
        end = max(end, segment.end) if len(groups[-1]) > 1 else segment.end
    return groups


def gemini_instruction(terms: Sequence[str]) -> str:
    """The line added to Gemini's instruction (empty without terms)."""
    prompt = whisper_prompt(terms)
    if not prompt:
        return ""
    return ("Names and terms this team uses; when you hear one, spell it exactly like this: "
            f"{prompt[:-1]}.")


@dataclass
class Suggestion:
    """A word a person wrote over what the machine heard: maybe a term to keep."""

    term: str
    heard: str


_WORD = re.compile(r"[\w'’.+#-]+", re.UNICODE)


def suggestions(machine_text: str, corrected: str, known: Sequence[str] = ()) -> list[Suggestion]:
    """Words a correction put in place of misheard ones that look like names or jargon (a
    capital other than the line's first letter, a digit, or mixed case) and are not in `known` yet.
    Ordinary fixes ('there' -> 'their', casing, punctuation) suggest nothing."""
    before = [w.strip(".'’-") for w in _WORD.findall(machine_text)]
    after = [w.strip(".'’-") for w in _WORD.findall(corrected)]
    have = {k.lower() for k in known}
    found: dict[str, Suggestion] = {}
    matcher = difflib.SequenceMatcher(a=[w.lower() for w in before], b=[w.lower() for w in after], autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op != "replace":
            continue
        words = [w for w in after[b0:b1] if w]
        phrase = " ".join(words)
        named = any(_looks_like_a_name(w, first=b0 + n == 0) for n, w in enumerate(words))
        if not words or len(words) > 3 or phrase.lower() in have or not named:
            continue
        found.setdefault(phrase.lower(), Suggestion(phrase, " ".join(before[a0:a1])))
    return list(found.values())


def correction_suggestions(storage: Any, limit: int = 200) -> list[tuple[Suggestion, str]]:
    """(suggestion, session id) from the newest corrections people saved, for terms the
    vocabulary does not hold yet; each term once."""
    known = [t.term for t in storage.list_vocabulary()]
    found: dict[str, tuple[Suggestion, str]] = {}
    for row in storage.recent_corrections(limit):
        for suggestion in suggestions(row["machine_text"], row["corrected"], known):
            found.setdefault(suggestion.term.lower(), (suggestion, row["session_id"]))
    return list(found.values())


def _looks_like_a_name(word: str, *, first: bool) -> bool:
    """A capital (not only the one a line starts with), a digit, or mixed case."""
    capital = word[:1].isupper() and not first
    return (capital or any(c.isdigit() for c in word) or any(c.isupper() for c in word[1:])) \
        and any(c.isalpha() for c in word)


def term_json(term: VocabularyTerm) -> dict[str, Any]:
    """A term as the API and `vocabulary --json` show it."""
    return {"term": term.term, "source": term.source, "detail": term.detail,
            "created_by": term.created_by, "created_at": term.created_at}
