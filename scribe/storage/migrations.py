"""The schema as ordered migrations; `Database.migrate` applies the ones a file lacks."""

from __future__ import annotations

from typing import Callable

import duckdb


def _m1_initial(cur: duckdb.DuckDBPyConnection) -> None:
    cur.execute("""
        CREATE TABLE sessions (
            id VARCHAR PRIMARY KEY, title VARCHAR NOT NULL, source VARCHAR NOT NULL,
            status VARCHAR NOT NULL, backend VARCHAR NOT NULL, model VARCHAR NOT NULL,
            chunk_seconds DOUBLE NOT NULL, chunk_policy VARCHAR NOT NULL,
            created_at DOUBLE NOT NULL, ended_at DOUBLE, duration_ms BIGINT NOT NULL DEFAULT 0)""")
    cur.execute("""
        CREATE TABLE chunks (
            session_id VARCHAR NOT NULL, seq INTEGER NOT NULL,
            start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL,
            start_sample BIGINT NOT NULL, end_sample BIGINT NOT NULL,
            audio_path VARCHAR NOT NULL, status VARCHAR NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, error VARCHAR,
            captured_at DOUBLE, enqueued_at DOUBLE, started_at DOUBLE, finished_at DOUBLE,
            backend VARCHAR, model VARCHAR,
            input_tokens BIGINT NOT NULL DEFAULT 0, output_tokens BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (session_id, seq))""")
    cur.execute("""
        CREATE TABLE segments (
            session_id VARCHAR NOT NULL, transcript VARCHAR NOT NULL DEFAULT 'live',
            seq INTEGER NOT NULL, idx INTEGER NOT NULL,
            start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL, text VARCHAR NOT NULL,
            speaker VARCHAR, confidence DOUBLE, no_speech_prob DOUBLE, flags VARCHAR,
            PRIMARY KEY (session_id, transcript, seq, idx))""")
    cur.execute("""
        CREATE TABLE summaries (
            session_id VARCHAR NOT NULL, version INTEGER NOT NULL, created_at DOUBLE NOT NULL,
            backend VARCHAR NOT NULL, model VARCHAR, text VARCHAR NOT NULL,
            key_points VARCHAR, action_items VARCHAR, details VARCHAR,
            PRIMARY KEY (session_id, version))""")
    cur.execute("CREATE INDEX sessions_by_created ON sessions (created_at)")
    cur.execute("CREATE INDEX chunks_by_status ON chunks (status)")
    cur.execute("CREATE INDEX segments_by_session ON segments (session_id)")


def _m_chunk_skip_reason(cur: duckdb.DuckDBPyConnection) -> None:
    """Chunks stored empty without calling the backend say why."""
    cur.execute("ALTER TABLE chunks ADD COLUMN skip_reason VARCHAR")


def _m_lab_runs(cur: duckdb.DuckDBPyConnection) -> None:
    """Chunking-lab results: one row per policy run, grouped by experiment."""
    cur.execute("""
        CREATE TABLE lab_runs (
            id VARCHAR PRIMARY KEY, experiment VARCHAR NOT NULL, created_at DOUBLE NOT NULL,
            audio_label VARCHAR NOT NULL, audio_seconds DOUBLE NOT NULL, policy VARCHAR NOT NULL,
            backend VARCHAR NOT NULL, model VARCHAR NOT NULL, wer DOUBLE NOT NULL,
            chunks INTEGER NOT NULL, mean_chunk_s DOUBLE NOT NULL, latency_s DOUBLE NOT NULL,
            processing_s DOUBLE NOT NULL, calls INTEGER NOT NULL, cost_usd DOUBLE NOT NULL,
            words_lost INTEGER NOT NULL, words_duplicated INTEGER NOT NULL,
            reference_words INTEGER NOT NULL, hypothesis VARCHAR NOT NULL)""")
    cur.execute("CREATE INDEX lab_runs_by_created ON lab_runs (created_at)")


def _m_partial_decodes(cur: duckdb.DuckDBPyConnection) -> None:
    """Statistics of the partial lane (its text is never stored): one row per decode."""
    cur.execute("""
        CREATE TABLE partial_decodes (
            session_id VARCHAR NOT NULL, seq INTEGER NOT NULL, produced_at DOUBLE NOT NULL,
            audio_end_ms BIGINT NOT NULL, lag_s DOUBLE NOT NULL, decode_s DOUBLE NOT NULL,
            words INTEGER NOT NULL, coalesced INTEGER NOT NULL, paused INTEGER NOT NULL)""")
    cur.execute("CREATE INDEX partial_decodes_by_session ON partial_decodes (session_id)")


def _m_webhook_events(cur: duckdb.DuckDBPyConnection) -> None:
    """The webhook outbox: an event is stored before it is sent, so a restart resends it."""
    cur.execute("""
        CREATE TABLE webhook_events (
            id VARCHAR PRIMARY KEY, event VARCHAR NOT NULL, session_id VARCHAR NOT NULL,
            payload VARCHAR NOT NULL, created_at DOUBLE NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at DOUBLE NOT NULL, delivered_at DOUBLE, failed_at DOUBLE,
            last_error VARCHAR)""")


def _m_speakers(cur: duckdb.DuckDBPyConnection) -> None:
    """Speaker labels: the voices of each session, each segment's speaker, the expected count."""
    cur.execute("""
        CREATE TABLE speakers (
            session_id VARCHAR NOT NULL, id INTEGER NOT NULL, name VARCHAR NOT NULL,
            centroid FLOAT[], seconds DOUBLE NOT NULL DEFAULT 0,
            PRIMARY KEY (session_id, id))""")
    cur.execute("""
        CREATE TABLE diarization (
            session_id VARCHAR PRIMARY KEY, expected_speakers INTEGER,
            stage VARCHAR NOT NULL DEFAULT 'live', updated_at DOUBLE)""")
    cur.execute("ALTER TABLE segments ADD COLUMN speaker_id INTEGER")


def _m_segment_edits(cur: duckdb.DuckDBPyConnection) -> None:
    """A person's corrections, kept beside the machine text: re-transcription and the
    final pass rewrite `segments`, never this table."""
    cur.execute("""
        CREATE TABLE segment_edits (
            session_id VARCHAR NOT NULL, transcript VARCHAR NOT NULL, seq INTEGER NOT NULL,
            idx INTEGER NOT NULL, text VARCHAR NOT NULL, edited_at DOUBLE NOT NULL,
            PRIMARY KEY (session_id, transcript, seq, idx))""")


def _m_team_memory(cur: duckdb.DuckDBPyConnection) -> None:
    """A team's memory: named voices, the vocabulary, and which session speaker is which voice.

    `speakers.profile_by` says who tied a speaker to a profile: 'auto' (recognised, and
    re-checked on every relabel), 'person' (never changed by Scribe) or 'refused' (a person
    undid a match: that speaker is never named by a profile again)."""
    cur.execute("""
        CREATE TABLE voice_profiles (
            id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, embedding FLOAT[] NOT NULL,
            seconds DOUBLE NOT NULL, recordings INTEGER NOT NULL DEFAULT 1,
            created_by VARCHAR, created_at DOUBLE NOT NULL, updated_at DOUBLE NOT NULL)""")
    cur.execute("""
        CREATE TABLE vocabulary (
            key VARCHAR PRIMARY KEY, term VARCHAR NOT NULL, source VARCHAR NOT NULL,
            detail VARCHAR, created_by VARCHAR, created_at DOUBLE NOT NULL)""")
    cur.execute("""
        CREATE TABLE session_vocabulary (
            session_id VARCHAR NOT NULL, term VARCHAR NOT NULL, PRIMARY KEY (session_id, term))""")
    cur.execute("ALTER TABLE speakers ADD COLUMN profile_id VARCHAR")
    cur.execute("ALTER TABLE speakers ADD COLUMN profile_by VARCHAR")
    # Speakers a person already named keep their names: recognition never renames them.
    cur.execute("""UPDATE speakers SET profile_by = 'person'
        WHERE NOT regexp_full_match(name, 'Speaker [0-9]+')""")


def _m_accounts(cur: duckdb.DuckDBPyConnection) -> None:
    """Owners, visibility and shares of sessions; people who signed in; their API tokens; the
    audit log. Sessions and lab runs made before accounts existed belong to the local user."""
    cur.execute("DROP INDEX sessions_by_created")  # DuckDB alters no table an index depends on
    cur.execute("ALTER TABLE sessions ADD COLUMN owner_id VARCHAR DEFAULT 'local'")
    cur.execute("ALTER TABLE sessions ADD COLUMN visibility VARCHAR DEFAULT 'private'")
    cur.execute("CREATE INDEX sessions_by_created ON sessions (created_at)")
    cur.execute("CREATE INDEX sessions_by_owner ON sessions (owner_id)")
    cur.execute("DROP INDEX lab_runs_by_created")
    cur.execute("ALTER TABLE lab_runs ADD COLUMN owner_id VARCHAR DEFAULT 'local'")
    cur.execute("CREATE INDEX lab_runs_by_created ON lab_runs (created_at)")
    cur.execute("""
        CREATE TABLE users (
            id VARCHAR PRIMARY KEY, email VARCHAR NOT NULL, name VARCHAR NOT NULL DEFAULT '',
            first_seen DOUBLE NOT NULL, last_seen DOUBLE NOT NULL)""")
    cur.execute("CREATE INDEX users_by_email ON users (email)")
    cur.execute("""
        CREATE TABLE session_shares (
            session_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL, shared_by VARCHAR NOT NULL,
            shared_at DOUBLE NOT NULL, PRIMARY KEY (session_id, user_id))""")
    cur.execute("""
        CREATE TABLE api_tokens (
            id VARCHAR PRIMARY KEY, user_id VARCHAR NOT NULL, label VARCHAR NOT NULL,
            token_hash VARCHAR NOT NULL UNIQUE, created_at DOUBLE NOT NULL,
            last_used_at DOUBLE, revoked_at DOUBLE)""")
    cur.execute("""
        CREATE TABLE audit_log (
            id VARCHAR PRIMARY KEY, "at" DOUBLE NOT NULL, actor_id VARCHAR NOT NULL,
            actor VARCHAR NOT NULL, action VARCHAR NOT NULL, target VARCHAR NOT NULL,
            detail VARCHAR NOT NULL DEFAULT '')""")
    cur.execute('CREATE INDEX audit_log_by_time ON audit_log ("at")')


def _m_segment_words(cur: duckdb.DuckDBPyConnection) -> None:
    """Each segment's words with their times (JSON [[start_ms, end_ms, text], ...] in session
    time), where the backend gives them: lines are cut at speaker changes between words."""
    cur.execute("ALTER TABLE segments ADD COLUMN words VARCHAR")


def _m_session_decoding(cur: duckdb.DuckDBPyConnection) -> None:
    """How a caller asked one session to be decoded (the OpenAI API's language, prompt and
    temperature); a session without a row is decoded as the server is configured."""
    cur.execute("""
        CREATE TABLE session_decoding (
            session_id VARCHAR PRIMARY KEY, language VARCHAR, prompt VARCHAR NOT NULL DEFAULT '',
            temperature DOUBLE)""")


def _m_voice_windows(cur: duckdb.DuckDBPyConnection) -> None:
    """Each chunk's voice windows, measured once: live labels and every relabel read them
    instead of running the voice encoder over the chunk's audio again."""
    cur.execute("""
        CREATE TABLE voice_windows (
            session_id VARCHAR NOT NULL, seq INTEGER NOT NULL, offset_ms BIGINT NOT NULL,
            frames INTEGER NOT NULL, speech INTEGER[] NOT NULL, spans INTEGER[] NOT NULL,
            embeddings BLOB NOT NULL, PRIMARY KEY (session_id, seq))""")


WINDOW_PIECE_BYTES = 2000
"""The most bytes of a chunk's voice windows one `voice_window_pieces` row holds. Values this
small stay inside DuckDB's column blocks (past 4 KB a value is kept apart, and a checkpoint
then holds every such value of the table's row group in memory at once), so a checkpoint
needs no room for all of a long history's windows and DuckDB's memory can be bounded
(`database.MEMORY_LIMIT_MB`)."""


def _m_voice_window_pieces(cur: duckdb.DuckDBPyConnection) -> None:
    """Each chunk's windows move from one BLOB to rows of at most `WINDOW_PIECE_BYTES`."""
    n = WINDOW_PIECE_BYTES
    cur.execute("""
        CREATE TABLE voice_window_pieces (
            session_id VARCHAR NOT NULL, seq INTEGER NOT NULL, part INTEGER NOT NULL, data BLOB NOT NULL)""")
    cur.execute(f"""
        INSERT INTO voice_window_pieces
        SELECT session_id, seq, part, embeddings[part * {n} + 1 : (part + 1) * {n}]
        FROM (SELECT session_id, seq, embeddings,
                     unnest(range(CAST(ceil(octet_length(embeddings) / {n}) AS BIGINT))) AS part
              FROM voice_windows)""")
    cur.execute("ALTER TABLE voice_windows DROP COLUMN embeddings")


MIGRATIONS: list[tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]] = [
    ("initial schema", _m1_initial),
    ("chunks.skip_reason", _m_chunk_skip_reason),
    ("lab runs", _m_lab_runs),
    ("partial decodes", _m_partial_decodes),
    ("webhook events", _m_webhook_events),
    ("speakers", _m_speakers),
    ("segment edits", _m_segment_edits),
    ("team memory", _m_team_memory),
    ("accounts, ownership and sharing", _m_accounts),
    ("segments.words", _m_segment_words),
    ("session decoding options", _m_session_decoding),
    ("voice windows", _m_voice_windows),
    ("voice windows in pieces", _m_voice_window_pieces),
]
"""Ordered; the position (1-based) is the version recorded in `schema_version`."""
