"""Voice windows measured once per chunk and stored: live labels and the relabel after stop
read them instead of running the voice encoder again, and with workers the encoder runs
where the chunk is transcribed, never in the app."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
import speech
from redis_server import redis_server
from seed_sessions import record_through

from scribe import speakers as sp
from scribe.audio import SAMPLE_RATE, encode_bytes, read_flac, read_flac_bytes
from scribe.core import LIVE, Segment, Transcription
from scribe.diarization import SpeakerLabeler, label_chunk, relabel_session
from scribe.distributed import RemoteTranscriber, TranscriptionWorker
from scribe.pipeline import Pipeline
from scribe.storage import Storage
from scribe.transcribers.base import call_transcriber
from scribe.transcribers.stub import StubTranscriber

VOICES = ("en-us+m8", "en-us+f4", "en-us+Andy")
"""Three voices distinct to the encoder (as in test_speakers)."""

needs_model = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                                 reason="resemblyzer is not installed (scripts/setup.sh installs it)")


class CountingEncoder(sp.VoiceEncoder):
    """The real encoder, counting the batches it embeds (one per chunk with speech)."""

    def __init__(self) -> None:
        super().__init__(sp.load_weights())
        self.calls = 0

    def embed(self, mels, lengths=None):
        self.calls += 1
        return super().embed(mels, lengths)


@pytest.fixture(scope="module")
def turns() -> list[np.ndarray]:
    """Nine 4 s turns, voices rotating (at most 3.5 s of speech each, then a pause)."""
    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed")
    out = []
    for n, text in enumerate(speech.MEETING_TURNS[:9]):
        audio = speech.synthesize(text, voice=VOICES[n % 3])[:int(3.5 * SAMPLE_RATE)]
        out.append(np.pad(audio, (0, 4 * SAMPLE_RATE - audio.size)))
    return out


@pytest.fixture
def redis_url(tmp_path):
    with redis_server(tmp_path) as url:
        yield url


def _labelled(storage, settings, audio, transcriber, encoder=None) -> str:
    """A stopped session recorded through the pipeline with the labeler attached, labelled."""
    pipeline = Pipeline(storage, transcriber, audio_dir=settings.audio_dir).start()
    labeler = SpeakerLabeler(storage, encoder=encoder).attach(pipeline)
    try:
        session_id = record_through(storage, pipeline, audio)
        assert pipeline.wait_idle(120) and labeler.wait_idle(180)
    finally:
        labeler.stop()
        pipeline.stop()
    assert not labeler.errors
    return session_id


@pytest.fixture
def labelled(storage, settings, turns):
    return _labelled(storage, settings, np.concatenate(turns), StubTranscriber())


def _speaker_ids(storage, session_id: str) -> list[int | None]:
    return [s.speaker_id for s in storage.list_segments(session_id, LIVE)]


def _assert_same_windows(got: sp.Windows, want: sp.Windows) -> None:
    assert len(want) > 0
    assert got.embeddings.dtype == want.embeddings.dtype
    assert np.array_equal(got.embeddings, want.embeddings)
    assert got.spans == want.spans and got.offset_ms == want.offset_ms
    assert np.array_equal(got.speech, want.speech)


def _measured(chunk) -> sp.Windows:
    return sp.embed_windows(read_flac(Path(chunk.audio_path)), offset_ms=chunk.start_ms)


# -- packing, without the model ----------------------------------------------------------

@pytest.mark.parametrize("mask", ["", "1", "0", "0110", "1100111", "0001011000"])
def test_packed_windows_unpack_to_the_same_windows(mask):
    rng = np.random.default_rng(len(mask))
    speech_mask = np.array([c == "1" for c in mask], dtype=bool)
    spans = [(0, 2), (1, 3)][:min(2, len(mask))]
    windows = sp.Windows(rng.standard_normal((len(spans), sp.HIDDEN)).astype(np.float32), spans,
                         speech_mask, 12_000)
    back = sp.unpack_windows(sp.pack_windows(windows))
    assert np.array_equal(back.embeddings, windows.embeddings) and back.embeddings.dtype == np.float32
    assert back.spans == windows.spans and back.offset_ms == 12_000
    assert np.array_equal(back.speech, windows.speech)


class VoicedStub(StubTranscriber):
    """A backend that measures voices (like a remote worker): fixed windows for every chunk."""

    returns_voices = True

    def __init__(self) -> None:
        super().__init__()
        self.asked_from: list[int] = []
        self.packed = sp.pack_windows(sp.Windows(np.ones((1, sp.HIDDEN), np.float32), [(0, 60)],
                                                 np.ones(100, bool)))

    def transcribe(self, audio, *, vocabulary=(), options=None, voices_from=None):
        self.asked_from.append(voices_from)
        return Transcription([Segment(0.0, 1.0, "the budget review")], voices=self.packed)


class NoRoomForVoices(Storage):
    """Storage whose disk refuses voice windows (and only them)."""

    def save_voice_windows(self, session_id, seq, windows):
        raise OSError(28, "No space left on device")


def _one_chunk(storage, settings, transcriber) -> str:
    pipeline = Pipeline(storage, transcriber, audio_dir=settings.audio_dir).start()
    try:
        session_id = record_through(storage, pipeline, np.full(5 * SAMPLE_RATE, 0.1, np.float32))
        assert pipeline.wait_idle(30)
    finally:
        pipeline.stop()
    return session_id


def test_voices_returned_with_the_text_are_stored_at_the_chunks_place(storage, settings):
    backend = VoicedStub()
    session_id = _one_chunk(storage, settings, backend)
    assert backend.asked_from == [0, 0]  # two chunks, no context before either
    stored = storage.voice_windows(session_id)
    assert [w.offset_ms for w in stored.values()] == [0, 4000]
    assert {w.embeddings for w in stored.values()} == {backend.packed.embeddings}


def test_voices_that_cannot_be_stored_never_fail_the_chunk(settings, caplog):
    store = NoRoomForVoices(settings.db)
    try:
        with caplog.at_level(logging.WARNING, "scribe.pipeline"):
            session_id = _one_chunk(store, settings, VoicedStub())
        assert store.chunk_counts(session_id)["done"] == 2
        assert [s.text for s in store.list_segments(session_id)] == ["the budget review"] * 2
        assert "voice windows not stored" in caplog.text
    finally:
        store.close()


# -- stored by the labeler, read again ----------------------------------------------------

@needs_model
def test_stored_windows_are_the_windows_measured_from_the_audio(storage, labelled):
    stored = storage.voice_windows(labelled)
    chunks = storage.list_chunks(labelled)
    assert sorted(stored) == [c.seq for c in chunks] and len(chunks) == 9
    for chunk in chunks:
        _assert_same_windows(sp.unpack_windows(stored[chunk.seq]), _measured(chunk))


@needs_model
def test_relabel_reads_stored_windows_and_measures_only_missing_ones(storage, labelled):
    counting = CountingEncoder()
    rows = relabel_session(storage, labelled, encoder=counting)
    assert counting.calls == 0
    labels, centroids = _speaker_ids(storage, labelled), [r.centroid for r in rows]
    assert labels == [1, 2, 3] * 3

    storage.cursor().execute("DELETE FROM voice_windows WHERE session_id = ? AND seq IN (2, 5)", [labelled])
    rows = relabel_session(storage, labelled, encoder=counting)
    assert counting.calls == 2  # only the two chunks without stored windows
    assert sorted(storage.voice_windows(labelled)) == list(range(9))  # and now they are stored

    storage.cursor().execute("DELETE FROM voice_windows WHERE session_id = ?", [labelled])
    rows = relabel_session(storage, labelled, encoder=counting)
    assert counting.calls == 2 + 9  # every chunk measured from its audio again...
    assert _speaker_ids(storage, labelled) == labels  # ...to the very same labels
    assert [r.centroid for r in rows] == centroids


@needs_model
def test_live_label_of_a_chunk_with_stored_windows_runs_no_encoder(storage, labelled):
    counting = CountingEncoder()
    before = _speaker_ids(storage, labelled)
    label_chunk(storage, labelled, 4, encoder=counting)
    assert counting.calls == 0 and _speaker_ids(storage, labelled) == before


@needs_model
def test_deleting_a_session_removes_its_voice_windows(storage, labelled):
    assert storage.voice_windows(labelled)
    chunk = storage.get_chunk(labelled, 0)
    storage.delete_session(labelled)
    assert storage.voice_windows(labelled) == {}
    assert storage.cursor().execute("SELECT count(*) FROM voice_windows").fetchone()[0] == 0
    # Windows arriving for a chunk whose session is gone are not stored.
    assert storage.save_voice_windows(labelled, 0, sp.pack_windows(_measured(chunk))) is False
    assert storage.voice_windows(labelled) == {}


# -- measured on the workers -----------------------------------------------------------------

@needs_model
def test_workers_measure_voices_and_the_app_labels_without_its_encoder(storage, settings, turns, redis_url):
    worker = TranscriptionWorker(redis_url, StubTranscriber(), threads=2).start()
    remote = RemoteTranscriber(redis_url, backend="stub", model="stub", voices=True)
    counting = CountingEncoder()
    try:
        session_id = _labelled(storage, settings, np.concatenate(turns), remote, encoder=counting)
    finally:
        remote.close()
        worker.stop()
    assert counting.calls == 0  # neither the live labels nor the relabel after stop
    assert _speaker_ids(storage, session_id) == [1, 2, 3] * 3
    stored = storage.voice_windows(session_id)
    for chunk in storage.list_chunks(session_id):
        _assert_same_windows(sp.unpack_windows(stored[chunk.seq]), _measured(chunk))


@needs_model
def test_a_worker_measures_only_the_chunks_own_audio_not_its_context(turns, redis_url):
    worker = TranscriptionWorker(redis_url, StubTranscriber()).start()
    remote = RemoteTranscriber(redis_url, backend="stub", model="stub", voices=True)
    own = read_flac_bytes(encode_bytes(turns[1], "FLAC"))  # the chunk as its file holds it
    context = read_flac_bytes(encode_bytes(turns[0][-2 * SAMPLE_RATE:], "FLAC"))
    try:
        heard = call_transcriber(remote, np.concatenate([context, own]), voices_from=context.size)
        unasked = call_transcriber(remote, own)
    finally:
        remote.close()
        worker.stop()
    assert heard.voices is not None and unasked.voices is None
    _assert_same_windows(sp.unpack_windows(heard.voices), sp.embed_windows(own))


@needs_model
def test_a_worker_without_the_speaker_model_answers_text_and_the_app_labels(storage, settings, turns, redis_url,
                                                                            tmp_path, monkeypatch, caplog):
    counting = CountingEncoder()  # the app has the model; the worker below does not
    sp.shared_encoder.cache_clear()
    monkeypatch.setattr(sp, "weights_path", lambda: tmp_path / "missing" / "pretrained.pt")
    worker = TranscriptionWorker(redis_url, StubTranscriber(), threads=2).start()
    remote = RemoteTranscriber(redis_url, backend="stub", model="stub", voices=True)
    try:
        with caplog.at_level(logging.WARNING, "scribe.distributed"):
            session_id = _labelled(storage, settings, np.concatenate(turns), remote, encoder=counting)
    finally:
        remote.close()
        worker.stop()
        monkeypatch.undo()
        sp.shared_encoder.cache_clear()
    assert caplog.text.count("no speaker model on this worker") == 1
    assert [s.text for s in storage.list_segments(session_id, LIVE)] == ["stub audio of 4.00 seconds"] * 9
    assert _speaker_ids(storage, session_id) == [1, 2, 3] * 3
    assert counting.calls == 9  # each chunk measured once in the app, then read by the relabel


@needs_model
@pytest.mark.parametrize("diarization", [True, False])
def test_the_app_asks_workers_for_voices_only_when_it_labels_speakers(settings, redis_url, diarization):
    from scribe.runtime import Runtime

    config = settings.with_changes(backend="stub", redis_url=redis_url, diarization=diarization)
    runtime = Runtime.build(config, final_pass=True, start=False)
    try:
        assert isinstance(runtime.transcriber, RemoteTranscriber)
        assert runtime.transcriber.returns_voices is diarization
        assert (runtime.speakers is not None) is diarization
    finally:
        runtime.close()
