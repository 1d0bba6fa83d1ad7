import duckdb
import numpy as np
import pytest

from scribe.core import ChunkRow, PackedWindows, SegmentRow
from scribe.errors import NotFoundError
from scribe.storage import MIGRATIONS, Storage


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
        store.insert_chunk(ChunkRow(sid, seq, seq * 15_000, (seq + 1) * 15_000, 0, 240_000, f"/x/{seq}", "done"))
        blobs.append(rng.bytes(120_000))
        assert store.save_voice_windows(sid, seq, PackedWindows(seq * 15_000, 1500, [0, 1500], [0, 160], blobs[-1]))
    return blobs


def test_the_database_keeps_duckdbs_own_memory_bound(tmp_path):
    ask = "SELECT current_setting('memory_limit')"
    store = Storage(tmp_path / "s.duckdb")
    assert store.cursor().execute(ask).fetchone()[0] == duckdb.connect(":memory:").execute(ask).fetchone()[0]
    store.close()


def test_a_checkpoint_holds_a_tables_large_values_at_once(tmp_path):
    """Why DuckDB's memory is not bounded tighter: a checkpoint holds every large value of a
    table's row group (here 40 MB of voice windows) in memory at once. Under a 16 MB bound it
    fails, and DuckDB must be reopened before it serves anything again; with DuckDB's own bound
    the same windows are stored, checkpointed and read back."""
    rng = np.random.default_rng(7)
    store = Storage(tmp_path / "own.duckdb")
    sid = _session(store, "long", 1.0)
    blobs = _save_windows(store, sid, 330, rng)
    store.cursor().execute("CHECKPOINT")
    assert [w.embeddings for w in store.voice_windows(sid).values()] == blobs
    store.close()
    bounded = Storage(tmp_path / "bounded.duckdb")
    bounded.cursor().execute("SET memory_limit = '16MB'")
    sid = _session(bounded, "long", 1.0)
    with pytest.raises(duckdb.FatalException):
        _save_windows(bounded, sid, 330, rng)
        bounded.cursor().execute("CHECKPOINT")
