"""The Runtime: settings, storage, backend and pipeline, built once per process.

The app builds one with `st.cache_resource`; the CLI builds one per command.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from scribe.config import Settings
from scribe.pipeline import Pipeline
from scribe.storage import Storage
from scribe.transcribers import Transcriber, make_transcriber


@dataclass
class Runtime:
    settings: Settings
    storage: Storage
    pipeline: Pipeline
    metrics: Any = None
    """scribe.metrics.PipelineMetrics when SCRIBE_METRICS_PORT > 0 (issue 7), else None."""

    @property
    def transcriber(self) -> Transcriber:
        return self.pipeline.transcriber

    @classmethod
    def build(cls, settings: Settings, *, transcriber: Transcriber | None = None,
              storage: Storage | None = None, start: bool = True) -> "Runtime":
        """Open the DB, load the backend, start the queue (recovering unfinished chunks)."""
        storage = storage or Storage(settings.db)
        backend = transcriber or make_transcriber(settings)
        pipeline = Pipeline(
            storage, backend, audio_dir=settings.audio_dir,
            max_concurrency=settings.max_concurrency, max_attempts=settings.max_attempts,
            retry_base_seconds=settings.retry_base_seconds,
            retry_max_seconds=settings.retry_max_seconds,
        )
        runtime = cls(settings=settings, storage=storage, pipeline=pipeline)
        if settings.metrics_port > 0:
            from scribe.metrics import start_metrics

            runtime.metrics = start_metrics(pipeline, settings.metrics_port)
        if start:
            pipeline.start()
        return runtime

    def close(self, timeout: float = 10.0) -> None:
        if self.metrics is not None:
            self.metrics.stop()
        self.pipeline.stop(timeout)
        self.storage.close()


def configure_logging(level: str = "INFO") -> None:
    """stdlib logging to stderr; pipeline lines carry `session=` and `seq=`."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    logging.getLogger("faster_whisper").setLevel(max(logging.WARNING, logging.getLevelName(level)))
