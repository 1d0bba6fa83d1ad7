"""The job queue's promises: claims, retries, backoff, requeue, context; alone and through
the pipeline, with tiny stub backends and a real tmp DuckDB."""

import time

import numpy as np
import pytest
from test_pipeline import SR, EchoTranscriber, FlakyTranscriber, chunk, make_pipeline, new_session, segment_keys

from scribe.chunking import Chunk
from scribe.core import Segment, Transcription
from scribe.errors import TranscriptionError
from scribe.health import StorageHealth
from scribe.intake import Intake
from scribe.jobqueue import JobQueue
from scribe.pipeline_options import PipelineOptions


def test_a_queue_alone_runs_a_stored_row_and_tells_its_listeners(storage, tmp_path):
    sid = new_session(storage)
    Intake(storage, audio_dir=tmp_path / "audio", health=StorageHealth(),
           on_stored=lambda c: None).submit(chunk(sid, 0))  # a pending row, queued by nobody
    jobs = JobQueue(storage, FlakyTranscriber(failures=1), health=StorageHealth(),
                    options=PipelineOptions(max_attempts=3, retry_base_seconds=0.0, retry_max_seconds=0.0))
    events: list[str] = []
    jobs.add_listener(lambda event, fields: events.append(event))
    jobs.start()
    jobs.enqueue((sid, 0), 1.0)
    jobs.enqueue((sid, 0), 1.0)  # queued once
    assert jobs.wait_empty(deadline=time.monotonic() + 10)
    assert storage.get_chunk(sid, 0).status == "done" and segment_keys(storage, sid) == [(0, 0), (0, 1)]
    assert events == ["chunk_retry", "chunk_done"]
    assert jobs.counters()["processed"] == 1 and jobs.counters()["retried"] == 1
    jobs.request_stop()
    jobs.join(time.monotonic() + 10)


def test_recover_queues_unfinished_rows_and_fails_those_without_audio(storage, tmp_path):
    sid = new_session(storage)
    intake = Intake(storage, audio_dir=tmp_path / "audio", health=StorageHealth(), on_stored=lambda c: None)
    intake.submit(chunk(sid, 0))
    intake.submit(chunk(sid, 1))
    intake.audio_path(sid, 1).unlink()
    jobs = JobQueue(storage, EchoTranscriber(), health=StorageHealth())
    assert jobs.recover() == 1
    assert storage.get_chunk(sid, 1).status == "failed"
    assert jobs.counters()["queued"] == 1 and not jobs.is_empty()


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
    assert all(t.is_alive() for t in pipe.jobs._threads) and pipe.stats().workers_alive == 1
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
