"""The Record page's views as plain values: chunk table, live transcript, level meter."""

from scribe.core import ChunkRow, SegmentRow, SpeakerRow
from scribe.identity import LOCAL, Principal
from scribe.partials import PartialText
from scribe.record_view import (
    ChunkRows,
    ReadableSessions,
    StoredLines,
    StoredText,
    chunk_mark,
    chunk_table,
    level_fraction,
    live_transcript,
)


def test_chunk_table_shows_latency_only_once_a_chunk_is_done():
    rows = chunk_table([ChunkRow("s", 0, 0, 5_000, 0, 80_000, "a", "done", attempts=1, captured_at=10.0,
                                 finished_at=12.5),
                        ChunkRow("s", 1, 5_000, 65_500, 80_000, 1, "b", "pending", captured_at=20.0)])
    assert rows == [{"chunk": 0, "time": "00:00-00:05", "status": "done", "text after": "2.5 s"},
                    {"chunk": 1, "time": "00:05-01:05", "status": "pending", "text after": "not yet"}]
    failed = ChunkRow("s", 2, 0, 1, 0, 1, "c", "failed", attempts=5, error="HTTP 500", captured_at=1.0,
                      finished_at=2.0)
    assert chunk_table([failed])[0]["error"] == "HTTP 500"


def test_level_meter_maps_dbfs_to_a_fraction():
    assert level_fraction(-120) == 0.0 and level_fraction(0) == 1.0 and level_fraction(-30) == 0.5


def test_live_transcript_hides_partial_text_once_its_chunk_is_stored():
    stored = [SegmentRow("s", 0, 0, 0, 1_000, "stored words")]
    partials = [PartialText("s", 0, 0, 1_000, "old guess", ""), PartialText("s", 1, 15_000, 16_000, "open", "chunk")]
    view = live_transcript(StoredText.of(stored), partials)
    assert view.stored == "[00:00] stored words"
    assert view.partial == ["[00:15] open chunk"]


def test_every_page_watching_a_session_shares_one_read_of_its_stored_lines_per_change(storage, tmp_path):
    """Open Record pages redraw the transcript four times a second: the stored lines are read
    from the database once per stored chunk (the mark) for all of them, and again at the
    latest after `max_age_s` (an edit shows too)."""
    from seed_sessions import add_chunk, seed_session

    now = [0.0]
    lines = StoredLines(max_age_s=1.0, clock=lambda: now[0])
    session_id = seed_session(storage, tmp_path, [(None, "first words")], title="live", created_at=1.0).id
    for _viewer_redraw in range(12):
        assert [s.text for s in lines.transcript(storage, session_id, (1, 0)).segments] == ["first words"]
    assert lines.reads == 1
    add_chunk(storage, tmp_path, session_id, 1, None, "second chunk")
    assert len(lines.transcript(storage, session_id, (2, 0)).segments) == 2 and lines.reads == 2  # read at once
    storage.edit_segment(session_id, "live", 0, 0, "first words, edited")
    assert lines.transcript(storage, session_id, (2, 0)).segments[0].text == "first words"  # within max_age_s
    now[0] = 1.0
    assert lines.transcript(storage, session_id, (2, 0)).segments[0].text == "first words, edited"
    assert lines.reads == 3


def test_redraws_with_nothing_new_build_the_transcript_text_once_for_every_viewer(storage, tmp_path, monkeypatch):
    """Building an hour's transcript on each of four redraws a second would cost every viewer
    about 12 ms a second: the text is built with the shared read, once per change, and every
    redraw of every viewer shows that one text."""
    from seed_sessions import seed_session

    import scribe.record_view

    built = []
    monkeypatch.setattr(scribe.record_view, "transcript_lines",
                        lambda segments, _real=scribe.record_view.transcript_lines: built.append(1) or _real(segments))
    lines = StoredLines(clock=lambda: 0.0)
    session_id = seed_session(storage, tmp_path, [(None, "first words"), ("Ana", "second words")],
                              title="live", created_at=1.0).id
    for _viewer_redraw in range(3 * 4 * 10):  # three viewers, ten seconds
        view = live_transcript(lines.transcript(storage, session_id, (2, 0)), [])
        assert view.stored == "[00:00] first words\n[00:05] Ana: second words"
    assert len(built) == 1


def test_a_new_chunk_and_a_new_speaker_name_show_in_the_text_at_the_next_redraw_after_the_mark_moves(
        storage, tmp_path):
    """The text is never older than the read it was built from: when the mark moves (a chunk
    stored, a chunk's speakers labelled) the next redraw reads and shows the new text."""
    from seed_sessions import add_chunk, seed_session

    lines = StoredLines(clock=lambda: 0.0)
    session_id = seed_session(storage, tmp_path, [(None, "first words")], title="live", created_at=1.0).id
    assert lines.transcript(storage, session_id, (1, 0)).text == "[00:00] first words"
    add_chunk(storage, tmp_path, session_id, 1, "Ben", "second chunk")
    shown = live_transcript(lines.transcript(storage, session_id, (2, 0)), [])
    assert shown.stored == "[00:00] first words\n[00:05] Ben: second chunk"
    storage.save_speakers(session_id, [SpeakerRow(session_id, 1, "Speaker 1")], [("live", 0, 0, 1)], stage="live")
    assert lines.transcript(storage, session_id, (2, 0)).text.startswith("[00:00] first words")  # mark unmoved
    shown = live_transcript(lines.transcript(storage, session_id, (2, 0, 1)), [])  # the labeler's count moved
    assert shown.stored == "[00:00] Speaker 1: first words\n[00:05] Ben: second chunk"
def test_pages_asking_for_the_shown_session_share_one_read_a_second_and_keep_the_access_rule(storage, tmp_path):
    """A Record page's fragments ask for the shown session up to six times a second: one
    database read a second serves every page with the same principal; another person is
    asked about on their own and finds nothing they may not read."""
    from seed_sessions import seed_session

    now = [0.0]
    rows = ReadableSessions(max_age_s=1.0, clock=lambda: now[0])
    session_id = seed_session(storage, tmp_path, [(None, "words")], title="planning", created_at=1.0).id
    for _fragment_run in range(12):
        assert rows.find(storage, session_id, LOCAL).title == "planning"
    assert rows.reads == 1
    stranger = Principal("issuer|someone", signed_in=True)
    assert rows.find(storage, session_id, stranger) is None and rows.reads == 2
    storage.update_session(session_id, title="planning, renamed")
    assert rows.find(storage, session_id, LOCAL).title == "planning"  # within max_age_s
    now[0] = 1.0
    assert rows.find(storage, session_id, LOCAL).title == "planning, renamed"
    assert rows.reads == 3


def test_the_status_lines_segment_count_comes_from_the_transcripts_read_and_matches_what_is_stored(storage, tmp_path):
    """The status line needs the session's stored segments counted once a second: the
    transcript's shared read already holds them, so counting costs no read of its own."""
    from seed_sessions import add_chunk, seed_session

    lines = StoredLines(max_age_s=1.0, clock=lambda: 0.0)
    session_id = seed_session(storage, tmp_path, [(None, "one"), (None, "lost"), (None, "three")],
                              title="count", created_at=1.0, failed_seqs=[1]).id
    assert len(lines.transcript(storage, session_id, (2, 1)).segments) == 2
    assert lines.count(storage, session_id, (2, 1)) == len(storage.list_segments(session_id)) == 2
    assert lines.reads == 1
    add_chunk(storage, tmp_path, session_id, 3, None, "four")
    assert lines.count(storage, session_id, (3, 1)) == 3 and lines.reads == 2


def test_every_page_showing_a_session_shares_one_read_of_its_chunk_rows_per_change(storage, tmp_path):
    """Each open Record page asks for the chunk rows twice a second (status line, chunk
    table): one database read serves them all until the mark moves, and a change the mark
    does not see shows within `max_age_s`."""
    from seed_sessions import seed_session

    now = [0.0]
    rows = ChunkRows(max_age_s=1.0, clock=lambda: now[0])
    session_id = seed_session(storage, tmp_path, [(None, "a"), (None, "b")], title="rows", created_at=1.0).id
    for _fragment_run in range(16):  # eight viewers' status lines and chunk tables
        assert [c.status for c in rows.chunks(storage, session_id, "first")] == ["done", "done"]
    assert rows.reads == 1
    storage.insert_chunk(ChunkRow(session_id, 2, 10_000, 15_000, 160_000, 240_000, "c.flac", "pending"))
    assert storage.claim_chunk(session_id, 2, backend="stub", model="m", now=2.0) is not None
    assert rows.chunks(storage, session_id, "moved")[-1].status == "processing" and rows.reads == 2
    storage.fail_chunk(session_id, 2, "HTTP 500", finished_at=3.0)  # past the mark
    assert rows.chunks(storage, session_id, "moved")[-1].status == "processing"  # within max_age_s
    now[0] = 1.0
    assert rows.chunks(storage, session_id, "moved")[-1].status == "failed" and rows.reads == 3


def test_the_chunk_table_shows_each_step_of_a_chunk_at_once_without_waiting_out_the_max_age(storage, tmp_path):
    """Through `ChunkRows` with the pipeline's `chunk_mark`, and no time passing at all, the
    rows are the stored ones after each step: processing (a claim moves no count of
    finished chunks), a new pending chunk behind it, then both done."""
    import time

    from test_pipeline import GatedEchoTranscriber, chunk, make_pipeline, new_session

    backend = GatedEchoTranscriber()
    pipe = make_pipeline(storage, tmp_path, backend, max_concurrency=1).start()
    rows = ChunkRows(max_age_s=1.0, clock=lambda: 0.0)
    try:
        session_id = new_session(storage)

        def shown() -> list[str]:
            return [c.status for c in rows.chunks(storage, session_id, chunk_mark(pipe.stats()))]

        assert shown() == []
        assert pipe.submit(chunk(session_id, 0))
        deadline = time.monotonic() + 10
        while [c.status for c in storage.list_chunks(session_id)] != ["processing"]:
            assert time.monotonic() < deadline, "the chunk was never claimed"
            time.sleep(0.01)
        assert shown() == ["processing"]
        assert pipe.submit(chunk(session_id, 1))  # the one worker is busy: it waits
        assert shown() == ["processing", "pending"]
        backend.release.set()
        assert pipe.wait_idle(10)
        assert shown() == ["done", "done"]
    finally:
        backend.release.set()
        pipe.stop(timeout=5)
