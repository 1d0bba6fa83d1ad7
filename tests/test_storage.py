import duckdb
import numpy as np
import pytest
from seed_sessions import save_chunk_windows

from scribe.core import ChunkRow, PackedWindows, SegmentRow
from scribe.errors import NotFoundError
from scribe.storage import MIGRATIONS, Storage
from scribe.storage.migrations import WINDOW_PIECE_BYTES


def _session(store: Storage, title: str, now: float) -> str:
    return store.create_session(title=title, source="upload", backend="local", model="tiny.en",
                                chunk_seconds=15, chunk_policy="pause:15", now=now).id


def test_migrations_run_once_and_are_recorded(settings):
    first = Storage(settings.db)
    assert first.schema_version() == len(MIGRATIONS)
    first.close()
    again = Storage(settings.db)  # reopening applies nothing twice
    assert again.schema_version() == len(MIGRATIONS)
    assert again.cursor().execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    again.close()


def test_session_list_is_newest_first_and_pages_stably(storage):
    ids = [_session(storage, f"s{n}", now=1000.0 + n // 2) for n in range(9)]  # ties on purpose
    pages = [storage.list_sessions(limit=4, offset=o) for o in (0, 4, 8)]
    seen = [s.id for page in pages for s in page]
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    assert [s.created_at for s in pages[0]] == sorted([s.created_at for s in pages[0]], reverse=True)
    assert storage.count_sessions() == 9


def test_delete_session_removes_only_its_rows(storage):
    keep, drop = _session(storage, "keep", 1.0), _session(storage, "drop", 2.0)
    for sid in (keep, drop):
        storage.insert_chunk(ChunkRow(sid, 0, 0, 1000, 0, 16000, f"/x/{sid}", "pending"))
        storage.save_segments(sid, 0, [SegmentRow(sid, 0, 0, 0, 900, "hello")], finished_at=3.0)
    storage.delete_session(drop)
    assert storage.find_session(drop) is None and storage.list_segments(drop) == []
    assert [s.text for s in storage.list_segments(keep)] == ["hello"]
    with pytest.raises(NotFoundError):
        storage.delete_session(drop)


def test_failed_transaction_leaves_nothing_behind(storage):
    sid = _session(storage, "t", 1.0)
    with pytest.raises(RuntimeError):
        with storage.transaction() as cur:
            cur.execute("UPDATE sessions SET title = 'changed' WHERE id = ?", [sid])
            raise RuntimeError("boom")
    assert storage.get_session(sid).title == "t"


def test_resume_point_continues_after_the_last_chunk(storage):
    sid = _session(storage, "t", 1.0)
    assert storage.resume_point(sid) == (0, 0)
    storage.insert_chunk(ChunkRow(sid, 0, 0, 1000, 0, 16000, "/a", "pending"))
    storage.insert_chunk(ChunkRow(sid, 1, 1000, 1500, 16000, 24007, "/b", "pending"))
    assert storage.resume_point(sid) == (2, 24007)


def test_one_chunks_lines_read_alone_as_readers_see_them(storage):
    sid = _session(storage, "t", 1.0)
    for seq in range(3):
        storage.insert_chunk(ChunkRow(sid, seq, seq * 1000, seq * 1000 + 900, 0, 16000, f"/x/{seq}", "pending"))
        storage.save_segments(sid, seq, [SegmentRow(sid, seq, i, seq * 1000 + i * 400, seq * 1000 + i * 400 + 300,
                                                    f"chunk {seq} line {i}") for i in range(2)], finished_at=3.0)
    storage.edit_segment(sid, "live", 1, 1, "corrected")
    one = storage.list_segments(sid, seq=1)
    assert [(s.seq, s.idx, s.text) for s in one] == [(1, 0, "chunk 1 line 0"), (1, 1, "corrected")]
    assert one[1].machine_text == "chunk 1 line 1"  # the same row as in the whole transcript
    assert one == [s for s in storage.list_segments(sid) if s.seq == 1]
    assert storage.list_segments(sid, seq=7) == []


def _save_windows(store: Storage, sid: str, chunks: int, rng: np.random.Generator) -> list[bytes]:
    """`chunks` chunks' voice windows of 120 KB each (about a minute of speech's windows)."""
    blobs = []
    for seq in range(chunks):
        blobs.append(rng.bytes(120_000))
        assert save_chunk_windows(store, sid, seq, blobs[-1])
    return blobs


def test_a_database_file_is_bounded_and_an_in_memory_one_keeps_duckdbs_own_bound(tmp_path):
    ask = "SELECT current_setting('memory_limit')"
    store = Storage(tmp_path / "s.duckdb")
    assert store.cursor().execute(ask).fetchone()[0] == "122.0 MiB"  # MEMORY_LIMIT_MB, 128 MB
    store.close()
    in_memory = Storage(":memory:")  # nowhere to evict to: a bound would fail big writes
    assert in_memory.cursor().execute(ask).fetchone()[0] == duckdb.connect(":memory:").execute(ask).fetchone()[0]


def test_voice_windows_far_past_the_memory_bound_are_stored_checkpointed_and_read_back(tmp_path):
    """A checkpoint holds every value over 4 KB of a table's row group in memory at once, so
    with each chunk's windows in one value about 50 MB of them killed DuckDB under a 32 MB
    bound (it had to be reopened). In pieces, ten sessions' 70 MB are written, checkpointed
    after each session and read back session by session, and DuckDB's buffers stay within the
    bound."""
    store = Storage(tmp_path / "s.duckdb")
    store.cursor().execute("SET memory_limit = '32MB'")
    rng = np.random.default_rng(7)
    sessions = {}
    for n in range(10):
        sid = _session(store, f"meeting {n}", float(n))
        sessions[sid] = _save_windows(store, sid, 58, rng)
        store.cursor().execute("CHECKPOINT")
    for sid, blobs in sessions.items():
        assert [w.embeddings for w in store.voice_windows(sid).values()] == blobs
    assert store.memory_mb() <= 32
    store.close()


def test_the_migration_moves_each_chunks_windows_into_pieces(tmp_path):
    """A database from before the pieces keeps every chunk's windows, byte for byte: an empty
    one, one shorter than a piece, one of exactly two pieces, one with a short last piece."""
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR, applied_at DOUBLE)")
    before = [name for name, _ in MIGRATIONS].index("voice windows in pieces")
    for version, (name, migration) in enumerate(MIGRATIONS[:before], start=1):
        migration(con)
        con.execute("INSERT INTO schema_version VALUES (?, ?, 0)", [version, name])
    rng = np.random.default_rng(3)
    old = {("a", 0): b"", ("a", 1): rng.bytes(500), ("a", 2): rng.bytes(2 * WINDOW_PIECE_BYTES),
           ("b", 0): rng.bytes(5 * WINDOW_PIECE_BYTES + 7)}
    for (sid, seq), blob in old.items():
        con.execute("INSERT INTO voice_windows VALUES (?, ?, ?, 1500, [0, 1500], [0, 160, 160, 320], ?)",
                    [sid, seq, seq * 15_000, blob])
    con.close()
    store = Storage(path)
    assert store.schema_version() == len(MIGRATIONS)
    for sid in ("a", "b"):
        windows = store.voice_windows(sid)
        assert {seq: w.embeddings for seq, w in windows.items()} == {q: b for (s, q), b in old.items() if s == sid}
        assert all(w.spans == [0, 160, 160, 320] and w.offset_ms == seq * 15_000 for seq, w in windows.items())
    pieces = store.cursor().execute("SELECT max(octet_length(data)) FROM voice_window_pieces").fetchone()[0]
    assert pieces == WINDOW_PIECE_BYTES
    store.close()


def test_replacing_a_chunks_windows_leaves_no_old_piece(storage):
    sid = _session(storage, "t", 1.0)
    storage.insert_chunk(ChunkRow(sid, 0, 0, 15_000, 0, 240_000, "/x/0", "done"))
    storage.insert_chunk(ChunkRow(sid, 1, 15_000, 30_000, 240_000, 480_000, "/x/1", "done"))
    long, short, other = b"L" * (3 * WINDOW_PIECE_BYTES), b"S" * 10, b"O" * 4100
    storage.save_voice_windows(sid, 0, PackedWindows(0, 1500, [0, 1500], [0, 160], long))
    storage.save_voice_windows(sid, 1, PackedWindows(15_000, 1500, [0, 1500], [0, 160], other))
    storage.save_voice_windows(sid, 0, PackedWindows(0, 1500, [0, 1500], [0, 160], short))
    assert storage.voice_windows(sid, 0)[0].embeddings == short
    assert {seq: w.embeddings for seq, w in storage.voice_windows(sid).items()} == {0: short, 1: other}
    storage.delete_session(sid)
    assert storage.cursor().execute("SELECT count(*) FROM voice_window_pieces").fetchone()[0] == 0
