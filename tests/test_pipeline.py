"""The queue's promises, checked with tiny stub backends and a real tmp DuckDB."""

import threading
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from scribe.chunking import Chunk
from scribe.core import Segment, Transcription
from scribe.errors import TranscriptionError
from scribe.noisy_context import NoisyContext
from scribe.pipeline import Pipeline, PipelineHooks, PipelineOptions
from scribe.storage import Storage

SR = 16_000


class EchoTranscriber:
    """Says which chunk it heard: the chunk's first sample encodes its seq."""

    name, model = "echo", "echo-1"

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def transcribe(self, audio):
        with self._lock:
            self.calls += 1
        return Transcription([Segment(0.0, 0.5, f"chunk {round(float(audio[0]) * 1000)}"),
                              Segment(0.5, 1.0, "and more")])


class FlakyTranscriber(EchoTranscriber):
    """Fails `failures` times per chunk before answering."""

    def __init__(self, failures: int, retryable: bool = True, exc: type = TranscriptionError) -> None:
        super().__init__()
        self.failures, self.retryable, self.exc = failures, retryable, exc
        self.seen: dict[int, int] = {}

    def transcribe(self, audio):
        key = round(float(audio[0]) * 1000)
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] <= self.failures:
            if self.exc is TranscriptionError:
                raise TranscriptionError("HTTP 503 from backend", retryable=self.retryable)
            raise self.exc("backend crashed")
        return super().transcribe(audio)


def chunk(session: str, seq: int, seconds: float = 1.0) -> Chunk:
    pcm = np.full(int(seconds * SR), 0.2, dtype=np.float32)
    pcm[0] = seq / 1000  # lets the echo backend tell chunks apart
    start = seq * len(pcm)
    return Chunk(session, seq, start, start + len(pcm), pcm, captured_at=1000.0 + seq)


_made: list[Pipeline] = []


@pytest.fixture(autouse=True)
def stop_pipelines():
    """Every pipeline a test made is stopped, also when the test fails half-way."""
    yield
    while _made:
        _made.pop().stop(timeout=5)


def make_pipeline(storage: Storage, tmp_path: Path, transcriber, *, context_seconds: float = 0.0,
                  **kw) -> Pipeline:
    """A pipeline with fast retries; keyword arguments naming `PipelineOptions` or
    `PipelineHooks` fields set those, the others go to `Pipeline` itself."""
    options_names = {f.name for f in fields(PipelineOptions)}
    hook_names = {f.name for f in fields(PipelineHooks)}
    options = PipelineOptions(**{"max_concurrency": 2, "max_attempts": 3, "retry_base_seconds": 0.0,
                                 "retry_max_seconds": 0.0, **{k: v for k, v in kw.items() if k in options_names}})
    hooks = PipelineHooks(**{"context": NoisyContext(context_seconds),
                             **{k: v for k, v in kw.items() if k in hook_names}})
    pipe = Pipeline(storage, transcriber, audio_dir=tmp_path / "audio", options=options, hooks=hooks,
                    **{k: v for k, v in kw.items() if k not in options_names | hook_names})
    _made.append(pipe)
    return pipe


def new_session(storage: Storage, status: str = "recording", policy: str = "fixed:1") -> str:
    return storage.create_session(title="t", source="cli", backend="echo", model="echo-1",
                                  chunk_seconds=1, chunk_policy=policy, status=status).id


def segment_keys(storage: Storage, session: str) -> list[tuple[int, int]]:
    return [(s.seq, s.idx) for s in storage.list_segments(session)]


class GatedEchoTranscriber(EchoTranscriber):
    """Holds its first call until released, so every later chunk is already queued
    and the order the backend hears them is the queue's own order."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.heard: list[int] = []

    def transcribe(self, audio):
        self.release.wait(10)
        self.heard.append(round(float(audio[0]) * 1000))
        return super().transcribe(audio)


def test_submitted_chunks_are_transcribed_in_order_of_seq(storage, tmp_path):
    backend = GatedEchoTranscriber()
    pipe = make_pipeline(storage, tmp_path, backend, max_concurrency=1).start()
    sid = new_session(storage)
    for seq in range(5):
        assert pipe.submit(chunk(sid, seq))
    backend.release.set()
    assert pipe.wait_idle(10)
    assert backend.heard == list(range(5))
    texts = [s.text for s in storage.list_segments(sid) if s.idx == 0]
    assert texts == [f"chunk {n}" for n in range(5)]
    rows = storage.list_chunks(sid)
    assert all(r.status == "done" and r.attempts == 1 for r in rows)
    assert all(r.captured_at <= r.enqueued_at <= r.started_at <= r.finished_at for r in rows)
    assert all(r.backend == "echo" and r.model == "echo-1" for r in rows)
    pipe.stop()


def test_recovery_after_a_crash_finishes_left_over_chunks(settings, tmp_path):
    db = settings.db
    first = Storage(db)
    sid = new_session(first, status="stopped")
    crashed = make_pipeline(first, tmp_path, EchoTranscriber())  # never started: as if it died
    for seq in range(4):
        crashed.submit(chunk(sid, seq))
    # One chunk was mid-transcription when the process died.
    first.claim_chunk(sid, 1, backend="echo", model="echo-1", now=2000.0)
    first.close()

    second = Storage(db)
    echo = EchoTranscriber()
    pipe = make_pipeline(second, tmp_path, echo).start()
    assert pipe.wait_idle(10)
    assert [r.status for r in second.list_chunks(sid)] == ["done"] * 4
    assert segment_keys(second, sid) == [(s, i) for s in range(4) for i in range(2)]
    assert echo.calls == 4
    assert second.get_session(sid).status == "done"
    pipe.stop()
    second.close()


def test_recovery_fails_chunks_whose_audio_is_gone(settings, tmp_path):
    first = Storage(settings.db)
    sid = new_session(first)
    make_pipeline(first, tmp_path, EchoTranscriber()).submit(chunk(sid, 0))
    (tmp_path / "audio" / sid / "000000.flac").unlink()
    pipe = make_pipeline(first, tmp_path, EchoTranscriber()).start()
    pipe.wait_idle(5)
    row = first.get_chunk(sid, 0)
    assert row.status == "failed" and "missing" in row.error
    pipe.stop()


def test_stopped_session_becomes_done_when_its_queue_drains(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber()).start()
    sid = new_session(storage)
    drained = []
    pipe.add_listener(lambda event, fields: drained.append(fields) if event == "session_drained" else None)
    pipe.submit(chunk(sid, 0))
    pipe.wait_idle(10)
    assert storage.get_session(sid).status == "recording"  # still recording: not done
    pipe.submit(chunk(sid, 1))
    pipe.finish_session(sid, "stopped")
    pipe.wait_idle(10)
    assert storage.get_session(sid).status == "done"
    assert storage.get_session(sid).duration_ms == 2000
    assert drained == [{"session_id": sid}]
    pipe.stop()


def test_session_already_transcribed_is_done_as_soon_as_it_stops(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber()).start()
    sid = new_session(storage)
    pipe.submit(chunk(sid, 0))
    pipe.wait_idle(10)
    pipe.finish_session(sid, "stopped")
    assert storage.get_session(sid).status == "done"
    pipe.stop()


def test_interrupted_session_stays_interrupted_after_draining(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber()).start()
    sid = new_session(storage)
    pipe.submit(chunk(sid, 0))
    pipe.finish_session(sid, "interrupted")
    pipe.wait_idle(10)
    assert storage.get_session(sid).status == "interrupted"
    assert storage.chunk_counts(sid)["done"] == 1
    pipe.stop()


def test_every_pipeline_log_line_names_session_and_seq(storage, tmp_path, caplog):
    caplog.set_level("DEBUG", logger="scribe.pipeline")
    pipe = make_pipeline(storage, tmp_path, FlakyTranscriber(failures=1)).start()
    sid = new_session(storage)
    pipe.submit(chunk(sid, 0))
    pipe.wait_idle(10)
    pipe.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "scribe.pipeline"]
    per_chunk = [line for line in lines if "recovered" not in line]
    assert per_chunk and all(f"session={sid}" in line and "seq=0" in line for line in per_chunk)
