"""DuckDB storage: the schema, its migrations, and every query the app runs.

One `Storage` owns the process's single DuckDB connection (DuckDB allows one
writing process per file). Each thread reads through its own cursor; writes are
serialised by a lock and run inside `transaction()`, so a chunk's segments and
its status change commit together or not at all.

Times are epoch seconds (DOUBLE) for arithmetic on the chunk timeline;
positions in a session are milliseconds (`*_ms`) and exact samples (`*_sample`).

The queries are grouped by table, one module each (`sessions`, `chunks`,
`segments` with edits and speaker names, `speakers`, `summaries`, `lab_runs`,
`webhook_events`, `analytics`, voice `profiles`, `vocabulary`, `voice_windows`, `accounts`: people,
shares, tokens, audit), on the connection in `database`; `Storage`
composes them. Every public name is imported from here.
"""

from __future__ import annotations

from scribe.core import (
    CHUNK_STATUSES,
    FINAL,
    LIVE,
    SESSION_STATUSES,
    ChunkRow,
    SegmentRow,
    SessionRow,
    SpeakerRow,
    SummaryRow,
)
from scribe.errors import NotFoundError, ScribeError
from scribe.storage.accounts import AccountQueries, AuditRow, TokenRow, UserRow
from scribe.storage.analytics import AnalyticsQueries
from scribe.storage.chunks import ChunkQueries
from scribe.storage.lab_runs import LabRunQueries
from scribe.storage.migrations import MIGRATIONS
from scribe.storage.profiles import ProfileQueries
from scribe.storage.segments import SPEAKER_JOIN, SPEAKER_NAME, SegmentQueries, segments_from_backend
from scribe.storage.sessions import NO_SPEECH_SQL, SessionQueries, new_session_id
from scribe.storage.speakers import MAX_EXPECTED_SPEAKERS, SpeakerQueries, check_expected_speakers
from scribe.storage.summaries import SummaryQueries
from scribe.storage.vocabulary import VocabularyQueries
from scribe.storage.voice_windows import VoiceWindowQueries
from scribe.storage.webhook_events import WebhookEventQueries


class Storage(SessionQueries, ChunkQueries, SegmentQueries, SpeakerQueries, SummaryQueries,
              LabRunQueries, WebhookEventQueries, AnalyticsQueries, ProfileQueries, VocabularyQueries,
              VoiceWindowQueries, AccountQueries):
    """The one owner of the DuckDB file. Safe to share between threads."""


__all__ = [
    "AuditRow", "CHUNK_STATUSES", "FINAL", "LIVE", "MAX_EXPECTED_SPEAKERS", "MIGRATIONS", "NO_SPEECH_SQL",
    "SESSION_STATUSES", "SPEAKER_JOIN", "SPEAKER_NAME", "ChunkRow", "NotFoundError", "ScribeError", "SegmentRow",
    "SessionRow", "SpeakerRow", "Storage", "SummaryRow", "TokenRow", "UserRow", "check_expected_speakers",
    "new_session_id", "segments_from_backend",
]
