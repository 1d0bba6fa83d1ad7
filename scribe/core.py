"""The value types every layer shares: what a backend returns and the rows storage returns.

This module is the bottom floor: it imports nothing from scribe, so storage, the
backends, the guards and the pages may all depend on it without depending on
each other.
"""

from __future__ import annotations

import hashlib
import math
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence


# -- what a backend returns ---------------------------------------------------
@dataclass(frozen=True)
class Word:
    """One recognised word and when it was said, in seconds. `text` is as the model wrote
    it (Whisper's words carry their leading space), so joining a segment's words gives its text."""

    start: float
    end: float
    text: str

    def shifted(self, seconds: float) -> "Word":
        return Word(max(0.0, self.start + seconds), max(0.0, self.end + seconds), self.text)


def words_text(words: Sequence[Word]) -> str:
    """The text the words spell, spaced as the model wrote them."""
    return "".join(w.text for w in words).strip()


@dataclass
class Segment:
    """One piece of recognised speech. Times are seconds from the start of the audio given."""

    start: float
    end: float
    text: str
    speaker: str | None = None
    confidence: float | None = None
    """Mean token probability (0..1) where the backend reports one."""
    no_speech_prob: float | None = None
    flags: list[str] = field(default_factory=list)
    """Doubts about this segment (e.g. `clamped`, `low_confidence`, `hallucination`)."""
    words: list[Word] = field(default_factory=list)
    """Its words with their times, where the backend gives them (local Whisper; not Gemini)."""

    def shift(self, seconds: float) -> None:
        """Move the segment and its words by `seconds` (never before 0)."""
        self.start, self.end = max(0.0, self.start + seconds), max(0.0, self.end + seconds)
        self.words = [w.shifted(seconds) for w in self.words]


@dataclass
class Usage:
    """What one backend call cost: tokens for metered APIs, zero for local models."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class DecodeOptions:
    """How a caller asked one session's audio to be decoded, beyond the server's settings (the
    OpenAI API's `language`, `prompt` and `temperature`). The default asks nothing: every lane
    then decodes exactly as configured."""

    language: str | None = None
    """An ISO 639-1 code for a multilingual model (None: the server's SCRIBE_LANGUAGE)."""
    prompt: str = ""
    """Text the model reads before the audio (Whisper's initial prompt): spellings, context."""
    temperature: float | None = None
    """The decode's (first) sampling temperature (None: the backend's default)."""

    def asked(self) -> bool:
        return self != DecodeOptions()


@dataclass(frozen=True)
class PackedWindows:
    """One chunk's voice windows (`scribe.speakers.Windows`) in plain values: as the
    `voice_windows` table stores them and as a worker sends them (`scribe.speakers.pack_windows`
    and `unpack_windows` convert). Frames are 10 ms, ranges are [start, end) flat pairs."""

    offset_ms: int
    """Where the chunk starts in its session."""
    frames: int
    """10 ms frames in the chunk: the length of its speech mask."""
    speech: list[int]
    """The speech frames as runs: [start, end, start, end, ...]."""
    spans: list[int]
    """Each window's frames: [start, end, ...], one pair per embedding."""
    embeddings: bytes
    """One 256-value float32 row (little-endian) per window: exact, so labels from stored
    windows are the labels from the audio."""


@dataclass
class Transcription:
    """One backend call's answer: its segments, what the call cost, and the model that answered.

    Returned as one value, so a call's tokens can never be read from another call
    running at the same time on another thread.
    """

    segments: list[Segment]
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    """The model that answered, when the backend knows better than its configured name
    (a remote worker); None means the transcriber's own `model`."""
    voices: PackedWindows | None = None
    """The voice windows of the chunk's own audio, when the backend was asked for them and
    measured them (a remote worker); None: the speaker labeler measures them itself."""
    silent: bool = False
    """The backend was asked to check the chunk's own audio for speech first (a remote worker)
    and found none, so nothing was transcribed: the chunk is stored as a silent one."""


# -- the rows storage returns -------------------------------------------------
SESSION_STATUSES = ("recording", "interrupted", "stopped", "done")
CHUNK_STATUSES = ("pending", "processing", "done", "failed")
LIVE, FINAL = "live", "final"
"""A session's two transcripts: the chunk lane's, and the final pass's re-decode."""


@dataclass
class SessionRow:
    id: str
    title: str
    source: str
    status: str
    backend: str
    model: str
    chunk_seconds: float
    chunk_policy: str
    created_at: float
    ended_at: float | None = None
    duration_ms: int = 0
    owner_id: str = "local"
    """Who recorded or uploaded it (`scribe.identity`: issuer|subject, or `local`)."""
    visibility: str = "private"
    """private, team or shared (`scribe.access`)."""


@dataclass
class ChunkRow:
    session_id: str
    seq: int
    start_ms: int
    end_ms: int
    start_sample: int
    end_sample: int
    audio_path: str
    status: str
    attempts: int = 0
    error: str | None = None
    captured_at: float | None = None
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    backend: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    skip_reason: str | None = None
    """Why the backend was not called (`silence`: the speech check found no speech)."""


@dataclass
class SegmentRow:
    session_id: str
    seq: int
    idx: int
    start_ms: int
    end_ms: int
    text: str
    speaker: str | None = None
    confidence: float | None = None
    no_speech_prob: float | None = None
    flags: list[str] = field(default_factory=list)
    transcript: str = LIVE
    speaker_id: int | None = None
    """The session's speaker (speakers table); reads put that speaker's name in `speaker`."""
    machine_text: str | None = None
    """What the backend wrote, when a person corrected `text` (None: `text` is the machine's)."""
    words: list[Word] = field(default_factory=list)
    """The machine's words with their times in seconds of the session (empty when the backend
    gave none); stored in `segments.words`. A person's correction does not change them."""

    @property
    def edited(self) -> bool:
        return self.machine_text is not None


def default_speaker_name(speaker_id: int) -> str:
    """The name of a session's speaker nobody has named: "Speaker N"."""
    return f"Speaker {speaker_id}"


@dataclass
class SpeakerRow:
    """One voice in a session: `id` 1..N, a name shown everywhere, its voice centroid."""

    session_id: str
    id: int
    name: str
    centroid: list[float] = field(default_factory=list)
    seconds: float = 0.0
    profile_id: str | None = None
    """The voice profile this speaker was recognised as (or tied to by a person), if any."""
    profile_by: str | None = None
    """'auto' (recognised; re-checked on relabel), 'person' (tied by a person) or 'refused'
    (a person undid a match: no profile names this speaker again)."""


@dataclass
class VoiceProfile:
    """A named voice kept across sessions: the unit mean of its speech's voice windows."""

    id: str
    name: str
    embedding: list[float]
    seconds: float
    recordings: int
    created_by: str | None
    created_at: float
    updated_at: float


@dataclass
class VocabularyTerm:
    """A word the team uses (a name, product, jargon) and where it came from."""

    term: str
    source: str
    """'typed' (the vocabulary page, CLI or API) or 'correction' (suggested by an edit, accepted)."""
    detail: str | None
    created_by: str | None
    created_at: float


@dataclass
class SummaryRow:
    session_id: str
    version: int
    created_at: float
    backend: str
    model: str | None
    text: str
    key_points: list[Any] = field(default_factory=list)
    action_items: list[Any] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def one_line(text: str) -> str:
    """`text` as a stored title is kept: one line, runs of whitespace and control characters
    (newlines, tabs, NUL) folded to one space, ends trimmed, and lone surrogates (which no
    database can store as UTF-8) replaced. Exports and pages then never meet a title that
    starts a new Markdown block, VTT cue or SRT entry."""
    text = "".join(" " if unicodedata.category(c) == "Cc" else "\ufffd" if unicodedata.category(c) == "Cs"
                   else c for c in text)
    return " ".join(text.split())


def database_id(path: str | os.PathLike[str]) -> str:
    """A database file's identity for `/api/health`: lets the CLI check that an app serves the file it
    means (`cli_remote.connect`) without the API telling callers where the server keeps its data."""
    return hashlib.sha256(str(Path(path).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) by linear interpolation between the two nearest ranks:
    numpy's default, pandas' `quantile` and DuckDB's `quantile_cont` agree with it. The one
    definition the CLI's timing line and the Analytics page report (storage's per-session
    partial-lag figures are `quantile_cont` in SQL, the same definition, checked by a test);
    NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = q / 100 * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
