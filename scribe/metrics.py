"""Prometheus metrics for the transcription queue (prometheus-client).

`PipelineMetrics` listens to the pipeline's events (`Pipeline.add_listener`) for
counters and the processing-time histogram, and reads gauges from
`pipeline.stats()` and the sessions table at scrape time, so nothing polls.
`serve()` exposes them on 127.0.0.1 only; `Runtime.build` starts it when
`SCRIBE_METRICS_PORT` is above 0.

Metric names (all prefixed `scribe_`):
- `chunk_processing_seconds{backend,status}` histogram, status `done` or `failed`
- `queue_length` chunks queued (waiting + in flight + not yet written)
- `queue_in_flight` chunks being transcribed now
- `backlog_audio_seconds` audio waiting in the queue
- `active_sessions` sessions currently recording
- `chunks_processed_total{backend}`, `chunks_failed_total{backend}`, `chunks_retried_total{backend}`
- `audio_seconds_transcribed_total{backend}`
- `partial_lag_seconds` histogram: from the audio's arrival to its partial text (partial lane)
- `partial_decodes_total` partial decodes run
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from scribe.pipeline import Pipeline
from scribe.storage import Storage

log = logging.getLogger("scribe.metrics")

# Chunk processing runs from ~0.1 s (stub, tiny model on short chunks) to minutes
# (a slow API with backoff); the buckets cover that range with the 10 s alert line.
PROCESSING_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0)
# Partial text is useful within ~3 s; finer buckets below that line.
PARTIAL_LAG_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0)


class PipelineMetrics:
    """The metrics of one pipeline, in their own registry (so tests and bench runs never collide)."""

    def __init__(self, pipeline: Pipeline, storage: Storage | None = None, *,
                 registry: CollectorRegistry | None = None) -> None:
        self.pipeline = pipeline
        self.storage = storage or pipeline.storage
        self.registry = registry or CollectorRegistry()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._define()
        pipeline.add_listener(self.on_event)

    def _define(self) -> None:
        r = self.registry
        self.processing = Histogram("scribe_chunk_processing_seconds",
                                    "Time from claiming a chunk to storing its text (or failing)",
                                    ["backend", "status"], buckets=PROCESSING_BUCKETS, registry=r)
        self.processed = Counter("scribe_chunks_processed", "Chunks transcribed and stored",
                                 ["backend"], registry=r)
        self.failed = Counter("scribe_chunks_failed", "Chunks marked failed", ["backend"], registry=r)
        self.retried = Counter("scribe_chunks_retried", "Backend calls retried after an error",
                               ["backend"], registry=r)
        self.audio = Counter("scribe_audio_seconds_transcribed", "Seconds of audio transcribed",
                             ["backend"], registry=r)
        self._gauge("scribe_queue_length", "Chunks queued, in flight or waiting to be written",
                    lambda s: s.queued + s.in_flight + s.intake)
        self._gauge("scribe_queue_in_flight", "Chunks being transcribed now", lambda s: s.in_flight)
        self._gauge("scribe_backlog_audio_seconds", "Seconds of audio waiting in the queue",
                    lambda s: s.audio_seconds_waiting)
        self._gauge("scribe_storage_ok", "1 while the disk and database take writes, 0 during an outage "
                    "(the queue is paused)", lambda s: s.storage_ok)
        self._gauge("scribe_storage_down_seconds", "How long the current storage outage has lasted",
                    lambda s: s.storage_down_s)
        self._gauge("scribe_storage_faults", "Writes refused by the disk or database since start",
                    lambda s: s.storage_faults)
        self._gauge("scribe_job_errors", "Unexpected errors inside jobs since start (each retried)",
                    lambda s: s.job_errors)
        self._gauge("scribe_workers_alive", "Transcription worker threads running", lambda s: s.workers_alive)
        self._gauge("scribe_intake_memory_audio_seconds", "Live audio held in RAM for the chunk writers",
                    lambda s: s.intake_memory_seconds)
        self._gauge("scribe_intake_spilled", "Live chunks written to disk by their feeder (writers behind)",
                    lambda s: s.intake_spilled)
        sessions = Gauge("scribe_active_sessions", "Sessions currently recording", registry=r)
        sessions.set_function(self._active_sessions)
        self.partial_lag = Histogram("scribe_partial_lag_seconds",
                                     "From the audio's arrival to its partial text being ready",
                                     buckets=PARTIAL_LAG_BUCKETS, registry=r)
        self.partial_decodes = Counter("scribe_partial_decodes", "Partial decodes of open chunks",
                                       registry=r)
        self._init_labels(self.pipeline.transcriber.name)

    def on_partial(self, decode: Any) -> None:
        """Partial-lane listener (a `scribe-partial` thread): counters only."""
        self.partial_lag.observe(float(decode.lag_s))
        self.partial_decodes.inc()

    def _init_labels(self, backend: str) -> None:
        """Export zeros for the running backend, so dashboards see the series before any chunk."""
        for status in ("done", "failed"):
            self.processing.labels(backend, status)
        for counter in (self.processed, self.failed, self.retried, self.audio):
            counter.labels(backend)

    def _gauge(self, name: str, doc: str, read) -> None:
        gauge = Gauge(name, doc, registry=self.registry)
        gauge.set_function(lambda: float(read(self.pipeline.stats())))

    def _active_sessions(self) -> float:
        """Runs on the HTTP server's thread at scrape time (one indexed count)."""
        try:
            return float(self.storage.count_sessions(statuses=("recording",)))
        except Exception:  # a closed DB at shutdown must not break the scrape
            log.debug("active session count unavailable", exc_info=True)
            return float("nan")

    def on_event(self, event: str, fields: dict) -> None:
        """Pipeline listener; runs on a worker thread, so it only touches counters (no I/O),
        except for a failed chunk, whose processing time is read back from its row."""
        backend = str(fields.get("backend") or self.pipeline.transcriber.name)
        if event == "chunk_done":
            self.processing.labels(backend, "done").observe(float(fields["processing_s"]))
            self.processed.labels(backend).inc()
            self.audio.labels(backend).inc(float(fields["duration_s"]))
        elif event == "chunk_failed":
            self.failed.labels(backend).inc()
            elapsed = self._failed_processing_s(fields)
            if elapsed is not None:
                self.processing.labels(backend, "failed").observe(elapsed)
        elif event == "chunk_retry":
            self.retried.labels(backend).inc()

    def _failed_processing_s(self, fields: dict) -> float | None:
        try:
            row = self.storage.get_chunk(fields["session_id"], fields["seq"])
        except Exception:
            return None
        if row.started_at is None or row.finished_at is None:
            return None  # failed before it was ever claimed (audio missing after restart)
        return max(0.0, row.finished_at - row.started_at)

    # -- HTTP ---------------------------------------------------------------
    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve /metrics on host:port in a daemon thread; returns the bound port."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        bound = int(self._server.server_address[1])
        log.info("Prometheus metrics on http://%s:%d/metrics", host, bound)
        return bound

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) being served, or None."""
        return None if self._server is None else tuple(self._server.server_address[:2])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def start_metrics(pipeline: Pipeline, port: int, partials: Any = None) -> PipelineMetrics | None:
    """Build and serve the metrics (Runtime.build calls this when the port is set).

    A port already in use is logged, not raised: metrics are an add-on and
    must not stop transcription.
    """
    metrics = PipelineMetrics(pipeline)
    if partials is not None:  # scribe.partials.PartialLane
        partials.add_listener(metrics.on_partial)
    try:
        metrics.serve(port)
    except OSError as exc:
        log.error("cannot serve metrics on 127.0.0.1:%d (SCRIBE_METRICS_PORT): %s", port, exc)
    return metrics
