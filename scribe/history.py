"""Session history: paged listings, the transcript a reader sees, doubts, rename, delete.

Pure library code over `Storage`; the Sessions page and the CLI call it.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from scribe.access import writable_session
from scribe.audio import encode_bytes, read_flac
from scribe.core import FINAL, LIVE, ChunkRow, SegmentRow, SessionRow, one_line
from scribe.errors import ScribeError
from scribe.final_pass import KEPT_LIVE
from scribe.identity import LOCAL, Principal
from scribe.storage import Storage

LOW_CONFIDENCE = math.exp(-1.0)
"""Whisper's own `log_prob_threshold` (-1.0) as a probability: below it a segment is doubtful."""
HIGH_NO_SPEECH = 0.6
"""Whisper's `no_speech_threshold`: above it the segment is likely invented over silence."""
MAX_TITLE_CHARS = 200


class DeleteRefusedError(ScribeError):
    """The session is still being recorded or transcribed."""


@dataclass
class SessionListing:
    session: SessionRow
    chunks: dict[str, int]
    no_speech: bool = False
    stored_ms: int = 0
    """Audio stored as chunks so far (a session being recorded has no duration yet)."""

    @property
    def duration_ms(self) -> int:
        return max(self.session.duration_ms or 0, self.stored_ms)

    @property
    def status(self) -> str:
        """The status word for a list: "no speech" for a finished session nothing was said in."""
        return NO_SPEECH if self.no_speech else self.session.status

    @property
    def total_chunks(self) -> int:
        return sum(self.chunks.values())


@dataclass
class DeleteReport:
    session_id: str
    segments: int
    chunks: int
    summaries: int
    audio_files: int
    audio_dir: Path | None


def list_page(storage: Storage, *, page: int = 1, per_page: int = 25, statuses: Sequence[str] = (),
              since: float | None = None, until: float | None = None, hide_no_speech: bool = False,
              visible_to: Principal | None = None, shared_with_me: bool = False
              ) -> tuple[list[SessionListing], int]:
    """One page of the sessions `visible_to` may read (newest first) with their chunk counts, and
    the total: two queries plus one."""
    filters: dict[str, Any] = dict(statuses=statuses, since=since, until=until, hide_no_speech=hide_no_speech,
                                   visible_to=visible_to, shared_with_me=shared_with_me)
    total = storage.count_sessions(**filters)
    rows = storage.list_sessions(limit=per_page, offset=max(0, page - 1) * per_page, **filters)
    ids = [r.id for r in rows]
    counts, stored = storage.chunk_counts_many(ids), storage.stored_audio_ms_many(ids)
    silent = storage.no_speech_sessions(ids)
    return [SessionListing(r, counts[r.id], r.id in silent, stored.get(r.id, 0)) for r in rows], total


def session_mark(storage: Storage, session_id: str) -> tuple:
    """What background work changes about one session (status, length, chunks, transcripts,
    speaker labels): a page showing it redraws when this changes."""
    session = storage.find_session(session_id)
    if session is None:
        return ()
    counts = storage.chunk_counts(session_id)
    speakers = storage.diarization_state(session_id) or {}
    return (session.status, session.duration_ms, session.title, tuple(sorted(counts.items())),
            tuple(sorted(storage.transcript_counts(session_id).items())), speakers.get("updated_at"),
            tuple((s.id, s.name) for s in storage.list_speakers(session_id)))


def listing_mark(listings: list[SessionListing]) -> tuple:
    """What background work changes about a page of the session list."""
    return tuple((item.session.id, item.session.title, item.status, item.duration_ms,
                  tuple(sorted(item.chunks.items()))) for item in listings)


def choose_transcript(storage: Storage, session_id: str, preferred: str | None = None) -> tuple[str, list[str]]:
    """(transcript to show, transcripts stored). Final wins when present unless `preferred` says otherwise."""
    counts = storage.transcript_counts(session_id)
    available = [name for name in (FINAL, LIVE) if counts.get(name)]
    if preferred in available:
        return preferred, available
    return (available[0] if available else LIVE), available


def transcript_label(name: str) -> str:
    """How pages name a transcript in a choice."""
    return {FINAL: "final (re-decoded after the session)", LIVE: "live"}.get(name, name)


def final_note(final_segments: Sequence[SegmentRow]) -> str:
    """What the final pass kept from the live transcript (empty when it kept nothing)."""
    kept = sum(1 for s in final_segments if KEPT_LIVE in s.flags)
    if not kept:
        return ""
    return (f" {kept} of {len(final_segments)} segments are the live text, kept where the re-decode "
            "was less sure of itself.")


def doubts(segment: SegmentRow) -> list[str]:
    """Why a segment may be wrong: backend flags, low confidence, likely speech over silence, loops."""
    reasons = [flag for flag in segment.flags if flag != KEPT_LIVE]  # provenance, not a doubt
    if segment.confidence is not None and segment.confidence < LOW_CONFIDENCE and "low_confidence" not in reasons:
        reasons.append("low_confidence")
    if segment.no_speech_prob is not None and segment.no_speech_prob > HIGH_NO_SPEECH:
        reasons.append("no_speech")
    words = segment.text.lower().split()
    # A decoder stuck in a loop repeats a few words many times ("thank you thank you ...").
    if len(words) >= 8 and len(set(words)) / len(words) < 0.3:
        reasons.append("repetition")
    return reasons


def check_title(title: str) -> str:
    """`title` as it will be stored (`core.one_line`); ScribeError if longer than MAX_TITLE_CHARS."""
    clean = one_line(title)
    if len(clean) > MAX_TITLE_CHARS:
        raise ScribeError(f"a session title is at most {MAX_TITLE_CHARS} characters; "
                          f"this one has {len(clean)}")
    return clean


def rename_session(storage: Storage, session_id: str, title: str) -> SessionRow:
    """Set a new title (trimmed, not empty, at most MAX_TITLE_CHARS)."""
    clean = check_title(title)
    if not clean:
        raise ScribeError("a session title cannot be empty")
    storage.get_session(session_id)
    storage.update_session(session_id, title=clean)
    return storage.get_session(session_id)


def delete_blocker(storage: Storage, session_id: str, *, queue_running: bool = True) -> str | None:
    """Why deleting now would race the recorder or the queue, or None when it is safe.

    `queue_running=False`: no transcription queue works on this database (a CLI
    command holding the file), so open chunks are leftovers, not work in progress."""
    session = storage.get_session(session_id)
    if session.status == "recording":
        return "the session is still recording; stop it first"
    if not queue_running:
        return None
    counts = storage.chunk_counts(session_id)
    busy = counts["pending"] + counts["processing"]
    if busy:
        return f"{busy} chunk(s) are still queued or being transcribed; wait for them to finish"
    return None


def session_audio_dir(audio_dir: Path, session_id: str) -> Path:
    """`<audio_dir>/<session_id>`, refusing ids that would point anywhere else."""
    root = Path(audio_dir).resolve()
    folder = (root / session_id).resolve()
    if folder.parent != root or not session_id or session_id in (".", ".."):
        raise ScribeError(f"session id {session_id!r} is not a plain folder name")
    return folder


def delete_session(storage: Storage, audio_dir: Path, session_id: str, *, force: bool = False,
                   queue_running: bool = True, actor: Principal = LOCAL) -> DeleteReport:
    """Delete a session's rows (segments, chunks, summaries, session) and its audio folder only,
    when `actor` may (`scribe.access`); the audit log records who deleted what.

    Rows go first, in one transaction: if removing files then fails, what is left
    is unreferenced audio, never rows pointing at missing files.
    """
    session = writable_session(storage, actor, session_id)
    folder = session_audio_dir(audio_dir, session_id)
    if not force and (reason := delete_blocker(storage, session_id, queue_running=queue_running)):
        raise DeleteRefusedError(f"not deleting {session_id}: {reason}")
    report = DeleteReport(session_id=session_id,
                          segments=sum(storage.transcript_counts(session_id).values()),
                          chunks=sum(storage.chunk_counts(session_id).values()),
                          summaries=len(storage.list_summaries(session_id)),
                          audio_files=0, audio_dir=None)
    storage.delete_session(session_id)
    storage.audit(actor, "delete", session_id, session.title)
    if folder.is_dir():
        report.audio_files = sum(1 for p in folder.rglob("*") if p.is_file())
        report.audio_dir = folder
        shutil.rmtree(folder)
    return report


def chunk_audio_wav(storage: Storage, session_id: str, seq: int) -> bytes:
    """One chunk's stored audio as WAV bytes (plays in every browser); AudioDecodeError if gone."""
    row = storage.get_chunk(session_id, seq)
    return encode_bytes(read_flac(Path(row.audio_path)), "WAV")


def segment_at(segments: Sequence[SegmentRow], at_ms: int) -> int | None:
    """Index of the segment playing at `at_ms` (or the last one starting before it)."""
    best = None
    for position, seg in enumerate(segments):
        if seg.start_ms <= at_ms:
            best = position
            if at_ms < seg.end_ms:
                return position
    return best if best is not None else (0 if segments else None)


NO_SPEECH = "no speech"
TRANSCRIBING = "transcribing"


def progress_status(session: SessionRow, chunks: Sequence[ChunkRow], segments: int,
                    recording: bool = False) -> str:
    """The word a page shows for a session's state, true to what is stored:

    `recording` while the microphone runs; `transcribing` while chunks wait (a stopped
    upload is not "stopped" to its user); `no speech` when everything settled and no
    chunk held words; else the stored status."""
    if recording or session.status == "recording":
        return "recording"
    if any(c.status in ("pending", "processing") for c in chunks):
        return TRANSCRIBING
    if session.status in ("done", "stopped") and chunks and not segments and \
            not any(c.status == "failed" for c in chunks):
        return NO_SPEECH
    return session.status


def session_audio_bytes(storage: Storage, session_id: str) -> bytes:
    """The whole recording, its chunks joined in session time, as FLAC bytes for one player
    (FLAC: lossless and about half the size of WAV; every current browser plays it)."""
    from scribe.final_pass import session_audio  # the final pass owns rebuilding a recording

    audio = session_audio(storage, session_id)
    if audio.size == 0:
        raise ScribeError("this session has no stored audio")
    return encode_bytes(audio, "FLAC")


def segment_start(segments: Sequence[SegmentRow], at_ms: int) -> int | None:
    """Start of the segment playing at `at_ms` (None without segments)."""
    position = segment_at(segments, at_ms)
    return segments[position].start_ms if position is not None else None
