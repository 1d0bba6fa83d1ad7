"""Faults the queue must survive: storage outages, errors inside jobs, deletes mid-job."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import duckdb
import numpy as np
from test_pipeline import EchoTranscriber, chunk, make_pipeline, new_session
from waiting import eventually

from scribe.core import FINAL
from scribe.final_pass import run_final_pass
from scribe.health import StorageHealth, is_storage_fault
from scribe.storage import Storage


class FullDisk(Storage):
    """A real DuckDB whose commits fail while `full` is set, as they do on a full disk."""

    def __init__(self, path) -> None:
        self.full = threading.Event()
        self.refused = 0
        super().__init__(path)

    @contextmanager
    def transaction(self):
        with super().transaction() as cur:
            yield cur
            if self.full.is_set():
                self.refused += 1
                raise duckdb.TransactionException(
                    'Failed to commit: Could not write file "scribe.duckdb.wal": No space left on device')


def test_storage_faults_are_told_apart_from_bad_jobs():
    assert is_storage_fault(duckdb.TransactionException("Failed to commit: No space left on device"))
    assert is_storage_fault(OSError(28, "No space left on device"))
    assert not is_storage_fault(ValueError("bad chunk"))
    assert not is_storage_fault(duckdb.ConstraintException("duplicate key"))
    assert not is_storage_fault(FileNotFoundError(2, "gone"))


def test_a_full_disk_pauses_the_workers_and_they_resume_when_space_returns(settings, tmp_path, caplog):
    storage = FullDisk(settings.db)
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber(), max_concurrency=2,
                         health=StorageHealth(base_seconds=0.05, max_seconds=0.2)).start()
    sid = new_session(storage, status="stopped")
    for seq in range(3):
        pipe.submit(chunk(sid, seq))
    assert pipe.wait_idle(10)
    storage.full.set()  # the disk fills: every commit fails, including recording the failure
    for seq in range(3, 8):
        pipe.submit_nowait(chunk(sid, seq))
    assert eventually(lambda: storage.refused >= 6 and not pipe.stats().storage_ok)
    time.sleep(0.5)
    stats = pipe.stats()
    assert stats.workers_alive == 2 and stats.storage_faults >= 2
    assert "No space left" in stats.storage_error
    assert not pipe.is_idle()
    storage.full.clear()  # space is freed: nothing to restart
    assert pipe.wait_idle(20)
    rows = storage.list_chunks(sid)
    assert [r.status for r in rows] == ["done"] * 8
    assert [r.seq for r in rows] == list(range(8))
    assert storage.repeated_live_segments([sid]) == 0
    assert len(storage.list_segments(sid)) == 16  # two per chunk, none lost or doubled
    assert pipe.stats().storage_ok and pipe.stats().workers_alive == 2
    assert storage.get_session(sid).status == "done"
    outage_lines = [r for r in caplog.records if "storage cannot write" in r.getMessage()]
    assert len(outage_lines) == 1  # logged once per outage, not once per job or retry
    assert not any(r.exc_info for r in caplog.records if r.name == "scribe.pipeline")
    pipe.stop()
    storage.close()


def test_the_text_of_a_chunk_is_stored_after_the_outage_without_calling_the_backend_again(settings, tmp_path):
    storage = FullDisk(settings.db)
    echo = EchoTranscriber()

    class FillsDiskWhileTranscribing(EchoTranscriber):
        def transcribe(self, audio):
            storage.full.set()
            return echo.transcribe(audio)

    pipe = make_pipeline(storage, tmp_path, FillsDiskWhileTranscribing(), max_concurrency=1,
                         health=StorageHealth(base_seconds=0.05, max_seconds=0.1)).start()
    sid = new_session(storage, status="stopped")
    pipe.submit(chunk(sid, 0))
    assert eventually(lambda: storage.refused >= 3)
    storage.full.clear()
    assert pipe.wait_idle(10)
    assert storage.get_chunk(sid, 0).status == "done"
    assert storage.get_chunk(sid, 0).attempts == 1  # the outage cost no attempt
    assert echo.calls == 1  # the held text was written, not transcribed again
    pipe.stop()
    storage.close()


def test_an_error_inside_a_job_is_retried_with_backoff_and_never_kills_a_worker(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber(), max_concurrency=1, max_attempts=5,
                         retry_base_seconds=0.3, retry_max_seconds=0.3)
    sid = new_session(storage, status="stopped")
    pipe.submit(chunk(sid, 0))
    path = pipe.audio_path(sid, 0)
    good = path.read_bytes()
    path.write_bytes(b"not flac at all")  # reading it fails inside the job
    pipe.start()
    assert eventually(lambda: pipe.stats().job_errors >= 1)
    path.write_bytes(good)  # the next try, after the backoff, succeeds
    assert pipe.wait_idle(10)
    row = storage.get_chunk(sid, 0)
    assert row.status == "done" and row.attempts == 2
    assert pipe.stats().workers_alive == 1
    pipe.stop()


def test_an_unreadable_chunk_fails_after_its_attempts_with_the_reason(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber(), max_concurrency=1, max_attempts=3,
                         retry_base_seconds=0.01, retry_max_seconds=0.05)
    sid = new_session(storage, status="stopped")
    pipe.submit(chunk(sid, 0))
    pipe.audio_path(sid, 0).write_bytes(b"not flac at all")
    pipe.start()
    assert pipe.wait_idle(10)
    row = storage.get_chunk(sid, 0)
    assert row.status == "failed" and row.attempts == 3
    assert "AudioDecodeError" in row.error
    assert pipe.stats().job_errors == 3 and pipe.stats().workers_alive == 1
    pipe.stop()


def test_segments_of_a_deleted_session_are_refused(storage, tmp_path):
    release = threading.Event()

    class Slow(EchoTranscriber):
        def transcribe(self, audio):
            release.wait(10)
            return super().transcribe(audio)

    pipe = make_pipeline(storage, tmp_path, Slow(), max_concurrency=1).start()
    sid = new_session(storage, status="stopped")
    pipe.submit(chunk(sid, 0))
    assert eventually(lambda: storage.get_chunk(sid, 0).status == "processing")
    storage.delete_session(sid)  # e.g. a decode error discards the half-read session
    release.set()
    assert pipe.wait_idle(10)
    assert storage.transcript_counts(sid) == {}
    assert storage.cursor().execute("SELECT count(*) FROM segments").fetchone()[0] == 0
    pipe.stop()


def test_a_session_deleted_during_its_final_pass_keeps_no_final_transcript(storage, tmp_path):
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber(), max_concurrency=1).start()
    sid = new_session(storage, status="stopped")
    pipe.submit(chunk(sid, 0))
    assert pipe.wait_idle(10)

    class DeletesMidPass(EchoTranscriber):
        def transcribe(self, audio):
            storage.delete_session(sid)
            return super().transcribe(audio)

    assert run_final_pass(storage, DeletesMidPass(), sid) == []
    assert storage.transcript_counts(sid) == {}
    assert storage.cursor().execute("SELECT count(*) FROM segments WHERE transcript = ?",
                                    [FINAL]).fetchone()[0] == 0
    pipe.stop()


def test_stats_keep_their_existing_keys(storage, tmp_path):
    stats = make_pipeline(storage, tmp_path, EchoTranscriber()).stats()
    for key in ("queued", "in_flight", "intake", "processed", "failed", "retried", "audio_seconds_done",
                "audio_seconds_waiting", "intake_audio_seconds", "skipped_silent"):
        assert hasattr(stats, key)
    assert np.isfinite(stats.backlog_seconds)


class SlowDisk(Storage):
    """A real DuckDB whose chunk inserts wait while `stalled` is set (writers fall behind)."""

    def __init__(self, path) -> None:
        self.stalled = threading.Event()
        super().__init__(path)

    def insert_chunk(self, row):
        while self.stalled.is_set():
            time.sleep(0.01)
        return super().insert_chunk(row)


def test_live_intake_spills_to_disk_past_its_memory_bound_and_loses_nothing(settings, tmp_path):
    storage = SlowDisk(settings.db)
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber(), writer_threads=1,
                         intake_memory_seconds=3.0, intake_session_seconds=2.0).start()
    a, b = new_session(storage, status="recording"), new_session(storage, status="recording")
    storage.stalled.set()
    peak = 0.0
    for seq in range(6):
        for sid in (a, b):
            pipe.submit_nowait(chunk(sid, seq))  # returns at once even though the writer is stuck
            peak = max(peak, pipe.stats().intake_memory_seconds)
    stats = pipe.stats()
    assert peak <= 3.0 + 1e-9 and stats.intake_spilled >= 8
    assert stats.intake_audio_seconds == 12.0  # still counted as backlog until its row commits
    spilled = sorted(p.name for p in (tmp_path / "audio" / a).glob("*.flac"))
    assert len(spilled) >= 4  # written by the feeding thread, before any row
    storage.stalled.clear()
    for sid in (a, b):
        pipe.finish_session_after_intake(sid, "stopped")
    assert pipe.wait_idle(20)
    for sid in (a, b):
        rows = storage.list_chunks(sid)
        assert [r.seq for r in rows] == list(range(6)) and {r.status for r in rows} == {"done"}
        assert storage.repeated_live_segments([sid]) == 0
        assert storage.get_session(sid).status == "done"
        assert not list((tmp_path / "audio" / sid).glob("*.json"))
    assert pipe.stats().intake_memory_seconds == 0
    pipe.stop()
    storage.close()


def test_a_feeder_that_can_wait_is_held_back_instead_of_spilling(settings, tmp_path):
    storage = SlowDisk(settings.db)
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber(), writer_threads=1,
                         intake_memory_seconds=2.0, intake_session_seconds=2.0).start()
    sid = new_session(storage, status="recording")
    storage.stalled.set()
    fed = []

    def feeder():
        for seq in range(5):
            pipe.submit_nowait(chunk(sid, seq), wait_for_room=True)
            fed.append(seq)

    thread = threading.Thread(target=feeder, daemon=True)
    thread.start()
    time.sleep(0.5)
    assert len(fed) <= 3 and pipe.stats().intake_memory_seconds <= 2.0  # waiting, not growing
    storage.stalled.clear()
    thread.join(10)
    assert fed == list(range(5)) and pipe.stats().intake_spilled == 0
    assert pipe.wait_idle(10)
    assert [r.status for r in storage.list_chunks(sid)] == ["done"] * 5
    pipe.stop()
    storage.close()


def test_an_outage_shows_in_metrics_and_on_the_analytics_health_panel(storage, tmp_path):
    from prometheus_client import generate_latest

    from scribe import analytics
    from scribe.metrics import PipelineMetrics

    health = StorageHealth(base_seconds=5.0)
    pipe = make_pipeline(storage, tmp_path, EchoTranscriber(), health=health).start()
    metrics = PipelineMetrics(pipe)
    assert b"scribe_storage_ok 1.0" in generate_latest(metrics.registry)
    assert b"scribe_workers_alive 2.0" in generate_latest(metrics.registry)
    health.failed(duckdb.IOException("Could not write file: No space left on device"))
    text = generate_latest(metrics.registry)
    assert b"scribe_storage_ok 0.0" in text and b"scribe_storage_faults 1.0" in text
    check = analytics.workers_check(pipe.stats())
    assert not check.ok and "No space left on device" in check.detail and "resumes by itself" in check.detail
    health.succeeded()
    assert analytics.workers_check(pipe.stats()).ok
    pipe.stop()
