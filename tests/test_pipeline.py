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
from scribe.pipeline import Pipeline, PipelineOptions
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
    """A pipeline with fast retries; keyword arguments naming `PipelineOptions` fields set
    those, the others go to `Pipeline` itself."""
    names = {f.name for f in fields(PipelineOptions)}
    options = PipelineOptions(**{"max_concurrency": 2, "max_attempts": 3, "retry_base_seconds": 0.0,
                                 "retry_max_seconds": 0.0, **{k: v for k, v in kw.items() if k in names}})
    pipe = Pipeline(storage, transcriber, audio_dir=tmp_path / "audio", options=options,
                    context=NoisyContext(context_seconds),
                    **{k: v for k, v in kw.items() if k not in names})
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


def test_resubmitting_a_chunk_is_a_no_op(storage, tmp_path):
    echo = EchoTranscriber()
    pipe = make_pipeline(storage, tmp_path, echo).start()
    sid = new_session(storage)
    assert pipe.submit(chunk(sid, 0))
    pipe.wait_idle(10)
    audio_before = (tmp_path / "audio" / sid / "000000.flac").read_bytes()
    assert not pipe.submit(chunk(sid, 0, seconds=2.0))
    pipe.wait_idle(10)
    assert echo.calls == 1
    assert segment_keys(storage, sid) == [(0, 0), (0, 1)]
    assert (tmp_path / "audio" / sid / "000000.flac").read_bytes() == audio_before
    pipe.stop()


def test_retry_then_success_records_attempts(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, FlakyTranscriber(failures=2)).start()
    sid = new_session(storage)
    pipe.submit(chunk(sid, 0))
    pipe.wait_idle(10)
    row = storage.get_chunk(sid, 0)
    assert (row.status, row.attempts, row.error) == ("done", 3, None)
    assert segment_keys(storage, sid) == [(0, 0), (0, 1)]
    assert pipe.stats().retried == 2
    pipe.stop()


def test_retry_then_failed_keeps_the_error(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, FlakyTranscriber(failures=99)).start()
    sid = new_session(storage)
    pipe.submit(chunk(sid, 0))
    pipe.wait_idle(10)
    row = storage.get_chunk(sid, 0)
    assert row.status == "failed" and row.attempts == 3
    assert "503" in row.error
    assert storage.list_segments(sid) == []
    pipe.stop()


def test_permanent_error_fails_without_retrying(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, FlakyTranscriber(failures=99, retryable=False)).start()
    sid = new_session(storage)
    pipe.submit(chunk(sid, 0))
    pipe.wait_idle(10)
    assert (storage.get_chunk(sid, 0).status, storage.get_chunk(sid, 0).attempts) == ("failed", 1)
    pipe.stop()


def test_a_crashing_backend_never_kills_the_workers(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, FlakyTranscriber(failures=99, exc=RuntimeError),
                         max_concurrency=1).start()
    sid = new_session(storage)
    for seq in range(3):
        pipe.submit(chunk(sid, seq))
    assert pipe.wait_idle(10)
    assert [r.status for r in storage.list_chunks(sid)] == ["failed"] * 3
    assert all("RuntimeError" in r.error for r in storage.list_chunks(sid))
    assert all(t.is_alive() for t in pipe._threads)
    pipe.stop()


def test_requeued_failed_chunks_finish_without_duplicates(storage, tmp_path):
    flaky = FlakyTranscriber(failures=3)  # fails all 3 attempts of the first round
    pipe = make_pipeline(storage, tmp_path, flaky).start()
    sid = new_session(storage)
    for seq in range(3):
        pipe.submit(chunk(sid, seq))
    pipe.wait_idle(10)
    assert storage.chunk_counts(sid)["failed"] == 3
    assert pipe.requeue(sid) == 3
    pipe.wait_idle(10)
    assert storage.chunk_counts(sid)["done"] == 3
    assert segment_keys(storage, sid) == [(s, i) for s in range(3) for i in range(2)]
    pipe.stop()


def test_retried_chunk_never_duplicates_segments(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber()).start()
    sid = new_session(storage)
    pipe.submit(chunk(sid, 0))
    pipe.wait_idle(10)
    for _ in range(3):  # re-transcribe a done chunk several times
        pipe.requeue(sid, [0])
        pipe.wait_idle(10)
    assert segment_keys(storage, sid) == [(0, 0), (0, 1)]
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


def test_submit_nowait_makes_chunks_durable_on_the_writer_thread(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber()).start()
    sid = new_session(storage)
    for seq in range(10):
        pipe.submit_nowait(chunk(sid, seq))
    assert pipe.wait_idle(10)
    assert storage.chunk_counts(sid)["done"] == 10
    pipe.stop()


@pytest.mark.parametrize("delay", [0.0, 5.0])
def test_backoff_honours_a_server_given_delay(storage, tmp_path, delay):
    sleeps: list[float] = []

    class Limited(EchoTranscriber):
        tries = 0

        def transcribe(self, audio):
            Limited.tries += 1
            if Limited.tries == 1:
                raise TranscriptionError("429 slow down", retryable=True, retry_after=delay)
            return super().transcribe(audio)

    pipe = make_pipeline(storage, tmp_path, Limited(), retry_base_seconds=0.01, retry_max_seconds=30,
                         sleep=sleeps.append).start()
    sid = new_session(storage)
    pipe.submit(chunk(sid, 0))
    pipe.wait_idle(10)
    assert len(sleeps) == 1 and sleeps[0] >= delay and sleeps[0] <= max(delay, 0.01)
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


def test_several_writers_keep_each_sessions_chunks_and_end_in_order(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber(), writer_threads=3).start()
    sessions = [new_session(storage) for _ in range(6)]
    seen_at_end: dict[str, int] = {}
    for seq in range(8):
        for sid in sessions:
            pipe.submit_nowait(chunk(sid, seq))
    for sid in sessions:
        pipe.call_after_intake(lambda sid=sid: seen_at_end.__setitem__(sid, len(storage.list_chunks(sid))), sid)
        pipe.finish_session_after_intake(sid, "stopped")
    everything: list[int] = []
    pipe.call_after_intake(lambda: everything.append(sum(len(storage.list_chunks(s)) for s in sessions)))
    assert pipe.wait_idle(30)
    assert seen_at_end == {sid: 8 for sid in sessions}  # each end ran after its own 8 chunks
    assert everything == [48]  # a session-less step ran after every writer's earlier chunks
    assert all(storage.get_session(sid).status == "done" for sid in sessions)
    assert len({t.name for t in pipe._threads if t.name.startswith("scribe-writer")}) == 3
    pipe.stop()


class HearsLength(EchoTranscriber):
    """Says how much audio it was given, in one segment at the very end of it."""

    def __init__(self) -> None:
        super().__init__()
        self.lengths: list[int] = []

    def transcribe(self, audio):
        self.lengths.append(audio.size)
        end = audio.size / SR
        return Transcription([Segment(0.0, 0.4, "context words"), Segment(end - 0.5, end, f"heard {audio.size}")])


def noisy_chunk(session: str, seq: int, seconds: float = 2.0, level: float = 0.05) -> Chunk:
    pcm = np.random.default_rng(seq).standard_normal(int(seconds * SR)).astype(np.float32) * level
    start = seq * pcm.size
    return Chunk(session, seq, start, start + pcm.size, pcm, captured_at=1000.0 + seq)


def test_noisy_chunks_are_heard_with_the_previous_chunks_tail(storage, tmp_path):
    ear = HearsLength()
    pipe = make_pipeline(storage, tmp_path, ear, max_concurrency=1, context_seconds=1.0,
                         segment_filter=None).start()
    sid = new_session(storage, policy="pause:2")
    for seq in range(3):
        pipe.submit(noisy_chunk(sid, seq))
    assert pipe.wait_idle(10)
    assert ear.lengths == [2 * SR, 3 * SR, 3 * SR]  # the first chunk has nothing before it
    later = [s for s in storage.list_segments(sid) if s.seq == 2]
    # The segment heard in the context belongs to the previous chunk and is dropped;
    # the chunk's own segment comes back in session time.
    assert [s.text for s in later] == [f"heard {3 * SR}"]
    assert (later[0].start_ms, later[0].end_ms) == (5500, 6000)
    pipe.stop()


def test_noisy_chunks_cut_mid_speech_get_no_context(storage, tmp_path):
    ear = HearsLength()
    pipe = make_pipeline(storage, tmp_path, ear, max_concurrency=1, context_seconds=1.0,
                         segment_filter=None).start()
    sid = new_session(storage, policy="fixed:2")  # cuts split words: context would duplicate them
    for seq in range(3):
        pipe.submit(noisy_chunk(sid, seq))
    assert pipe.wait_idle(10)
    assert ear.lengths == [2 * SR] * 3
    pipe.stop()


def test_quiet_chunks_get_no_context(storage, tmp_path):
    ear = HearsLength()
    pipe = make_pipeline(storage, tmp_path, ear, max_concurrency=1, context_seconds=1.0,
                         segment_filter=None).start()
    sid = new_session(storage, policy="pause:2")
    for seq in range(3):  # speech-like level with digital silence between words: no noise floor
        pcm = np.zeros(2 * SR, dtype=np.float32)
        pcm[: SR // 2] = 0.2
        pipe.submit(Chunk(sid, seq, seq * 2 * SR, (seq + 1) * 2 * SR, pcm, captured_at=1.0))
    assert pipe.wait_idle(10)
    assert ear.lengths == [2 * SR] * 3
    pipe.stop()
