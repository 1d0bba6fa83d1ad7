"""scribe.analytics: per-chunk latencies, percentiles, throughput, queue depth, health."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scribe import analytics
from scribe.backpressure import assess_backlog, judge_backlog
from scribe.core import ChunkRow
from scribe.pipeline import PipelineStats
from scribe.storage import Storage

T0 = 1_700_000_000.0
CHUNK_S = 15
RATE = 16_000


def _session(storage: Storage, backend: str = "stub", model: str = "m") -> str:
    return storage.create_session(title="t", source="cli", backend=backend, model=model,
                                  chunk_seconds=CHUNK_S, chunk_policy="fixed:15", now=T0).id


def _chunk(storage: Storage, sid: str, seq: int, *, captured: float, store: float = 0.1,
           wait: float | None = None, processing: float | None = None, status: str = "done",
           backend: str = "stub", model: str = "m", retries: int = 0) -> None:
    """One chunk with chosen hop times: captured -> +store enqueued -> +wait started -> +processing."""
    storage.insert_chunk(ChunkRow(sid, seq, seq * CHUNK_S * 1000, (seq + 1) * CHUNK_S * 1000,
                                  seq * CHUNK_S * RATE, (seq + 1) * CHUNK_S * RATE, "x", "pending",
                                  captured_at=captured, enqueued_at=captured + store))
    if wait is None:
        return
    started = captured + store + wait
    storage.claim_chunk(sid, seq, backend=backend, model=model, now=started)
    for _ in range(retries):
        storage.record_retry(sid, seq, "503")
    if status == "done":
        storage.save_segments(sid, seq, [], finished_at=started + processing)
    elif status == "failed":
        storage.fail_chunk(sid, seq, "boom", finished_at=started + processing)


def test_hop_latencies_follow_the_chunk_timeline(storage: Storage) -> None:
    sid = _session(storage)
    _chunk(storage, sid, 0, captured=T0, store=0.2, wait=1.0, processing=3.0)
    row = analytics.load_chunks(storage).iloc[0]
    assert row["audio_s"] == CHUNK_S
    assert row["store_s"] == pytest.approx(0.2)
    assert row["queue_wait_s"] == pytest.approx(1.0)
    assert row["processing_s"] == pytest.approx(3.0)
    assert row["end_to_end_s"] == pytest.approx(4.2)
    assert row["rtf"] == pytest.approx(3.0 / CHUNK_S)


def test_open_and_failed_chunks_have_no_end_to_end_latency(storage: Storage) -> None:
    sid = _session(storage)
    _chunk(storage, sid, 0, captured=T0, wait=0.5, processing=2.0, status="failed", retries=2)
    _chunk(storage, sid, 1, captured=T0 + 15)  # still pending
    df = analytics.load_chunks(storage)
    failed, pending = df.iloc[0], df.iloc[1]
    assert math.isnan(failed["end_to_end_s"]) and failed["processing_s"] == pytest.approx(2.0)
    assert failed["retries"] == 2
    assert math.isnan(pending["queue_wait_s"]) and math.isnan(pending["processing_s"])


def test_percentiles_of_known_values() -> None:
    values = pd.Series([float(v) for v in range(1, 101)] + [float("nan")])
    p = analytics.percentiles(values)
    assert p["n"] == 100
    assert p["p50"] == pytest.approx(50.5)
    assert p["p95"] == pytest.approx(95.05)
    assert p["p99"] == pytest.approx(99.01)
    assert math.isnan(analytics.percentiles(pd.Series([], dtype=float))["p50"])


def test_throughput_counts_chunks_and_audio_per_minute(storage: Storage) -> None:
    sid = _session(storage)
    for seq in range(6):  # six 15 s chunks finishing within the first minute
        _chunk(storage, sid, seq, captured=T0 + seq * 5, wait=0.0, processing=1.0)
    out = analytics.throughput(analytics.load_chunks(storage), bin_seconds=60)
    assert out["chunks"].sum() == 6
    first = out.iloc[0]
    assert first["chunks_per_min"] == pytest.approx(first["chunks"])
    assert first["audio_min_per_min"] == pytest.approx(first["chunks"] * CHUNK_S / 60)


def test_queue_depth_is_reconstructed_from_hop_times(storage: Storage) -> None:
    sid = _session(storage)
    # two chunks enqueued together; one worker: the second waits for the first
    _chunk(storage, sid, 0, captured=T0, store=0.0, wait=0.0, processing=2.0)
    _chunk(storage, sid, 1, captured=T0, store=0.0, wait=2.0, processing=2.0)
    depth = analytics.queue_depth(analytics.load_chunks(storage)).set_index("time")
    at = lambda s: depth.loc[pd.Timestamp(T0 + s, unit="s", tz="UTC")]  # noqa: E731
    assert (at(0)["waiting"], at(0)["processing"]) == (1, 1)
    assert at(0)["waiting_audio_s"] == CHUNK_S
    assert (at(2)["waiting"], at(2)["processing"]) == (0, 1)
    assert (at(4)["waiting"], at(4)["processing"]) == (0, 0)


def test_rtf_and_failures_are_grouped_by_backend_and_model(storage: Storage) -> None:
    a, b = _session(storage), _session(storage, backend="local", model="tiny.en")
    for seq in range(4):
        _chunk(storage, a, seq, captured=T0 + seq, wait=0, processing=1.5)
        status = "failed" if seq == 0 else "done"
        _chunk(storage, b, seq, captured=T0 + seq, wait=0, processing=3.0, status=status,
               backend="local", model="tiny.en", retries=1 if seq == 1 else 0)
    df = analytics.load_chunks(storage)
    rtf = analytics.rtf_by_backend(df).set_index("backend")
    assert rtf.loc["stub", "rtf_p50"] == pytest.approx(0.1)
    assert rtf.loc["local", "chunks"] == 3
    fails = analytics.failures(df).set_index("backend")
    assert fails.loc["local", "failed"] == 1 and fails.loc["local", "retries"] == 1
    assert fails.loc["local", "failure_rate"] == pytest.approx(0.25)
    assert fails.loc["stub", "failure_rate"] == 0


def test_filters_select_session_backend_and_time(storage: Storage) -> None:
    a, b = _session(storage), _session(storage, backend="local", model="tiny.en")
    _chunk(storage, a, 0, captured=T0, wait=0, processing=1)
    _chunk(storage, b, 0, captured=T0 + 3600, wait=0, processing=1, backend="local", model="tiny.en")
    assert list(analytics.load_chunks(storage, session_ids=[a])["session_id"]) == [a]
    assert list(analytics.load_chunks(storage, backends=["local"])["session_id"]) == [b]
    assert list(analytics.load_chunks(storage, since=T0 + 60)["session_id"]) == [b]
    assert analytics.load_chunks(storage, until=T0 - 1).empty


def test_health_flags_each_alert_condition(storage: Storage) -> None:
    sid = _session(storage)
    for seq in range(10):  # p95 processing 12 s, 1 failure in 10
        _chunk(storage, sid, seq, captured=T0 + seq * 15, wait=0, processing=12.0,
               status="failed" if seq == 0 else "done")
    df = analytics.load_chunks(storage)
    checks = {c.name: c for c in analytics.health(df, backlog=judge_backlog(400, 27, warn_seconds=300),
                                                          memory_percent=90)}
    assert not any(c.ok for c in checks.values())
    calm = {c.name: c for c in analytics.health(df.iloc[1:2], backlog=judge_backlog(10, 1, warn_seconds=300),
                                                        memory_percent=20)}
    assert calm["Backlog"].ok and calm["Memory"].ok and calm["Failures"].ok
    assert not calm["p95 processing"].ok


def test_health_estimates_backlog_from_open_chunks(storage: Storage) -> None:
    sid = _session(storage)
    for seq in range(21):  # 21 x 15 s = 315 s pending, over the 300 s line
        _chunk(storage, sid, seq, captured=T0 + seq)
    backlog = analytics.health(analytics.load_chunks(storage), memory_percent=1)[0]
    assert backlog.value == 21 * CHUNK_S and not backlog.ok


def test_csv_has_one_row_per_chunk_with_latency_columns(storage: Storage) -> None:
    sid = _session(storage)
    for seq in range(3):
        _chunk(storage, sid, seq, captured=T0 + seq, wait=0.1, processing=1)
    lines = analytics.to_csv(analytics.load_chunks(storage)).decode().splitlines()
    header = lines[0].split(",")
    assert len(lines) == 4
    assert {"session_id", "seq", "queue_wait_s", "processing_s", "end_to_end_s", "rtf"} <= set(header)


def test_empty_database_gives_empty_frames(storage: Storage) -> None:
    df = analytics.load_chunks(storage)
    assert df.empty
    assert analytics.throughput(df).empty and analytics.queue_depth(df).empty
    assert analytics.rtf_by_backend(df).empty and analytics.failures(df).empty
    assert analytics.summary(df)["chunks"] == 0
    assert [c.ok for c in analytics.health(df, memory_percent=10)] == [True] * 4


def test_the_health_panel_and_the_record_page_give_one_backlog_verdict(storage: Storage) -> None:
    # Little queued, much still being written: the verdict counts all audio not yet transcribed.
    stats = PipelineStats(queued=1, in_flight=0, intake=25, processed=0, failed=0, retried=0,
                          audio_seconds_done=0.0, audio_seconds_waiting=15.0, intake_audio_seconds=375.0)
    backlog = assess_backlog(stats, warn_seconds=300)
    panel = analytics.health(analytics.load_chunks(storage), backlog=backlog, memory_percent=1)[0]
    assert backlog.message() is not None and "6 min 30 s of audio waiting" in backlog.message()
    assert (panel.name, panel.ok, panel.value, panel.threshold) == ("Backlog", False, 390.0, 300)
    calm = assess_backlog(stats, warn_seconds=400)
    assert calm.message() is None and analytics.health(analytics.load_chunks(storage), backlog=calm,
                                                       memory_percent=1)[0].ok


def test_the_cli_and_analytics_report_one_percentile(capsys) -> None:
    from scribe.cli.printers import print_timing
    from scribe.core import ChunkRow

    seconds = [0.5, 1.0, 4.0, 9.0]
    chunks = [ChunkRow(session_id="s", seq=i, start_ms=0, end_ms=1000, start_sample=0, end_sample=16000,
                       audio_path="", status="done", attempts=1, started_at=100.0, finished_at=100.0 + s)
              for i, s in enumerate(seconds)]
    print_timing(chunks, "s", 4.0, 1.0, {"done": 4, "failed": 0})
    p = analytics.percentiles(pd.Series(seconds))
    assert f"p50 {p['p50']:.2f} s, p95 {p['p95']:.2f} s" in capsys.readouterr().err
    assert p["p95"] == pytest.approx(float(np.percentile(seconds, 95)))  # 8.25, not the nearest rank's 9.0
