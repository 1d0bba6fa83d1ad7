"""Silent chunks are never sent; a slow backend builds a visible backlog and loses nothing."""

from __future__ import annotations

import time

import numpy as np
import pytest
import speech

from scribe import retranscribe
from scribe.backpressure import assess_backlog
from scribe.chunking import Chunk
from scribe.pipeline import Pipeline
from scribe.runtime import Runtime
from scribe.transcribers.stub import StubTranscriber
from scribe.vad import has_speech


def _chunks(session_id: str, n: int, audio: np.ndarray) -> list[Chunk]:
    return [Chunk(session_id, seq, seq * audio.size, (seq + 1) * audio.size, audio, time.time())
            for seq in range(n)]


def _session(storage) -> str:
    return storage.create_session(title="t", source="mic", backend="stub", model="m", chunk_seconds=1.0,
                                  chunk_policy="fixed:1").id


def test_vad_tells_speech_from_silence_noise_and_tones(tone):
    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed")
    words = speech.synthesize("Let's start with the budget review for the third quarter.")
    noise = np.random.default_rng(0).normal(0, 0.01, 32_000).astype(np.float32)
    assert has_speech(words)
    assert not has_speech(np.zeros(32_000, np.float32))
    assert not has_speech(noise) and not has_speech(tone(2.0)) and not has_speech(np.zeros(0, np.float32))


def test_silent_chunk_never_reaches_the_backend_unless_a_person_asks(settings):
    stub = StubTranscriber()
    rt = Runtime.build(settings.with_changes(backend="stub"), transcriber=stub)
    session_id = _session(rt.storage)
    quiet = np.full(16_000, 1e-4, np.float32)
    for chunk in _chunks(session_id, 2, quiet):
        rt.pipeline.submit(chunk)
    assert rt.pipeline.wait_idle(timeout=30)
    assert stub.calls == 0 and rt.storage.list_segments(session_id) == []
    assert [c.skip_reason for c in rt.storage.list_chunks(session_id)] == ["silence", "silence"]

    assert retranscribe.retranscribe(rt, session_id, backend="stub", seqs=[1]) == 1
    assert rt.pipeline.wait_idle(timeout=30)
    assert stub.calls == 1
    assert [c.skip_reason for c in rt.storage.list_chunks(session_id)] == ["silence", None]
    rt.close()


def test_slow_backend_builds_a_backlog_that_warns_and_drops_nothing(settings, storage, tone):
    pipeline = Pipeline(storage, StubTranscriber(latency=(0.15, 0.15)), audio_dir=settings.audio_dir)
    session_id = _session(storage)
    for chunk in _chunks(session_id, 12, tone(1.0)):
        pipeline.submit_nowait(chunk)  # before start(): everything is still in the writer's queue
    stats = pipeline.stats()
    assert stats.intake == 12 and stats.intake_audio_seconds == pytest.approx(12.0)
    backlog = assess_backlog(stats, warn_seconds=5.0, requests_per_minute=60)
    assert backlog.warn and backlog.chunks == 12 and backlog.catch_up_seconds == pytest.approx(12.0)
    assert "12 s of audio waiting" in backlog.message() and "no audio is dropped" in backlog.message()

    pipeline.start()
    assert pipeline.wait_idle(timeout=30)
    stats = pipeline.stats()
    assert stats.backlog_seconds == 0 and not assess_backlog(stats, warn_seconds=5.0).warn
    assert storage.chunk_counts(session_id)["done"] == 12
    assert [s.seq for s in storage.list_segments(session_id)] == list(range(12))
    pipeline.stop()


def test_runtime_backlog_uses_the_settings_threshold(settings):
    rt = Runtime.build(settings.with_changes(backend="stub", backlog_warn_seconds=1.0), start=False)
    session_id = _session(rt.storage)
    for chunk in _chunks(session_id, 3, np.ones(16_000, np.float32) * 0.1):
        rt.pipeline.submit_nowait(chunk)
    backlog = rt.backlog()
    assert backlog.warn and backlog.catch_up_seconds is None  # the stub has no rate limit
    rt.storage.close()
