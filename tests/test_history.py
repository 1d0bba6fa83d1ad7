"""Session history: paged listings with chunk counts, transcript choice, doubts, rename, delete."""

from __future__ import annotations

import pytest
from seed_sessions import add_chunk, seed_session

from scribe import history
from scribe.core import SegmentRow
from scribe.errors import NotFoundError, ScribeError


def test_delete_removes_that_sessions_rows_and_files_only(storage, settings):
    keep = seed_session(storage, settings.audio_dir, [(None, "keep me")] * 2, title="keep", created_at=1)
    gone = seed_session(storage, settings.audio_dir, [(None, "drop me")] * 3, title="gone", created_at=2)
    storage.add_summary(gone.id, backend="local", model="m", text="t", key_points=[], action_items=[], details={})
    storage.add_summary(keep.id, backend="local", model="m", text="t", key_points=[], action_items=[], details={})
    bystander = settings.audio_dir / "notes.txt"
    bystander.write_text("not a session")

    report = history.delete_session(storage, settings.audio_dir, gone.id)

    assert (report.segments, report.chunks, report.summaries, report.audio_files) == (3, 3, 1, 3)
    assert storage.find_session(gone.id) is None
    assert storage.list_chunks(gone.id) == [] and storage.list_segments(gone.id) == []
    assert storage.list_summaries(gone.id) == []
    assert not (settings.audio_dir / gone.id).exists()
    assert len(storage.list_segments(keep.id)) == 2 and len(storage.list_summaries(keep.id)) == 1
    assert sorted(p.name for p in (settings.audio_dir / keep.id).iterdir()) == ["000000.flac", "000001.flac"]
    assert bystander.read_text() == "not a session" and settings.db.exists()


def test_delete_refuses_a_session_still_recording_or_queued(storage, settings):
    live = seed_session(storage, settings.audio_dir, [(None, "x")], title="live", created_at=1, status="recording")
    with pytest.raises(history.DeleteRefusedError, match="still recording"):
        history.delete_session(storage, settings.audio_dir, live.id)
    storage.update_session(live.id, status="stopped")
    storage.requeue_failed(live.id, [0])  # a chunk back in the queue
    with pytest.raises(history.DeleteRefusedError, match="queued"):
        history.delete_session(storage, settings.audio_dir, live.id)
    assert storage.find_session(live.id) is not None and (settings.audio_dir / live.id).is_dir()
    history.delete_session(storage, settings.audio_dir, live.id, force=True)
    assert storage.find_session(live.id) is None


def test_delete_rejects_ids_that_are_not_plain_folder_names(storage, settings):
    for bad in ("../data", "a/b", "..", ""):
        with pytest.raises(ScribeError):
            history.delete_session(storage, settings.audio_dir, bad)
    with pytest.raises(NotFoundError):
        history.delete_session(storage, settings.audio_dir, "no-such-session")


def test_list_page_counts_chunks_per_session_in_one_go(storage, settings):
    for n in range(7):
        seed_session(storage, settings.audio_dir, [(None, "a"), (None, "b")], title=f"s{n}", created_at=n,
                     failed_seqs=[1] if n == 5 else [])
    listings, total = history.list_page(storage, page=1, per_page=3)
    assert total == 7 and [x.session.title for x in listings] == ["s6", "s5", "s4"]
    assert listings[1].chunks == {"pending": 0, "processing": 0, "done": 1, "failed": 1}
    last, _ = history.list_page(storage, page=3, per_page=3)
    assert [x.session.title for x in last] == ["s0"]
    done_only, n_done = history.list_page(storage, statuses=["stopped"])
    assert n_done == 0 and done_only == []
    early, n_early = history.list_page(storage, since=2, until=4)
    assert n_early == 2 and {x.session.title for x in early} == {"s2", "s3"}


def test_final_transcript_is_shown_by_default_when_present(storage, settings):
    s = seed_session(storage, settings.audio_dir, [(None, "live")], title="t", created_at=1)
    assert history.choose_transcript(storage, s.id) == ("live", ["live"])
    storage.replace_transcript(s.id, "final", [SegmentRow(s.id, 0, 0, 0, 10, "final", transcript="final")])
    assert history.choose_transcript(storage, s.id) == ("final", ["final", "live"])
    assert history.choose_transcript(storage, s.id, "live") == ("live", ["final", "live"])


def test_doubtful_segments_are_recognised():
    base = dict(session_id="s", seq=0, idx=0, start_ms=0, end_ms=1)
    assert history.doubts(SegmentRow(**base, text="Fine words.", confidence=0.9, no_speech_prob=0.1)) == []
    assert history.doubts(SegmentRow(**base, text="Mumble.", confidence=0.2)) == ["low_confidence"]
    assert history.doubts(SegmentRow(**base, text="You", no_speech_prob=0.9)) == ["no_speech"]
    assert "repetition" in history.doubts(SegmentRow(**base, text="thank you " * 6))
    assert history.doubts(SegmentRow(**base, text="x", flags=["hallucination"])) == ["hallucination"]


def test_rename_trims_and_validates(storage, settings):
    s = seed_session(storage, settings.audio_dir, [(None, "x")], title="old", created_at=1)
    assert history.rename_session(storage, s.id, "  New   name ").title == "New name"
    with pytest.raises(ScribeError):
        history.rename_session(storage, s.id, "   ")
    with pytest.raises(ScribeError):
        history.rename_session(storage, s.id, "x" * 500)
    assert storage.get_session(s.id).title == "New name"


def test_chunk_audio_plays_and_a_missing_file_is_a_clear_error(storage, settings):
    s = seed_session(storage, settings.audio_dir, [(None, "x")], title="a", created_at=1)
    assert history.chunk_audio_wav(storage, s.id, 0)[:4] == b"RIFF"
    (settings.audio_dir / s.id / "000000.flac").unlink()
    with pytest.raises(ScribeError, match="000000.flac"):
        history.chunk_audio_wav(storage, s.id, 0)


def test_segment_at_finds_the_segment_playing_at_a_time(storage, settings):
    s = seed_session(storage, settings.audio_dir, [(None, "a"), (None, "b"), (None, "c")], title="a", created_at=1)
    add_chunk(storage, settings.audio_dir, s.id, 3, None, "d")
    segs = storage.list_segments(s.id)
    assert history.segment_at(segs, 5_300) == 1
    assert history.segment_at(segs, 9_900) == 1  # in a gap: the last one that started
    assert history.segment_at(segs, 0) == 0 and history.segment_at([], 5) is None


def test_live_text_kept_by_the_final_pass_is_said_but_not_a_doubt():
    from scribe.core import SegmentRow
    from scribe.final_pass import KEPT_LIVE
    from scribe.history import doubts, final_note

    kept = SegmentRow("s", 0, 0, 0, 1000, "kept words", confidence=0.9, flags=[KEPT_LIVE], transcript="final")
    fresh = SegmentRow("s", 0, 1, 1000, 2000, "new words", confidence=0.9, transcript="final")
    assert doubts(kept) == []
    assert "1 of 2 segments are the live text" in final_note([kept, fresh])
    assert final_note([fresh]) == ""


def test_a_finished_session_without_words_is_no_speech_and_can_be_hidden(storage, settings):
    import time as _time

    from seed_sessions import seed_session as _seed

    from scribe import history as _history

    spoken = _seed(storage, settings.audio_dir, [(None, "We met.")], title="Spoken", created_at=_time.time() - 10)
    silent = storage.create_session(title="Silent", source="mic", backend="stub", model="m",
                                    chunk_seconds=5, chunk_policy="pause")
    storage.end_session(silent.id, "stopped")
    storage.update_session(silent.id, status="done")
    listings, total = _history.list_page(storage)
    assert {item.session.title: item.status for item in listings} == {"Spoken": "done", "Silent": "no speech"}
    listings, total = _history.list_page(storage, hide_no_speech=True)
    assert [item.session.id for item in listings] == [spoken.id] and total == 1
