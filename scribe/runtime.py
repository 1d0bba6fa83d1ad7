"""The Runtime: settings, storage, backend and pipeline, built once per process.

The app builds one with `st.cache_resource`; the CLI builds one per command.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from scribe.backpressure import Backlog, assess_backlog
from scribe.config import Settings
from scribe.final_pass import FinalPass, final_pass_enabled
from scribe.pipeline import Backend, Pipeline
from scribe.ratelimit import RateLimit
from scribe.storage import Storage
from scribe.transcribers import Transcriber, make_transcriber


@dataclass
class Runtime:
    settings: Settings
    storage: Storage
    pipeline: Pipeline
    backends: dict[str, Backend] = field(default_factory=dict)
    """Backends built so far, by name, each with its rate limit; the pipeline's own included."""
    _backends_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    final_pass: FinalPass | None = None
    """Whole-recording re-transcription after a session stops (None when off)."""
    metrics: Any = None
    """scribe.metrics.PipelineMetrics when SCRIBE_METRICS_PORT > 0 (issue 7), else None."""

    @property
    def transcriber(self) -> Transcriber:
        return self.pipeline.transcriber

    @classmethod
    def build(cls, settings: Settings, *, transcriber: Transcriber | None = None,
              storage: Storage | None = None, start: bool = True,
              final_pass: bool = False) -> "Runtime":
        """Open the DB, load the backend, start the queue (recovering unfinished chunks)."""
        storage = storage or Storage(settings.db)
        backend = _with_limit(settings, transcriber or _backend_for(settings))
        pipeline = Pipeline(
            storage, backend.transcriber, audio_dir=settings.audio_dir,
            max_concurrency=settings.max_concurrency, max_attempts=settings.max_attempts,
            writer_threads=settings.writer_threads,
            context_seconds=settings.noisy_context_seconds,
            retry_base_seconds=settings.retry_base_seconds,
            retry_max_seconds=settings.retry_max_seconds,
            before_call=backend.before_call,
            speech_check=_speech_check() if settings.skip_silence else None,
        )
        runtime = cls(settings=settings, storage=storage, pipeline=pipeline,
                      backends={backend.transcriber.name: backend})
        # Only long-lived processes (the app) ask for it: a one-shot command would exit
        # in the middle of a pass, and native code in a dying daemon thread can crash.
        if final_pass and final_pass_enabled(settings):
            runtime.final_pass = FinalPass(storage, transcriber or final_transcriber(settings, backend.transcriber)
                                           ).attach(pipeline)
        if settings.metrics_port > 0:
            from scribe.metrics import start_metrics

            runtime.metrics = start_metrics(pipeline, settings.metrics_port)
        if start:
            pipeline.start()
        return runtime

    def backend(self, name: str) -> Backend:
        """The named backend (built on first use, then kept), sharing the process's rate limit.

        Raises BackendUnavailableError (e.g. Gemini without GEMINI_API_KEY) or ModelNotFoundError.
        """
        with self._backends_lock:
            if name not in self.backends:
                self.backends[name] = _with_limit(self.settings, make_transcriber(self.settings, name))
            return self.backends[name]

    def backlog(self) -> Backlog:
        """How far transcription is behind, judged against SCRIBE_BACKLOG_WARN_SECONDS."""
        limit = self.pipeline_rate_limit()
        return assess_backlog(self.pipeline.stats(), warn_seconds=self.settings.backlog_warn_seconds,
                              requests_per_minute=limit.per_minute if limit else None)

    def pipeline_rate_limit(self) -> RateLimit | None:
        hook = self.backends.get(self.transcriber.name, Backend(self.transcriber)).before_call
        return hook if isinstance(hook, RateLimit) else None

    def close(self, timeout: float = 10.0) -> None:
        if self.final_pass is not None:
            self.final_pass.stop(timeout)
        if self.metrics is not None:
            self.metrics.stop()
        self.pipeline.stop(timeout)
        closer = getattr(self.pipeline.transcriber, "close", None)
        if callable(closer):
            closer()
        self.storage.close()


def _backend_for(settings: Settings) -> Transcriber:
    """The local backend, or with SCRIBE_REDIS_URL a proxy to Dramatiq workers running it."""
    if not settings.redis_url:
        return make_transcriber(settings)
    from scribe.distributed import RemoteTranscriber, wait_for_redis

    wait_for_redis(settings.redis_url)
    model = settings.gemini_model if settings.backend == "gemini" else settings.whisper_model
    return RemoteTranscriber(settings.redis_url, backend=settings.backend, model=model,
                             timeout=settings.remote_timeout)


def final_transcriber(settings: Settings, live: Transcriber | None = None) -> Transcriber:
    """The final pass's model (SCRIBE_FINAL_MODEL), loaded once per process and shared.

    With SCRIBE_REDIS_URL the pass goes to the workers like live chunks do, with
    their model: the app process then loads no model of its own.
    """
    if settings.redis_url and live is not None:
        return live
    return make_transcriber(settings, "local", model=settings.final_model, workers=1)


def _with_limit(settings: Settings, transcriber: Transcriber) -> Backend:
    """Metered backends get the requests-per-minute limit (SCRIBE_GEMINI_RPM) as their hook."""
    if transcriber.name == "gemini":
        return Backend(transcriber, RateLimit(settings.gemini_rpm, per_seconds=60.0, name="gemini"))
    return Backend(transcriber)


def _speech_check():
    from scribe.vad import has_speech

    return has_speech


def configure_logging(level: str = "INFO") -> None:
    """stdlib logging to stderr; pipeline lines carry `session=` and `seq=`."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    logging.getLogger("faster_whisper").setLevel(max(logging.WARNING, logging.getLevelName(level)))
