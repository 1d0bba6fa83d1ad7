"""The team vocabulary as the models read it, and words learnt from people's corrections.

The vocabulary (names, products, jargon) is stored by `scribe.storage` (`vocabulary`,
`session_vocabulary`); every lane asks `Storage.vocabulary_for(session_id)` and hands the
words to its backend as an input of `Transcriber.transcribe(audio, vocabulary=...)`: the
local models get them as Whisper's prompt, Gemini as a line of its instruction.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Sequence

from scribe.core import VocabularyTerm

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
