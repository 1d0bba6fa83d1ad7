"""The hallucination guard: invented text on quiet audio is dropped, doubts are flagged."""

from __future__ import annotations

import time

import numpy as np
import pytest

from scribe.chunking import Chunk
from scribe.core import Segment, Transcription
from scribe.hallucination import guard_segments, is_repetitive, segment_flags
from scribe.pipeline import Pipeline

RATE = 16_000


def _noise(seconds: float, dbfs: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 10 ** (dbfs / 20)).astype(np.float32)


def test_stock_phrase_on_quiet_audio_is_dropped():
    seg = Segment(0.0, 3.0, "Thanks for watching!", confidence=0.5, no_speech_prob=0.2)
    assert guard_segments([seg], _noise(3.0, -70)) == []


def test_stock_phrase_over_speech_level_audio_is_kept_but_flagged(tone):
    seg = Segment(0.0, 3.0, "Thank you.", confidence=0.9, no_speech_prob=0.1)
    kept = guard_segments([seg], tone(3.0))
    assert [s.text for s in kept] == ["Thank you."]
    assert kept[0].flags == ["stock_phrase"]


def test_no_speech_segment_on_quiet_audio_is_dropped():
    seg = Segment(0.0, 2.0, "I'm going to go.", confidence=0.2, no_speech_prob=0.9)
    assert guard_segments([seg], _noise(2.0, -60)) == []


def test_decoding_loop_is_dropped_when_model_doubts_speech(tone):
    loop = Segment(0.0, 5.0, "the end the end the end the end the end", confidence=0.3, no_speech_prob=0.8)
    assert guard_segments([loop], tone(5.0)) == []


def test_repetition_over_speech_is_flagged_not_dropped(tone):
    seg = Segment(0.0, 5.0, "go go go go, the team said", confidence=0.8, no_speech_prob=0.05)
    kept = guard_segments([seg], tone(5.0))
    assert kept and "repetition" in kept[0].flags


def test_ordinary_speech_passes_untouched(tone):
    seg = Segment(0.0, 4.0, "Sales grew by twelve percent this quarter.", confidence=0.8, no_speech_prob=0.01)
    assert guard_segments([seg], tone(4.0)) == [seg]
    assert segment_flags(seg, tone(4.0)) == []


def test_repetition_detector_needs_a_real_loop():
    assert is_repetitive("a b a b a b a b".split())
    assert not is_repetitive("we need to go now and we need to plan".split())


class _InventingBackend:
    """Says 'Thanks for watching' whatever it hears, like Whisper on silence."""

    name, model = "inventor", "test"

    def transcribe(self, audio):
        return Transcription([Segment(0.0, audio.size / RATE, "Thanks for watching", confidence=0.4,
                                      no_speech_prob=0.7)])


def test_pipeline_applies_the_guard_for_any_backend(storage, settings):
    session = storage.create_session(title="t", source="cli", backend="inventor", model="test",
                                     chunk_seconds=5, chunk_policy="fixed:5")
    pipeline = Pipeline(storage, _InventingBackend(), audio_dir=settings.audio_dir).start()
    try:
        pcm = _noise(5.0, -70)
        pipeline.submit(Chunk(session.id, 0, 0, pcm.size, pcm, captured_at=time.time()))
        assert pipeline.wait_idle(30)
    finally:
        pipeline.stop()
    assert storage.get_chunk(session.id, 0).status == "done"
    assert storage.list_segments(session.id) == []


@pytest.fixture(scope="module")
def local_model():
    from scribe.transcribers.local import LocalWhisperTranscriber

    return LocalWhisperTranscriber()


@pytest.mark.parametrize("audio", [np.zeros(10 * RATE, np.float32), _noise(10.0, -50), _noise(10.0, -40)],
                         ids=["silence", "noise-50dBFS", "noise-40dBFS"])
def test_real_model_emits_nothing_on_silence_and_low_noise(local_model, audio):
    assert guard_segments(local_model.transcribe(audio).segments, audio) == []


def test_guard_removes_what_the_model_invents_without_its_vad():
    """Without Silero VAD, tiny.en writes "You" on silence and dots on faint noise; the guard drops them."""
    from scribe.transcribers.local import LocalWhisperTranscriber

    raw_model = LocalWhisperTranscriber(vad_filter=False)
    for audio in (np.zeros(10 * RATE, np.float32), _noise(10.0, -50)):
        assert guard_segments(raw_model.transcribe(audio).segments, audio) == []
