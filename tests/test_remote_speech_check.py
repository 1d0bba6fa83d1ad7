"""With remote workers the chunk's speech check runs on the worker, on the audio it decoded:
the app runs no VAD for the chunk lane, a silent chunk costs the worker's backend nothing
(no model time, no tokens billed) and is stored as a silent chunk checked in the app is."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import speech
from redis_server import redis_server

from scribe import retranscribe, runtime
from scribe.audio import SAMPLE_RATE
from scribe.chunking import Chunk
from scribe.distributed import RemoteTranscriber, TranscriptionWorker
from scribe.runtime import Runtime
from scribe.transcribers.base import call_transcriber
from scribe.transcribers.stub import StubTranscriber
from scribe.vad import has_speech

NOISE = np.random.default_rng(0).normal(0, 0.01, 3 * SAMPLE_RATE).astype(np.float32)
"""Loud enough to pass the level gate, so only Silero can call it silent."""


@pytest.fixture(scope="module")
def words() -> np.ndarray:
    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed")
    audio = speech.synthesize("Let's start with the budget review for the third quarter.")
    return np.pad(audio, (0, max(0, 4 * SAMPLE_RATE - audio.size)))


@pytest.fixture
def redis_url(tmp_path):
    with redis_server(tmp_path) as url:
        yield url


class CountingCheck:
    """The app's speech check (the real one), counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, audio: np.ndarray) -> bool:
        self.calls += 1
        return has_speech(audio)


def _submit(rt: Runtime, pieces: list[np.ndarray]) -> str:
    session_id = rt.storage.create_session(title="t", source="mic", backend="stub", model="stub",
                                           chunk_seconds=4, chunk_policy="fixed:4").id
    start = 0
    for seq, audio in enumerate(pieces):
        rt.pipeline.submit(Chunk(session_id, seq, start, start + audio.size, audio, time.time()))
        start += audio.size
    assert rt.pipeline.wait_idle(timeout=60)
    return session_id


def test_a_silent_chunk_is_found_by_the_worker_and_never_reaches_its_backend(settings, redis_url, words,
                                                                              monkeypatch):
    app_check = CountingCheck()
    monkeypatch.setattr(runtime, "_speech_check", lambda: app_check)
    backend = StubTranscriber()
    worker = TranscriptionWorker(redis_url, backend).start()
    rt = Runtime.build(settings.with_changes(backend="stub", redis_url=redis_url), warm=True)
    events: list[tuple[str, int]] = []
    rt.pipeline.add_listener(lambda event, fields: events.append((event, fields.get("seq", -1))))
    try:
        assert isinstance(rt.transcriber, RemoteTranscriber)
        session_id = _submit(rt, [words, NOISE])
        assert backend.calls == 1  # the speech only
        assert app_check.calls == 0  # neither the warm-up nor any chunk
        chunks = rt.storage.list_chunks(session_id)
        assert [c.status for c in chunks] == ["done", "done"]
        assert [c.skip_reason for c in chunks] == [None, "silence"]
        assert [s.seq for s in rt.storage.list_segments(session_id)] == [0]
        assert rt.pipeline.stats().skipped_silent == 1
        assert ("chunk_done", 1) in events

        # A person asking for that chunk again gets it transcribed, check or not.
        assert retranscribe.retranscribe(rt, session_id, backend="stub", seqs=[1]) == 1
        assert rt.pipeline.wait_idle(timeout=60)
        assert backend.calls == 2 and app_check.calls == 0
        assert [c.skip_reason for c in rt.storage.list_chunks(session_id)] == [None, None]
    finally:
        rt.close()
        worker.stop()


def test_the_app_with_workers_loads_no_vad_for_either_lane(settings, redis_url):
    from faster_whisper.vad import get_vad_model

    get_vad_model.cache_clear()
    rt = Runtime.build(settings.with_changes(backend="stub", redis_url=redis_url), warm=True, start=False)
    try:
        assert get_vad_model.cache_info().currsize == 0
    finally:
        rt.close()
    # Nor for the partial lane: its workers find each tick's speech.
    rt = Runtime.build(settings.with_changes(backend="stub", redis_url=redis_url), warm=True, start=False,
                       partials=True)
    try:
        assert rt.partials is not None and get_vad_model.cache_info().currsize == 0
    finally:
        rt.close()
    get_vad_model.cache_clear()
    rt = Runtime.build(settings.with_changes(backend="stub"), transcriber=StubTranscriber(), warm=True, start=False)
    try:
        assert get_vad_model.cache_info().currsize == 1  # without workers the warm-up loads it
    finally:
        rt.close()


def test_a_worker_checks_only_the_chunks_own_audio_and_only_when_asked(redis_url, words):
    backend = StubTranscriber()
    worker = TranscriptionWorker(redis_url, backend).start()
    remote = RemoteTranscriber(redis_url, backend="stub", model="stub")
    context = words[-2 * SAMPLE_RATE:]  # speech in the previous chunk's tail, in front
    try:
        asked = call_transcriber(remote, np.concatenate([context, NOISE]), speech_from=context.size)
        assert asked.silent and asked.segments == [] and backend.calls == 0
        spoken = call_transcriber(remote, np.concatenate([context, words]), speech_from=context.size)
        assert not spoken.silent and spoken.segments and backend.calls == 1
        unasked = call_transcriber(remote, NOISE)  # the final pass never asks
        assert not unasked.silent and unasked.segments and backend.calls == 2
    finally:
        remote.close()
        worker.stop()


def test_a_worker_whose_speech_check_fails_transcribes_the_chunk(redis_url, caplog):
    def broken(audio: np.ndarray) -> bool:
        raise RuntimeError("no VAD here")

    backend = StubTranscriber()
    worker = TranscriptionWorker(redis_url, backend, speech_check=broken).start()
    remote = RemoteTranscriber(redis_url, backend="stub", model="stub")
    try:
        with caplog.at_level(logging.ERROR, "scribe.vad"):
            result = call_transcriber(remote, NOISE, speech_from=0)
    finally:
        remote.close()
        worker.stop()
    assert not result.silent and result.segments and backend.calls == 1
    assert "speech check failed; transcribing the chunk anyway" in caplog.text
