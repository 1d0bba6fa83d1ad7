"""Meeting summaries: a local extractive one (no network, no key) and a Gemini one.

Local: the transcript is cut into sentences that keep the time and segment they
start in; YAKE (statistical keyword extraction, stopword lists bundled in the
package, nothing downloaded) picks keywords; sentences are ranked by the
keywords they carry and the top ones, in meeting order, form the overview and
key points; only whole sentences are used (a piece cut off by an interruption is
not). Decisions and action items are found by the phrasing people use for them
("we agreed", "Alice will ... by Friday", "can you ...") and keep the time they
were said, the owner (written as the speakers' names are) and a due phrase where
one is stated; a task said twice by the same owner is listed once.

Gemini: the transcript goes out as `[mm:ss] Speaker: text` lines with a JSON
response schema (title, overview, keywords, key points, decisions, action items
with owner, due and time) through `scribe.gemini_client`; each cited time is
snapped back to the segment said then, so every item links to a real moment.

Both are stored as versions of the session's summary (`save_summary`).

Every function here runs on the caller's thread; `progress(fraction, message)`
is called on that same thread.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Sequence

from scribe import backends
from scribe.access import backends_open_to
from scribe.config import Settings
from scribe.core import SegmentRow, SummaryRow
from scribe.errors import AccessDeniedError, ScribeError
from scribe.export import cited_transcript
from scribe.identity import Principal
from scribe.storage import Storage
from scribe.timelabels import parse_mmss

Progress = Callable[[float, str], object]
"""Told (fraction done, message); whatever it returns is ignored (a page may hand in a widget call)."""

LOCAL_MODEL = "yake-extractive-1"
MAX_ACTIONS = 15
MAX_DECISIONS = 10
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_DECISION = re.compile(
    r"\b(we|i|they|everyone|the team)\s+(have\s+|all\s+)?(decided|agreed|settled on|chose|concluded)\b"
    r"|\b(decision is|decided to|agreed to|agreed that|approved|signed off|let's go with|we'll go with"
    r"|going with|final answer)\b", re.I)
_UNDECIDED = re.compile(r"\b(not (yet )?(decided|agreed)|haven't (decided|agreed)|undecided|no decision)\b", re.I)
_OWNER_NAME = r"([A-Z][a-z]+)"
_COMMIT_NAMED = re.compile(_OWNER_NAME + r"\s+(will|'ll|is going to|needs to|has to|should|agreed to|can)\s+\w+")
_COMMIT_SELF = re.compile(r"\b(I will|I'll|I am going to|I'm going to|let me|I need to"
                          r"|I can (take|give|do|handle|send|prepare|write|share|look into|follow up|set up))\b",
                          re.I)
_COMMIT_WE = re.compile(r"\b(we will|we'll|we need to|we have to|we should|we must)\s+\w+"
                        r"|\blet's\s+(?!start|begin|go\b|see\b|move on|continue|get started|wrap)\w+", re.I)
_REQUEST = re.compile(r"\b(can|could|would) you\b|\bplease\b", re.I)
_ASKED = re.compile(r"\b(can|could|would) you\b.*\?\s*$", re.I)
_ACTION_WORDS = re.compile(r"\b(action item|to-?do|follow[- ]up|take care of|owner|deadline)\b", re.I)
_VOCATIVE = re.compile(r"^" + _OWNER_NAME + r",|,\s*" + _OWNER_NAME + r"\s*[?.!]?$")
_DUE = re.compile(
    r"\b(by|before|until|on|due)\s+((next|this)\s+)?(monday|tuesday|wednesday|thursday|friday|saturday|sunday"
    r"|tomorrow|tonight|end of (the )?(day|week|month|quarter|sprint)|eod|eow|next week|the \d+(st|nd|rd|th)"
    r"|(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]* \d{1,2}(st|nd|rd|th)?)\b"
    r"|\b(tomorrow|tonight|next week|this week|today)\b", re.I)
_FILLERS = {"yeah", "yes", "okay", "ok", "right", "hmm", "um", "uh", "like", "well", "sure", "honestly",
            "hello", "hi", "good", "morning", "afternoon", "evening", "everyone", "joining", "today", "great",
            "actually", "basically", "really", "just", "thanks", "thank", "gonna", "kind", "sort", "stuff",
            "thing", "things", "lot", "bit"}
_NOT_NAMES = {
    "The", "This", "That", "These", "Those", "It", "We", "You", "They", "He", "She", "I", "There", "Here",
    "What", "Who", "Which", "When", "Where", "Why", "How", "So", "And", "But", "Or", "If", "Then", "Also",
    "Maybe", "Everyone", "Someone", "Nobody", "Somebody", "Everybody", "Team", "Yes", "No", "Okay", "Ok",
    "Well", "Now", "Next", "Our", "My", "Your", "Their", "Its", "One", "Each", "Either", "Neither", "Let",
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "Today", "Tomorrow",
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December", "Nothing", "Everything", "Something", "All", "Both", "Any", "Some",
}


@dataclass
class TimedItem:
    """One statement of the summary, tied to where the transcript says it."""

    text: str
    start_ms: int
    seq: int
    idx: int
    speaker: str | None = None
    owner: str | None = None
    due: str | None = None


@dataclass
class Summary:
    backend: str
    model: str
    title: str
    overview: str
    key_points: list[TimedItem] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    decisions: list[TimedItem] = field(default_factory=list)
    action_items: list[TimedItem] = field(default_factory=list)
    transcript: str = "live"
    words: int = 0
    elapsed_s: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)
    """Tokens and estimated cost for a Gemini summary; empty for a local one."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sentence:
    text: str
    start_ms: int
    seq: int
    idx: int
    speaker: str | None

    def item(self, **extra: Any) -> TimedItem:
        return TimedItem(self.text, self.start_ms, self.seq, self.idx, self.speaker, **extra)

    @property
    def complete(self) -> bool:
        """Starts like a sentence and ends with its mark: not a piece cut off by an
        interruption or a lost word."""
        text = self.text.strip().lstrip("\"'([")
        return bool(text) and (text[0].isupper() or text[0].isdigit()) and self.text.rstrip().endswith((".", "!", "?"))


def _noop(_fraction: float, _message: str) -> None:
    pass


# -- sentences ----------------------------------------------------------------
def sentences(segments: Sequence[SegmentRow]) -> list[Sentence]:
    """Sentences across segment boundaries, each with the time of the segment it starts in.

    Whisper cuts segments mid-sentence, so text is carried over until an end
    mark. A change of speaker ends a sentence, except where the new line goes on
    with a lower-case word: that is one voice's sentence that the speaker labels
    cut in two, and it stays whole (with its first speaker).
    """
    out: list[Sentence] = []
    pending: Sentence | None = None
    for seg in segments:
        if pending and seg.speaker != pending.speaker and not _continues(seg.text):
            out.append(pending)
            pending = None
        for piece in _SENTENCE_END.split(seg.text.strip()):
            if not piece:
                continue
            if pending is None:
                pending = Sentence(piece, seg.start_ms, seg.seq, seg.idx, seg.speaker)
            else:
                pending.text = f"{pending.text} {piece}"
            if piece.rstrip().endswith((".", "!", "?")):
                out.append(pending)
                pending = None
    if pending:
        out.append(pending)
    return [s for s in out if _WORD.search(s.text)]


def _continues(text: str) -> bool:
    words = _WORD.findall(text)
    return bool(words) and words[0][0].islower() and text.lstrip()[:1].isalpha()


# -- keywords and ranking -------------------------------------------------------
def keywords(text: str, top: int = 10) -> list[str]:
    """Key phrases by YAKE (lowest score first), without phrases contained in better ones."""
    import yake

    extractor = yake.KeywordExtractor(lan="en", n=2, top=top * 2, dedupLim=0.7)
    chosen: list[str] = []
    for phrase, _score in extractor.extract_keywords(text):
        lowered = phrase.lower()
        if set(lowered.split()) & _FILLERS:
            continue  # spoken fillers are frequent but say nothing about the meeting
        if any(lowered in c.lower() or c.lower() in lowered for c in chosen):
            continue
        chosen.append(phrase)
        if len(chosen) == top:
            break
    return chosen


def rank_sentences(candidates: Sequence[Sentence], phrases: Sequence[str], count: int) -> list[Sentence]:
    """The `count` best sentences in meeting order: keyword weight over sqrt(length), no near-duplicates."""
    weights = {p.lower(): 1.0 / (rank + 1) for rank, p in enumerate(phrases)}
    scored = []
    for position, sentence in enumerate(candidates):
        words = sentence.text.split()
        if not sentence.complete or not 6 <= len(words) <= 60:
            continue  # fragments and run-ons make poor summary lines
        lowered = sentence.text.lower()
        score = sum(w for p, w in weights.items() if p in lowered) / len(words) ** 0.5
        if score > 0:
            scored.append((score, position, sentence))
    chosen: list[tuple[int, Sentence]] = []
    for _score, position, sentence in sorted(scored, key=lambda t: (-t[0], t[1])):
        if all(_overlap(sentence.text, other.text) < 0.6 for _p, other in chosen):
            chosen.append((position, sentence))
        if len(chosen) == count:
            break
    return [s for _p, s in sorted(chosen, key=lambda t: t[0])]


def _overlap(a: str, b: str) -> float:
    wa, wb = set(a.lower().split()), set(b.lower().split())
    return len(wa & wb) / max(1, min(len(wa), len(wb)))


def suggest_title(phrases: Sequence[str]) -> str:
    """'Budget review and launch date' from the two best key phrases, multi-word ones preferred."""
    if not phrases:
        return "Untitled meeting"
    multi = [p.lower() for p in phrases[:8] if " " in p]
    pool = multi if len(multi) >= 2 else [p.lower() for p in phrases]
    parts = [pool[0]]
    # The second phrase must add words ("weekly planning and planning meeting" says one thing twice).
    parts += [p for p in pool[1:] if not set(p.split()) & set(parts[0].split())][:1]
    title = " and ".join(parts)
    return title[0].upper() + title[1:]


# -- decisions and action items -------------------------------------------------
def find_decisions(candidates: Iterable[Sentence]) -> list[TimedItem]:
    found = [s.item() for s in candidates
             if _DECISION.search(s.text) and not _UNDECIDED.search(s.text) and not s.text.rstrip().endswith("?")]
    return found[:MAX_DECISIONS]


def find_action_items(candidates: Iterable[Sentence]) -> list[TimedItem]:
    """Commitments and requests in whole sentences, each once, strongest first when there are
    too many, returned in time order. Owners are written the way the speakers' names are."""
    found = list(candidates)
    names = OwnerNames([s.speaker for s in found])
    scored = []
    answers: set[int] = set()  # "Yes, I can do that." is the request it answers, not a task of its own
    for position, sentence in enumerate(found):
        strength, owner = _action_strength(sentence)
        if not strength or not sentence.complete or len(sentence.text.split()) < 4 or position in answers:
            continue
        if owner is None and _ASKED.search(sentence.text):
            owner, reply = _answerer(found, position)
            answers.add(reply)
        due = _DUE.search(sentence.text)
        scored.append((strength + (1 if due else 0), position,
                       sentence.item(owner=names.canonical(owner), due=due.group(0) if due else None)))
    best = sorted(_distinct(scored), key=lambda t: (-t[0], t[1]))[:MAX_ACTIONS]
    return [item for _s, _p, item in sorted(best, key=lambda t: t[1])]


def _answerer(found: Sequence[Sentence], position: int) -> tuple[str | None, int]:
    """Who takes on a question asked of nobody by name: the other speaker whose next words
    take it on ("Yes, I can do that."), and the position of that answer (-1: nobody)."""
    asker = found[position].speaker
    for reply in range(position + 1, min(position + 3, len(found))):
        if found[reply].speaker and found[reply].speaker != asker:
            taken = _COMMIT_SELF.search(found[reply].text)
            return (found[reply].speaker, reply) if taken else (None, -1)
    return None, -1


def _distinct(scored: list[tuple[int, int, TimedItem]]) -> list[tuple[int, int, TimedItem]]:
    """One item per task: the same owner saying much the same thing again is kept once
    (the strongest, then the earliest), with a due phrase from either."""
    kept: list[tuple[int, int, TimedItem]] = []
    for entry in sorted(scored, key=lambda t: (-t[0], t[1])):
        item = entry[2]
        twin = next((k for k in kept if k[2].owner == item.owner and _overlap(k[2].text, item.text) >= 0.6), None)
        if twin is None:
            kept.append(entry)
        elif twin[2].due is None:
            twin[2].due = item.due
    return kept


class OwnerNames:
    """One spelling per person: an owner's name that differs from a speaker's or another
    owner's only by case or a letter or two ("Marcus", "Markus") is written one way, a
    speaker's name first."""

    def __init__(self, speakers: Iterable[str | None]) -> None:
        self._known = list(dict.fromkeys(s for s in speakers if s))

    def canonical(self, name: str | None) -> str | None:
        if not name or name == "team":
            return name
        for known in self._known:
            if _same_name(known, name):
                return known
        self._known.append(name)
        return name


def _same_name(a: str, b: str) -> bool:
    from difflib import SequenceMatcher

    a, b = a.lower(), b.lower()
    if a == b:
        return True
    # Only one-word names are spelled two ways by a model; "Speaker 1" and "Speaker 2" are two people.
    return (a.isalpha() and b.isalpha() and a[:1] == b[:1] and min(len(a), len(b)) >= 4
            and SequenceMatcher(None, a, b).ratio() >= 0.8)


def _action_strength(sentence: Sentence) -> tuple[int, str | None]:
    """(0 = not an action, 1 weak .. 3 explicit), and who owns it if the words say."""
    text = sentence.text
    named = [m.group(1) for m in _COMMIT_NAMED.finditer(text) if m.group(1) not in _NOT_NAMES]
    if named:
        return 3, named[0]
    if _COMMIT_SELF.search(text):
        return 3, sentence.speaker
    if _REQUEST.search(text):
        vocative = _VOCATIVE.search(text.strip())
        name = next((g for g in (vocative.groups() if vocative else ()) if g and g not in _NOT_NAMES), None)
        return 2, name
    if _ACTION_WORDS.search(text):
        return 2, None
    if _COMMIT_WE.search(text) and not text.rstrip().endswith("?"):
        return 1, "team"
    return 0, None


# -- the local summary ----------------------------------------------------------
def summarize_local(segments: Sequence[SegmentRow], *, transcript: str = "live",
                    progress: Progress = _noop) -> Summary:
    """An extractive summary from the transcript alone: no network, no key, no downloads."""
    started = time.perf_counter()
    progress(0.05, "splitting sentences")
    found = sentences(segments)
    text = " ".join(s.text for s in found)
    words = len(text.split())
    progress(0.25, "finding keywords")
    phrases = keywords(text) if words else []
    progress(0.6, "ranking sentences")
    count = min(8, max(3, len(found) // 25))
    points = rank_sentences(found, phrases, count)
    progress(0.8, "finding decisions and action items")
    summary = Summary(
        backend=OFFLINE_SUMMARIZER, model=LOCAL_MODEL, title=suggest_title(phrases),
        overview=" ".join(s.text for s in points[:3]),
        key_points=[s.item() for s in points], keywords=list(phrases),
        decisions=find_decisions(found), action_items=find_action_items(found),
        transcript=transcript, words=words)
    summary.elapsed_s = round(time.perf_counter() - started, 4)
    progress(1.0, "done")
    return summary


# -- storage ------------------------------------------------------------------
def save_summary(storage: Storage, session_id: str, summary: Summary) -> SummaryRow:
    """Store as the session's next version; earlier versions stay."""
    details = {k: v for k, v in summary.to_dict().items()
               if k not in ("backend", "model", "overview", "key_points", "action_items")}
    return storage.add_summary(session_id, backend=summary.backend, model=summary.model, text=summary.overview,
                               key_points=[asdict(i) for i in summary.key_points],
                               action_items=[asdict(i) for i in summary.action_items], details=details)


def from_row(row: SummaryRow) -> Summary:
    """A stored summary version back as a Summary."""
    d = row.details
    return Summary(
        backend=row.backend, model=row.model or "", title=d.get("title", ""), overview=row.text,
        key_points=[TimedItem(**i) for i in row.key_points], keywords=list(d.get("keywords", [])),
        decisions=[TimedItem(**i) for i in d.get("decisions", [])],
        action_items=[TimedItem(**i) for i in row.action_items], transcript=d.get("transcript", "live"),
        words=int(d.get("words", 0)), elapsed_s=float(d.get("elapsed_s", 0.0)), usage=dict(d.get("usage", {})))


# -- one entry point for pages and the CLI --------------------------------------
OFFLINE_SUMMARIZER = "local"
"""The extractive summarizer's name (stored in `summaries.backend`): offline, free, open to everyone."""
SUMMARY_BACKENDS = (OFFLINE_SUMMARIZER, backends.GEMINI)
"""Who can summarize: the offline summarizer, or the Gemini backend (its key, model and prices)."""
SUMMARY_LABELS = {OFFLINE_SUMMARIZER: "Local (offline)", backends.GEMINI: "Gemini"}


def summarizers_open_to(principal: Principal, settings: Settings) -> tuple[str, ...]:
    """The summarizers `principal` may run (the Summary page offers these; the API checks them):
    the offline one always, because it sends nothing out, needs no key and bills no one (a moment
    of the server's CPU, like an export); Gemini when its backend is open to them
    (`scribe.access.backends_open_to`), because it is billed to the server's key."""
    open_backends = backends_open_to(principal, settings)
    return tuple(s for s in SUMMARY_BACKENDS if s == OFFLINE_SUMMARIZER or s in open_backends)


def check_summarizer_allowed(principal: Principal, settings: Settings, summarizer: str) -> None:
    """AccessDeniedError for a summarizer `principal` may not run; an unknown name is left to
    `summarize_session`'s message."""
    allowed = summarizers_open_to(principal, settings)
    if summarizer in SUMMARY_BACKENDS and summarizer not in allowed:
        raise AccessDeniedError(f"the {summarizer} summarizer is not open to you here; "
                                f"you may use {', '.join(allowed)}")


def summarize_session(storage: Storage, settings: Settings, session_id: str, *, backend: str = OFFLINE_SUMMARIZER,
                      transcript: str | None = None, progress: Progress = _noop) -> tuple[Summary, SummaryRow]:
    """Summarize the transcript a reader sees (final if present) and store it as the next version."""
    from scribe.history import choose_transcript

    if backend not in SUMMARY_BACKENDS:
        raise ScribeError(f"unknown summary backend {backend!r}: use {' or '.join(SUMMARY_BACKENDS)}")
    storage.get_session(session_id)
    shown, available = choose_transcript(storage, session_id, transcript)
    if transcript and transcript not in available:
        raise ScribeError(f"session {session_id} has no {transcript} transcript")
    segments = storage.list_segments(session_id, shown)
    if not any(s.text.strip() for s in segments):
        raise ScribeError(f"session {session_id} has no transcript text to summarize yet")
    if backend == backends.GEMINI:
        summary = summarize_gemini(settings, segments, transcript=shown, progress=progress)
    else:
        summary = summarize_local(segments, transcript=shown, progress=progress)
    return summary, save_summary(storage, session_id, summary)



# -- the Gemini summary ---------------------------------------------------------
GEMINI_MAX_CHARS = 600_000
"""About 150k tokens of transcript, far below the models' context but bounding one request's cost."""
_ITEM: dict[str, Any] = {"type": "OBJECT", "properties": {
    "text": {"type": "STRING"},
    "time": {"type": "STRING", "description": "the [mm:ss] or [h:mm:ss] of the line where it is said"}},
    "required": ["text", "time"], "propertyOrdering": ["time", "text"]}
GEMINI_SCHEMA: dict[str, Any] = {
    "type": "OBJECT",
    "properties": {
        "title": {"type": "STRING", "description": "a short title for the meeting"},
        "overview": {"type": "STRING", "description": "three to five sentences"},
        "keywords": {"type": "ARRAY", "items": {"type": "STRING"}},
        "key_points": {"type": "ARRAY", "items": _ITEM},
        "decisions": {"type": "ARRAY", "items": _ITEM},
        "action_items": {"type": "ARRAY", "items": {"type": "OBJECT", "properties": {
            **_ITEM["properties"],
            "owner": {"type": "STRING", "nullable": True, "description": "who will do it, if said"},
            "due": {"type": "STRING", "nullable": True, "description": "when, if said"}},
            "required": ["text", "time"], "propertyOrdering": ["time", "text", "owner", "due"]}},
    },
    "required": ["title", "overview", "key_points", "decisions", "action_items"],
    "propertyOrdering": ["title", "overview", "keywords", "key_points", "decisions", "action_items"],
}
GEMINI_INSTRUCTION = (
    "You summarize meeting transcripts. Each transcript line starts with its time as [mm:ss] "
    "(or [h:mm:ss]) and may name the speaker. Use only what the transcript says. For every key point, "
    "decision and action item, copy the time of the line where it is said. An action item is a task "
    "someone agreed or was asked to do; give its owner and due date only when the transcript states them. "
    "Write in the language of the transcript.")


def summarize_gemini(settings: Settings, segments: Sequence[SegmentRow], *, transcript: str = "live",
                     progress: Progress = _noop, client: Any = None) -> Summary:
    """An abstractive summary from Gemini as structured JSON, each item tied back to a real segment.

    Runs on the caller's thread and blocks for one request (up to SCRIBE_GEMINI_TIMEOUT).
    Errors come back as ScribeError with the reason (key rejected, quota, timeout, bad answer).
    """
    from scribe import gemini_client

    started = time.perf_counter()
    text = cited_transcript(segments)
    if len(text) > GEMINI_MAX_CHARS:
        raise ScribeError(f"the transcript is too long for one Gemini summary ({len(text):,} characters)")
    progress(0.1, "connecting to Gemini")
    client = client or gemini_client.client_from_settings(settings)
    progress(0.2, f"waiting for {settings.gemini_model}")
    try:
        reply = gemini_client.generate_json(
            client, model=settings.gemini_model, contents=[f"Meeting transcript:\n\n{text}"],
            schema=GEMINI_SCHEMA, system_instruction=GEMINI_INSTRUCTION, temperature=0.2,
            api_key=settings.gemini_api_key)
    except ScribeError as exc:
        raise ScribeError(f"Gemini summary failed: {exc}") from None
    progress(0.9, "linking items to the transcript")
    summary = summary_from_reply(reply.data, segments, model=settings.gemini_model, transcript=transcript)
    summary.usage = {"input_tokens": reply.usage.input_tokens, "output_tokens": reply.usage.output_tokens,
                     "cost_usd": backends.estimate_cost(backends.GEMINI, settings.gemini_model, reply.usage.input_tokens,
                                                        reply.usage.output_tokens)}
    summary.elapsed_s = round(time.perf_counter() - started, 4)
    progress(1.0, "done")
    return summary


def summary_from_reply(data: Any, segments: Sequence[SegmentRow], *, model: str,
                       transcript: str = "live") -> Summary:
    """Check Gemini's JSON and turn it into a Summary whose items carry real segment times."""
    if not isinstance(data, dict) or not isinstance(data.get("overview"), str):
        raise ScribeError("Gemini's summary did not have the expected shape (no overview)")
    ordered = [s for s in segments if s.text.strip()]

    def items(name: str, with_owner: bool = False) -> list[TimedItem]:
        raw = data.get(name) or []
        if not isinstance(raw, list):
            raise ScribeError(f"Gemini's summary has a malformed {name!r} list")
        return [_timed_item(r, ordered, with_owner) for r in raw if isinstance(r, dict) and str(r.get("text", "")).strip()]

    keywords = [str(k) for k in data.get("keywords") or [] if str(k).strip()]
    words = sum(len(s.text.split()) for s in ordered)
    return Summary(backend=backends.GEMINI, model=model, title=str(data.get("title") or "").strip() or "Untitled meeting",
                   overview=data["overview"].strip(), key_points=items("key_points"), keywords=keywords,
                   decisions=items("decisions"), action_items=items("action_items", with_owner=True),
                   transcript=transcript, words=words)


def _timed_item(raw: dict, segments: Sequence[SegmentRow], with_owner: bool) -> TimedItem:
    """Snap the cited time to the segment said then; without a usable time, the segment sharing most words."""
    text = " ".join(str(raw["text"]).split())
    at_ms = parse_mmss(str(raw.get("time") or ""))
    segment = _segment_for(segments, at_ms, text)
    extra = {"owner": _clean(raw.get("owner")), "due": _clean(raw.get("due"))} if with_owner else {}
    if segment is None:
        return TimedItem(text, 0, 0, 0, **extra)
    return TimedItem(text, segment.start_ms, segment.seq, segment.idx, segment.speaker, **extra)


def _segment_for(segments: Sequence[SegmentRow], at_ms: int | None, text: str) -> SegmentRow | None:
    if not segments:
        return None
    if at_ms is not None and at_ms <= segments[-1].end_ms:
        # [mm:ss] drops the milliseconds: a line shown as [00:10] may start at 10.4 s.
        same_second = [s for s in segments if s.start_ms // 1000 == at_ms // 1000]
        if same_second:
            return max(same_second, key=lambda s: _overlap(text, s.text))
        before = [s for s in segments if s.start_ms <= at_ms]
        return before[-1] if before else segments[0]
    return max(segments, key=lambda s: _overlap(text, s.text))


def _clean(value: Any) -> str | None:
    text = " ".join(str(value).split()) if value is not None else ""
    return text if text and text.lower() not in ("null", "none", "unknown", "n/a") else None
