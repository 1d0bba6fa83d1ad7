"""The load test: a short, fast run loses and duplicates nothing and reports well-formed figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from scribe import bench
from scribe.bench import BenchConfig, run_bench
from scribe.cli import build_parser, main
from scribe.errors import SettingsError, TranscriptionError
from scribe.storage import Storage

KEYS = {"sessions", "chunks_expected", "chunks_stored", "lost", "duplicated", "latency_p50_s",
        "latency_p95_s", "latency_p99_s", "throughput_chunks_per_min", "backlog_end", "peak_rss_mb"}


def test_short_fast_bench_via_cli_prints_one_json_object(capsys) -> None:
    code = main(["bench", "--sessions", "3", "--minutes", "0.3", "--backend", "stub",
                 "--stub-latency", "0-0.05", "--concurrency", "4", "--fast", "--policy", "fixed:5",
                 "--json"])
    out = capsys.readouterr().out
    report = json.loads(out)  # exactly one JSON object on stdout
    assert code == 0
    assert KEYS <= set(report)
    assert report["sessions"] == 3
    # 18 s per session cut every 5 s: 3 full chunks and a 3 s tail, times 3 sessions
    assert report["chunks_expected"] == 12 == report["chunks_stored"]
    assert report["lost"] == 0 and report["duplicated"] == 0 and report["audio_gaps"] == 0
    assert 0 < report["latency_p50_s"] <= report["latency_p95_s"] <= report["latency_p99_s"]
    assert report["throughput_chunks_per_min"] > 0 and report["peak_rss_mb"] > 0
    assert report["backlog_end"] >= 0 and report["mode"] == "fast"


def test_report_matches_what_the_database_holds(tmp_path: Path) -> None:
    config = BenchConfig(sessions=2, minutes=0.25, stub_latency=(0.0, 0.02), concurrency=2,
                         speed=math.inf, chunk_policy="pause:4", data_dir=tmp_path / "kept")
    report = run_bench(config)
    storage = Storage(tmp_path / "kept" / "scribe.duckdb")
    try:
        sessions = storage.list_sessions()
        done = sum(storage.chunk_counts(s.id)["done"] for s in sessions)
        segments = sum(len(storage.list_segments(s.id)) for s in sessions)
    finally:
        storage.close()
    assert len(sessions) == 2 and all(s.status == "done" for s in sessions)
    assert done == report.chunks_stored == report.chunks_expected
    assert segments == done  # the stub writes one segment per non-silent chunk
    # each session's chunks tile its 15 s exactly
    assert all(abs(s.duration_ms - 15_000) <= 25 for s in sessions)


def test_paced_run_keeps_up_with_real_time() -> None:
    config = BenchConfig(sessions=2, minutes=0.1, stub_latency=(0.0, 0.01), concurrency=2,
                         speed=4.0, chunk_policy="fixed:1", stagger=False)
    report = run_bench(config)
    assert report.lost == 0 and report.duplicated == 0
    assert report.mode == "accelerated x4"
    assert report.feed_s >= 6 / 4 * 0.9  # 6 s of audio at 4x cannot be fed faster than 1.5 s
    # Keeping up: the feeders were never far behind their clock, and with a ~10 ms backend each
    # 1 s chunk was stored well within a chunk length of being cut (bounds generous for a
    # loaded machine; a feeder or queue that falls behind misses them by seconds).
    assert report.feed_lag_max_s < 0.5
    assert report.latency_max_s < 2.0


class AlwaysRejects:
    name, model = "reject", "reject-1"

    def transcribe(self, audio):
        raise TranscriptionError("400 bad request", retryable=False)


def test_lost_chunks_are_reported_and_fail_the_command(monkeypatch, capsys) -> None:
    monkeypatch.setattr(bench, "make_backend", lambda config: AlwaysRejects())
    code = main(["bench", "--sessions", "1", "--minutes", "0.1", "--fast", "--policy", "fixed:2",
                 "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["chunks_expected"] == 3 and report["chunks_stored"] == 0
    assert report["lost"] == 3 and report["failed"] == 3


@pytest.mark.parametrize("argv, message", [
    (["--sessions", "0"], "--sessions"),
    (["--stub-latency", "3-1"], "--stub-latency"),
    (["--policy", "wobbly:5"], "wobbly"),
])
def test_bad_options_give_a_clear_error(argv, message, capsys) -> None:
    assert main(["bench", "--fast", *argv]) == 2
    assert message in capsys.readouterr().err


def test_latency_range_must_be_numbers(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--stub-latency", "fast"])
    assert "LO-HI" in capsys.readouterr().err


def test_config_validation_names_the_option() -> None:
    with pytest.raises(SettingsError, match="--concurrency"):
        BenchConfig(concurrency=0).validate()


def test_the_cli_runs_benchconfigs_defaults() -> None:
    from scribe.cli.bench import config_from

    plain = config_from(build_parser().parse_args(["bench"]))
    assert plain == BenchConfig() and plain.threads() == 32
    local = config_from(build_parser().parse_args(["bench", "--backend", "local", "--fast"]))
    assert local.threads() == 2 and math.isinf(local.speed) and local.sessions == BenchConfig().sessions
