"""The final pass adds a `final` transcript after a session stops and never touches the live one."""

from __future__ import annotations

import numpy as np
from seed_sessions import record_through
from waiting import eventually

from scribe.chunking import FixedPolicy
from scribe.config import Settings
from scribe.core import FINAL, LIVE, Transcription
from scribe.final_pass import FinalPass, final_pass_enabled, run_final_pass, session_audio
from scribe.pipeline import Pipeline
from scribe.transcribers.stub import StubTranscriber

RATE = 16_000


def _record(storage, pipeline, pcm: np.ndarray, *, stop: bool = True) -> str:
    """A session fed through the chunker and pipeline like live audio, in 4 s chunks, then
    stopped without the pipeline's end (which would start the final pass on its own)."""
    session_id = record_through(storage, pipeline, pcm, stop=False)
    if stop:
        storage.end_session(session_id, "stopped")
    return session_id


def test_final_pass_adds_final_and_keeps_live(storage, settings, tone):
    pipeline = Pipeline(storage, StubTranscriber(), audio_dir=settings.audio_dir).start()
    try:
        session_id = _record(storage, pipeline, tone(10.0))
        assert pipeline.wait_idle(30)
    finally:
        pipeline.stop()
    live_before = storage.list_segments(session_id, LIVE)
    assert [s.text for s in live_before] == ["stub audio of 4.00 seconds"] * 2 + ["stub audio of 2.00 seconds"]

    run_final_pass(storage, StubTranscriber(), session_id)

    assert storage.list_segments(session_id, LIVE) == live_before
    final = storage.list_segments(session_id, FINAL)
    assert [s.text for s in final] == ["stub audio of 10.00 seconds"]
    assert all(s.transcript == FINAL for s in final)
    # Run again: replaced, not duplicated.
    run_final_pass(storage, StubTranscriber(), session_id)
    assert len(storage.list_segments(session_id, FINAL)) == 1


def test_session_audio_is_the_recording_rebuilt_from_chunks(storage, settings, tone):
    pcm = tone(9.5, freq=330.0)
    pipeline = Pipeline(storage, StubTranscriber(), audio_dir=settings.audio_dir).start()
    try:
        session_id = _record(storage, pipeline, pcm)
        assert pipeline.wait_idle(30)
    finally:
        pipeline.stop()
    rebuilt = session_audio(storage, session_id)
    assert rebuilt.size == pcm.size
    assert np.max(np.abs(rebuilt - pcm)) < 1e-3  # 16-bit FLAC quantisation only


def test_final_pass_runs_after_stop_only(storage, settings, tone):
    pipeline = Pipeline(storage, StubTranscriber(), audio_dir=settings.audio_dir)
    final = FinalPass(storage, StubTranscriber(), poll_seconds=0.05).attach(pipeline)
    pipeline.start()
    try:
        recording = _record(storage, pipeline, tone(6.0), stop=False)
        assert pipeline.wait_idle(30) and final.wait_idle(30)
        assert storage.list_segments(recording, FINAL) == []  # drained, but still recording

        storage.end_session(recording, "stopped")
        pipeline.requeue(recording, [1])  # any later drain of a stopped session triggers it
        assert eventually(lambda: recording in final.completed)
        assert [s.text for s in storage.list_segments(recording, FINAL)] == ["stub audio of 6.00 seconds"]
        assert len(storage.list_segments(recording, LIVE)) == 2
    finally:
        final.stop()
        pipeline.stop()
    assert final.errors == {}


def test_final_pass_is_on_by_default_for_local_only():
    assert final_pass_enabled(Settings.from_env({}))
    assert not final_pass_enabled(Settings.from_env({}, final_pass=False))
    assert not final_pass_enabled(Settings.from_env({}, backend="stub"))


def test_final_pass_never_runs_a_smaller_model_than_the_live_one():
    assert not final_pass_enabled(Settings.from_env({}, whisper_model="base", final_model="tiny.en"))
    assert final_pass_enabled(Settings.from_env({}, whisper_model="tiny.en", final_model="base"))
    assert final_pass_enabled(Settings.from_env({}, whisper_model="base", final_model="base"))
    assert final_pass_enabled(Settings.from_env({}, whisper_model="base", final_model="distil-large-v3"))
    assert final_pass_enabled(Settings.from_env({}, whisper_model="/models/mine", final_model="tiny.en"))


def test_final_pass_on_the_local_model_keeps_the_words(storage, settings, meeting):
    """Real tiny.en: the final transcript of a chunked session scores like a whole-file pass."""
    from scribe.audio import decode_file
    from scribe.transcribers.local import LocalWhisperTranscriber
    from scribe.wer import word_error_rate

    path, reference = meeting
    local = LocalWhisperTranscriber()
    pcm = decode_file(path)[: 25 * RATE]
    pipeline = Pipeline(storage, StubTranscriber(), audio_dir=settings.audio_dir).start()
    try:
        session_id = _record(storage, pipeline, pcm)
        assert pipeline.wait_idle(30)
    finally:
        pipeline.stop()
    rows = run_final_pass(storage, local, session_id, keep_live_margin=None)  # the re-decode itself
    whole = " ".join(s.text for s in local.transcribe(pcm).segments)
    final_text = storage.session_text(session_id, FINAL)
    assert final_text == " ".join(r.text for r in rows) and final_text
    first_turns = " ".join(reference.split()[: len(whole.split())])
    assert abs(word_error_rate(first_turns, final_text) - word_error_rate(first_turns, whole)) < 0.02


def test_an_ingested_file_gets_its_final_pass_even_when_chunks_finish_first(storage, settings, tone, tmp_path):
    import speech

    from scribe.ingest import ingest_file

    wav = speech.write_wav(tone(5.0), tmp_path / "tone.wav")
    end_session = storage.end_session

    def slow_end_session(*args, **kwargs):  # every chunk is done before the session stops
        assert pipeline.wait_idle(30)
        end_session(*args, **kwargs)

    storage.end_session = slow_end_session
    pipeline = Pipeline(storage, StubTranscriber(), audio_dir=settings.audio_dir)
    final = FinalPass(storage, StubTranscriber(), poll_seconds=0.05).attach(pipeline)
    pipeline.start()
    try:
        result = ingest_file(wav, storage=storage, pipeline=pipeline, policy=FixedPolicy(2.0))
        assert eventually(lambda: result.session.id in final.completed)
    finally:
        final.stop()
        pipeline.stop()
    assert storage.get_session(result.session.id).status == "done"
    assert [s.text for s in storage.list_segments(result.session.id, FINAL)] == ["stub audio of 5.00 seconds"]


def test_only_long_lived_runtimes_get_a_final_pass(settings):
    from scribe.runtime import Runtime

    one_shot = Runtime.build(settings, transcriber=StubTranscriber(), start=False)
    app = Runtime.build(settings.with_changes(db_path=settings.data_dir / "app.duckdb"),
                        transcriber=StubTranscriber(), start=False, final_pass=True)
    try:
        assert one_shot.final_pass is None
        assert app.final_pass is not None
    finally:
        one_shot.close()
        app.close()


class SureStub:
    """A backend whose one segment per call says how sure it is (like Whisper's confidence)."""

    name = "stub"

    def __init__(self, text: str, confidence: float) -> None:
        self.model, self.text, self.confidence = f"sure-{confidence}", text, confidence
        self.longest_call = 0

    def transcribe(self, audio):
        from scribe.core import Segment, Transcription

        self.longest_call = max(self.longest_call, audio.size)
        return Transcription([Segment(0.0, audio.size / RATE, self.text, confidence=self.confidence)])


def _live_session(storage, settings, pcm, transcriber) -> str:
    pipeline = Pipeline(storage, transcriber, audio_dir=settings.audio_dir).start()
    try:
        session_id = _record(storage, pipeline, pcm)
        assert pipeline.wait_idle(30)
    finally:
        pipeline.stop()
    return session_id


def test_rule_keeps_live_text_where_the_redecode_is_less_sure(storage, settings, tone):
    from scribe.final_pass import KEPT_LIVE, final_pass_report

    session_id = _live_session(storage, settings, tone(10.0), SureStub("live words", 0.8))
    report = final_pass_report(storage, SureStub("doubtful words", 0.5), session_id)
    assert report.kept_live == report.windows == 1
    final = storage.list_segments(session_id, FINAL)
    assert [s.text for s in final] == ["live words"] * 3 and all(KEPT_LIVE in s.flags for s in final)
    assert [(s.start_ms, s.end_ms) for s in final] == \
        [(s.start_ms, s.end_ms) for s in storage.list_segments(session_id, LIVE)]

    report = final_pass_report(storage, SureStub("surer words", 0.9), session_id)
    assert report.kept_live == 0
    assert [s.text for s in storage.list_segments(session_id, FINAL)] == ["surer words"]


def test_rule_keeps_live_text_where_the_redecode_heard_nothing(storage, settings, tone):
    from scribe.final_pass import final_pass_report

    class Deaf(SureStub):
        def transcribe(self, audio):
            return Transcription([])

    session_id = _live_session(storage, settings, tone(6.0), SureStub("live words", 0.3))
    assert final_pass_report(storage, Deaf("", 1.0), session_id).kept_live == 1
    assert [s.text for s in storage.list_segments(session_id, FINAL)] == ["live words"] * 2


def test_final_pass_decodes_a_long_session_in_bounded_windows(storage, settings, tone):
    """Memory bound: no backend call ever gets more than one window of audio."""
    from scribe.final_pass import final_pass_report

    pcm = np.concatenate([tone(3.5), np.zeros(RATE // 2, np.float32)] * 10)  # 40 s in 4 s chunks
    session_id = _live_session(storage, settings, pcm, StubTranscriber())
    redecoder = SureStub("window", 1.0)
    report = final_pass_report(storage, redecoder, session_id, window_seconds=10.0)
    assert redecoder.longest_call <= 10 * RATE
    assert report.windows == 5  # whole 4 s chunks, two to a window
    final = storage.list_segments(session_id, FINAL)
    assert final[0].start_ms == 0 and final[-1].end_ms == 40_000
    assert all(a.end_ms <= b.start_ms for a, b in zip(final, final[1:]))


def test_windows_for_ten_hours_stay_bounded_and_cover_everything():
    from scribe.core import ChunkRow
    from scribe.final_pass import plan_windows

    def chunk(seq, start_s, end_s):
        return ChunkRow(session_id="s", seq=seq, start_ms=int(start_s * 1000), end_ms=int(end_s * 1000),
                        start_sample=int(start_s * RATE), end_sample=int(end_s * RATE), audio_path="",
                        status="done", attempts=1)

    ten_hours = 10 * 3600
    limit = 120 * RATE
    for chunks in ([chunk(n, n * 13.7, min((n + 1) * 13.7, ten_hours)) for n in range(int(ten_hours / 13.7) + 1)],
                   [chunk(0, 0, ten_hours)]):  # live chunks, and one whole-file chunk
        windows = plan_windows(chunks, limit)
        assert max(end - start for start, end in windows) <= limit
        assert windows[0][0] == 0 and windows[-1][1] == ten_hours * RATE
        assert all(a[1] == b[0] for a, b in zip(windows, windows[1:]))


def test_window_audio_reads_only_the_part_of_a_chunk_it_needs(storage, settings, tone):
    from scribe.final_pass import window_audio

    pcm = tone(8.0, freq=330.0)
    session_id = _live_session(storage, settings, pcm, StubTranscriber())
    chunks = storage.list_chunks(session_id)
    part = window_audio(chunks, 3 * RATE, 6 * RATE)  # spans the cut between chunk 0 and 1
    assert part.size == 3 * RATE
    assert np.max(np.abs(part - pcm[3 * RATE:6 * RATE])) < 1e-3
