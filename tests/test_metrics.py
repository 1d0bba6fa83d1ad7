"""The Prometheus endpoint serves the named metrics, and they move when chunks are processed."""

from __future__ import annotations

import socket
import urllib.request
from dataclasses import fields

import numpy as np
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scribe.chunking import Chunk
from scribe.config import Settings
from scribe.core import Transcription
from scribe.errors import TranscriptionError
from scribe.runtime import Runtime
from scribe.transcribers.stub import StubTranscriber

NAMES = ["scribe_chunk_processing_seconds", "scribe_queue_length", "scribe_active_sessions",
         "scribe_chunks_failed", "scribe_chunks_retried", "scribe_audio_seconds_transcribed"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _value(values: dict, name: str, **labels) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


class FailsFirst:
    """Fails retryably on its first call, non-retryably for chunks of one chosen seq."""

    name, model = "flaky", "flaky-1"

    def __init__(self) -> None:
        self.calls = 0

    def transcribe(self, audio: np.ndarray) -> Transcription:
        self.calls += 1
        if self.calls == 1:
            raise TranscriptionError("503", retryable=True)
        if audio.size == 16_000:  # the 1 s chunk is rejected for good
            raise TranscriptionError("400 bad audio", retryable=False)
        return StubTranscriber().transcribe(audio)

    def close(self) -> None:
        pass


@pytest.fixture
def served(settings: Settings):
    port = _free_port()
    changes = dict(metrics_port=port, retry_base_seconds=0.0, retry_max_seconds=0.0)
    if "skip_silence" in {f.name for f in fields(Settings)}:
        changes["skip_silence"] = False  # a speech check would skip these tones unsent
    runtime = Runtime.build(settings.with_changes(**changes), transcriber=FailsFirst())
    yield runtime, port
    runtime.close()


def _chunk(sid: str, seq: int, seconds: float, tone) -> Chunk:
    start = seq * 32_000
    return Chunk(sid, seq, start, start + int(seconds * 16_000), tone(seconds), captured_at=1.0)


def test_metrics_endpoint_serves_named_metrics_only_on_loopback(served) -> None:
    runtime, port = served
    families = {name for name, _ in _scrape(port)}
    for name in NAMES:
        assert any(f.startswith(name) for f in families), name
    listening = {c.laddr.ip for c in psutil.Process().net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    assert listening == {"127.0.0.1"}  # the socket the OS holds, not just what we asked for


def test_metrics_move_when_chunks_are_processed(served, tone) -> None:
    runtime, port = served
    sid = runtime.storage.create_session(title="m", source="cli", backend="flaky", model="flaky-1",
                                         chunk_seconds=2, chunk_policy="fixed:2").id
    before = _scrape(port)
    assert _value(before, "scribe_active_sessions") == 1
    runtime.pipeline.submit(_chunk(sid, 0, 2.0, tone))  # retried once, then done
    runtime.pipeline.submit(_chunk(sid, 1, 1.0, tone))  # fails for good
    runtime.pipeline.submit(_chunk(sid, 2, 2.0, tone))
    assert runtime.pipeline.wait_idle(30)
    after = _scrape(port)
    done = dict(backend="flaky", status="done")
    assert _value(after, "scribe_chunk_processing_seconds_count", **done) == 2
    assert _value(after, "scribe_chunk_processing_seconds_sum", **done) >= 0
    assert _value(after, "scribe_chunk_processing_seconds_count", backend="flaky", status="failed") == 1
    assert _value(after, "scribe_audio_seconds_transcribed_total", backend="flaky") == pytest.approx(4.0)
    assert _value(after, "scribe_chunks_failed_total", backend="flaky") == 1
    assert _value(after, "scribe_chunks_retried_total", backend="flaky") == 1
    assert _value(after, "scribe_queue_length") == 0
    runtime.storage.end_session(sid, "stopped")
    assert _value(_scrape(port), "scribe_active_sessions") == 0


def test_queue_length_gauge_counts_waiting_chunks(settings: Settings, tone) -> None:
    port = _free_port()
    runtime = Runtime.build(settings.with_changes(metrics_port=port), transcriber=StubTranscriber(),
                            start=False)  # no workers: submitted chunks stay queued
    try:
        sid = runtime.storage.create_session(title="q", source="cli", backend="stub", model="m",
                                             chunk_seconds=2, chunk_policy="fixed:2").id
        for seq in range(3):
            runtime.pipeline.submit(_chunk(sid, seq, 2.0, tone))
        values = _scrape(port)
        assert _value(values, "scribe_queue_length") == 3
        assert _value(values, "scribe_backlog_audio_seconds") == pytest.approx(6.0)
    finally:
        runtime.metrics.stop()
        runtime.storage.close()


def test_metrics_are_off_by_default(settings: Settings) -> None:
    runtime = Runtime.build(settings, transcriber=StubTranscriber())
    try:
        assert settings.metrics_port == 0 and runtime.metrics is None
    finally:
        runtime.close()


def test_port_in_use_is_logged_not_fatal(settings: Settings, caplog) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        runtime = Runtime.build(settings.with_changes(metrics_port=port), transcriber=StubTranscriber())
        try:
            assert "SCRIBE_METRICS_PORT" in caplog.text
        finally:
            runtime.close()
