import duckdb
import pytest

from scribe.core import ChunkRow, SegmentRow
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


@pytest.mark.parametrize("bound_mb", [16, 0])
def test_the_database_buffers_stay_within_their_bound(tmp_path, bound_mb):
    """DuckDB keeps every block it wrote or read until its bound needs the room: a database
    bigger than the bound is still read whole, and only the bound's worth stays in memory."""
    store = Storage(tmp_path / "s.duckdb", memory_limit_mb=bound_mb)
    cur = store.cursor()
    cur.execute("CREATE TABLE filler AS SELECT random() AS x, random() AS y FROM range(3000000)")  # ~40 MB
    cur.execute("CHECKPOINT")
    count, mean = cur.execute("SELECT count(*), avg(x) FROM filler").fetchone()
    assert count == 3_000_000 and 0.49 < mean < 0.51
    if bound_mb:
        assert store.memory_mb() <= bound_mb
    else:  # DuckDB's own bound (80 % of RAM) keeps it all
        assert store.memory_mb() > 30
    store.close()


def test_an_in_memory_database_keeps_duckdbs_own_bound():
    store = Storage(":memory:", memory_limit_mb=16)  # nowhere to evict to: a bound would fail big writes
    ask = "SELECT current_setting('memory_limit')"
    assert store.cursor().execute(ask).fetchone()[0] == duckdb.connect(":memory:").execute(ask).fetchone()[0]


def test_the_app_and_the_cli_open_the_database_with_the_configured_bound(settings, monkeypatch):
    import argparse

    from scribe.cli.common import open_storage
    from scribe.runtime import Runtime

    def bound(store: Storage) -> str:
        return store.cursor().execute("SELECT current_setting('memory_limit')").fetchone()[0]

    from scribe.storage.database import MEMORY_LIMIT_MB

    assert settings.db_memory_mb == MEMORY_LIMIT_MB  # a database opened without settings has the same bound
    rt = Runtime.build(settings.with_changes(backend="stub", db_memory_mb=32), start=False)
    try:
        assert bound(rt.storage) == "30.5 MiB"  # 32 MB
    finally:
        rt.close()
    monkeypatch.setenv("SCRIBE_DB_MEMORY_MB", "48")
    _, store = open_storage(argparse.Namespace(db=str(settings.db)))
    try:
        assert bound(store) == "45.7 MiB"  # 48 MB
    finally:
        store.close()
