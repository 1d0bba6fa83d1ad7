"""Word times in the chunk lane and lines cut where the speaker changes: local Whisper's words
are stored with each segment, and live labels and the relabel after Stop cut a segment spoken
by two people into lines of one speaker each, on espeak-ng voices and on real recorded people."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import speech

from scribe.audio import SAMPLE_RATE, decode_file
from scribe.chunking import Chunker, FixedPolicy
from scribe.core import FINAL, LIVE, ChunkRow, Segment, SegmentRow, Word, words_text
from scribe.diarization import SpeakerLabeler, cut_at_speaker_changes, relabel_session
from scribe.export import render
from scribe.final_pass import run_final_pass
from scribe.pipeline import Pipeline
from scribe.search import search
from scribe.storage import Storage, segments_from_backend
from scribe.transcribers.local import LocalWhisperTranscriber

REAL_VOICES = Path("/usr/share/pocketsphinx/test/data")
"""Debian's pocketsphinx-testdata (scripts/setup.sh --system): real people, not espeak-ng."""
needs_encoder = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                                   reason="resemblyzer is not installed (scripts/setup.sh installs it)")


# -- storage ----------------------------------------------------------------------------------

def _session(storage: Storage) -> str:
    return storage.create_session(title="Lines", source="upload", backend="local", model="tiny.en",
                                  chunk_seconds=8, chunk_policy="fixed").id


def _stored(storage: Storage, session_id: str, segments: list[Segment], *, seq: int = 0,
            start_ms: int = 0) -> None:
    storage.insert_chunk(ChunkRow(session_id, seq, start_ms, start_ms + 8000, start_ms * 16,
                                  (start_ms + 8000) * 16, f"/nonexistent/{seq}.flac", "pending"))
    storage.save_segments(session_id, seq, segments_from_backend(session_id, seq, start_ms, segments,
                                                                 chunk_end_ms=start_ms + 8000),
                          finished_at=1.0)


def _words(*spans: tuple[float, float, str]) -> list[Word]:
    return [Word(a, b, text) for a, b, text in spans]


def test_words_are_stored_in_session_time_and_read_back(storage):
    session_id = _session(storage)
    words = _words((0.0, 0.4, " Good"), (0.4, 0.9, " morning."))
    _stored(storage, session_id, [Segment(0.0, 0.9, "Good morning.", words=words), Segment(1.0, 2.0, "Gemini")],
            seq=1, start_ms=8000)
    first, second = storage.list_segments(session_id)
    assert first.words == _words((8.0, 8.4, " Good"), (8.4, 8.9, " morning."))
    assert second.words == []  # a backend without word times (Gemini) stores none


def _two_speaker_segment() -> Segment:
    return Segment(0.0, 4.0, "Budget first. Yes, I agree.",
                   words=_words((0.0, 0.5, " Budget"), (0.5, 1.5, " first."), (2.0, 2.5, " Yes,"),
                                (2.5, 3.0, " I"), (3.0, 4.0, " agree.")))


def test_a_segment_is_cut_where_the_speaker_changes_between_words():
    labels = np.array([0] * 180 + [1] * 220)  # a voice per 10 ms frame: the change at 1.8 s
    row = segments_from_backend("s", 0, 0, [_two_speaker_segment()])[0]
    lines, cut = cut_at_speaker_changes([row], labels)
    assert cut
    assert [(line.text, voice) for line, voice in lines] == [("Budget first.", 0), ("Yes, I agree.", 1)]
    assert [(line.start_ms, line.end_ms) for line, _ in lines] == [(0, 1500), (2000, 4000)]
    assert all(line.idx == 0 for line, _ in lines)  # both come from segment 0


def test_one_word_at_a_change_is_not_a_turn_and_an_edited_line_stays_whole():
    blur = np.array([0] * 180 + [1] * 70 + [0] * 150)  # " Yes," alone labelled as another voice
    row = segments_from_backend("s", 0, 0, [_two_speaker_segment()])[0]
    lines, cut = cut_at_speaker_changes([row], blur)
    assert not cut and lines == [(row, 0)]
    edited = SegmentRow(**{**row.__dict__, "text": "Budget first. Yes.", "machine_text": row.text})
    lines, cut = cut_at_speaker_changes([edited], np.array([0] * 180 + [1] * 220))
    assert not cut and lines[0][0] is edited


def test_cut_lines_are_renumbered_and_corrections_move_with_their_segment(storage):
    session_id = _session(storage)
    later = Segment(5.0, 6.0, "Next item.", words=_words((5.0, 5.5, " Next"), (5.5, 6.0, " item.")))
    _stored(storage, session_id, [_two_speaker_segment(), later])
    storage.edit_segment(session_id, LIVE, 0, 1, "Next topic.")
    labels = np.array([0] * 180 + [1] * 220 + [1] * 300)
    lines, _ = cut_at_speaker_changes(storage.list_segments(session_id), labels)
    rows = [SegmentRow(**{**line.__dict__, "speaker_id": voice + 1}) for line, voice in lines]
    storage.save_speakers(session_id, [], [], stage=LIVE, cut=rows)
    stored = storage.list_segments(session_id)
    assert [(s.idx, s.text, s.speaker_id) for s in stored] == [
        (0, "Budget first.", 1), (1, "Yes, I agree.", 2), (2, "Next topic.", 2)]
    assert stored[2].machine_text == "Next item."  # the correction followed its segment to idx 2
    assert words_text(stored[1].words) == "Yes, I agree."
    storage.undo_edit(session_id, LIVE, 0, 2)
    assert storage.list_segments(session_id)[2].text == "Next item."


def test_a_cut_computed_from_segments_that_changed_meanwhile_is_not_stored(storage):
    session_id = _session(storage)
    _stored(storage, session_id, [_two_speaker_segment()])
    lines, _ = cut_at_speaker_changes(storage.list_segments(session_id), np.array([0] * 180 + [1] * 220))
    _stored(storage, session_id, [Segment(0.0, 4.0, "Re-transcribed.")])  # e.g. a retry wrote new text
    storage.save_speakers(session_id, [], [], stage=LIVE, cut=[line for line, _ in lines])
    assert [s.text for s in storage.list_segments(session_id)] == ["Re-transcribed."]


# -- real speech through the pipeline -----------------------------------------------------------

@pytest.fixture(scope="module")
def whisper():
    return LocalWhisperTranscriber("tiny.en")


def _level(x: np.ndarray) -> np.ndarray:
    return (x * 0.05 / np.sqrt(np.mean(x ** 2))).astype(np.float32)


def _record(storage: Storage, settings, whisper, audio: np.ndarray) -> str:
    """One session through the pipeline with live labels, stopped, and relabelled after Stop."""
    pipeline = Pipeline(storage, whisper, audio_dir=settings.audio_dir).start()
    labeler = SpeakerLabeler(storage, max_speakers=8).attach(pipeline)
    try:
        session_id = storage.create_session(title="Two voices", source="mic", backend="local",
                                            model="tiny.en", chunk_seconds=10, chunk_policy="fixed").id
        storage.set_expected_speakers(session_id, 2)
        chunker = Chunker(session_id, FixedPolicy(10.0))
        for chunk in [*chunker.push(audio), *chunker.finish()]:
            pipeline.submit(chunk)
        pipeline.finish_session(session_id)
        assert pipeline.wait_idle(120) and labeler.wait_idle(120)
    finally:
        labeler.stop()
        pipeline.stop()
    assert not labeler.errors
    return session_id


def _assert_one_speaker_per_line(storage: Storage, session_id: str, first: str, second: str,
                                 transcript: str = LIVE) -> None:
    """The words `first` (said by one person) and `second` (the other) are on different lines with
    different speakers; every stored line has one speaker."""
    lines = storage.list_segments(session_id, transcript)
    has = {word: next(line for line in lines if word in line.text.lower()) for word in (first, second)}
    assert has[first].idx != has[second].idx, [line.text for line in lines]
    assert has[first].speaker_id != has[second].speaker_id
    assert all(line.speaker_id is not None for line in lines)


@needs_encoder
def test_espeak_voices_taking_turns_mid_sentence_get_a_line_each(storage, settings, whisper):
    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed")
    gap = np.zeros(int(0.15 * SAMPLE_RATE), np.float32)
    audio = np.concatenate([speech.synthesize("So the first item on the list is the budget review for the",
                                              voice="en-us+m8"), gap,
                            speech.synthesize("third quarter, which went well and we are on track.",
                                              voice="en-us+f4")])
    session_id = _record(storage, settings, whisper, audio)
    _assert_one_speaker_per_line(storage, session_id, "budget", "track")
    # what people read keeps working on the cut lines: search, exports, corrections
    hits = search(storage, "track")
    assert len(hits.hits) == 1 and hits.hits[0].speaker == "Speaker 2"
    assert "Speaker 2" in render("srt", storage.get_session(session_id), storage.list_segments(session_id))
    line = next(s for s in storage.list_segments(session_id) if "track" in s.text)
    storage.edit_segment(session_id, LIVE, line.seq, line.idx, "third quarter, which went well.")
    relabel_session(storage, session_id)  # a later relabel keeps the person's text
    assert any(s.text == "third quarter, which went well." for s in storage.list_segments(session_id))
    # the final pass's re-decode keeps its words in session time, and the relabel cuts it too
    run_final_pass(storage, whisper, session_id, keep_live_margin=None)
    final = storage.list_segments(session_id, FINAL)
    assert final and all(s.start_ms <= w.start * 1000 + 1 and w.end * 1000 <= s.end_ms + 1
                         for s in final for w in s.words)
    relabel_session(storage, session_id)
    _assert_one_speaker_per_line(storage, session_id, "budget", "track", FINAL)


@needs_encoder
@pytest.mark.skipif(not (REAL_VOICES / "librivox").is_dir(), reason="pocketsphinx-testdata is not installed")
def test_real_people_taking_turns_in_one_segment_get_a_line_each(storage, settings, whisper):
    """A LibriVox reader breaks off and a CMU speaker says "go forward ten meters": Whisper writes
    one segment; the stored lines are one per person."""
    reader = _level(decode_file(sorted((REAL_VOICES / "librivox").glob("*.wav"))[0]))
    other = _level(np.fromfile(REAL_VOICES / "goforward.raw", dtype="<i2").astype(np.float32))
    gap = np.zeros(int(0.15 * SAMPLE_RATE), np.float32)
    session_id = _record(storage, settings, whisper,
                         np.concatenate([reader[:int(3.2 * SAMPLE_RATE)], gap, other]))
    _assert_one_speaker_per_line(storage, session_id, "dashwood", "forward")
