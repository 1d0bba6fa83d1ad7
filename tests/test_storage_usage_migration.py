"""The skip_reason migration on an old database, and per-session token usage."""

from __future__ import annotations

import time

import duckdb

from scribe.core import ChunkRow, Usage
from scribe.storage import Storage
from scribe.storage.migrations import _m1_initial


def test_a_version_1_database_gains_skip_reason_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR, applied_at DOUBLE)")
    _m1_initial(con)
    con.execute("INSERT INTO schema_version VALUES (1, 'initial schema', 0)")
    con.execute("""INSERT INTO chunks (session_id, seq, start_ms, end_ms, start_sample, end_sample, audio_path,
        status) VALUES ('s', 0, 0, 1000, 0, 16000, 'a.flac', 'done')""")
    con.close()
    store = Storage(path)
    assert store.schema_version() >= 2
    assert store.get_chunk("s", 0).skip_reason is None and store.get_chunk("s", 0).status == "done"
    store.close()


def test_session_usage_groups_tokens_by_backend_and_model(storage):
    session = storage.create_session(title="t", source="cli", backend="gemini", model="gemini-2.5-flash",
                                     chunk_seconds=1, chunk_policy="fixed:1")
    for seq, (backend, usage) in enumerate([("gemini", Usage(100, 10)), ("gemini", Usage(50, 5)),
                                            ("local", Usage())]):
        storage.insert_chunk(ChunkRow(session.id, seq, seq * 1000, seq * 1000 + 1000, seq * 16000,
                                      seq * 16000 + 16000, f"{seq}.flac", "pending"))
        storage.claim_chunk(session.id, seq, backend=backend, model=f"{backend}-m", now=time.time())
        storage.save_segments(session.id, seq, [], finished_at=time.time(), usage=usage)
    storage.insert_chunk(ChunkRow(session.id, 3, 3000, 4000, 48000, 64000, "3.flac", "pending"))
    storage.claim_chunk(session.id, 3, backend="gemini", model="gemini-m", now=time.time())
    storage.save_silent_chunk(session.id, 3, finished_at=time.time())
    rows = {r["backend"]: r for r in storage.session_usage(session.id)}
    assert (rows["gemini"]["chunks"], rows["gemini"]["input_tokens"], rows["gemini"]["output_tokens"]) == (3, 150, 15)
    assert rows["gemini"]["silent_chunks"] == 1 and rows["gemini"]["audio_seconds"] == 3.0
    assert rows["local"]["input_tokens"] == 0
