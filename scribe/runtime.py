"""The Runtime: settings, storage, backend and pipeline, built once per process.

The app keeps its Runtimes in one `ProcessRuntimes`; the CLI builds one per command.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

from scribe import backends
from scribe.backpressure import Backlog, assess_backlog
from scribe.config import Settings
from scribe.final_pass import FinalPass, final_pass_enabled
from scribe.noisy_context import NoisyContext
from scribe.pipeline import Backend, Pipeline, PipelineHooks, PipelineOptions
from scribe.ratelimit import RateLimit
from scribe.storage import Storage
from scribe.transcribers import Transcriber, make_transcriber

log = logging.getLogger("scribe.runtime")


@dataclass(frozen=True)
class StartupRecovery:
    """What a process start found left over by a process that died, and did about it."""

    interrupted: list[str] = field(default_factory=list)
    """Sessions left `recording` (their process died), now `interrupted`."""
    adopted: int = 0
    """Chunk audio files written before a crash whose row was missing, now stored."""
    requeued: int = 0
    """Pending or in-flight chunks queued again."""
    left_waiting: int = 0
    """Unfinished chunks of other sessions this process did not take (the CLI)."""

    def lines(self) -> list[str]:
        """What happened, for a person (empty when nothing did)."""
        out = []
        if self.interrupted:
            out.append(f"{len(self.interrupted)} session(s) left recording by a process that died "
                       f"marked interrupted: {', '.join(self.interrupted)}")
        if self.adopted:
            out.append(f"{self.adopted} chunk(s) written before a crash stored again")
        if self.requeued:
            out.append(f"{self.requeued} unfinished chunk(s) queued again")
        if self.left_waiting:
            out.append(f"{self.left_waiting} unfinished chunk(s) of other sessions left for the app "
                       "or `python -m scribe retry SESSION_ID`")
        return out


def recover_at_start(storage: Storage, pipeline: Pipeline,
                     sessions: Sequence[str] | None = None) -> StartupRecovery:
    """Start-up recovery, run by `Runtime.build` before anything is served.

    Marks orphaned recordings `interrupted` (once per Storage: a second Runtime on the
    same database must not end this process's live sessions), stores chunk files whose
    row never committed, and queues unfinished chunks: all of them, or only those of
    `sessions` (a CLI command takes just what it needs; `[]` takes none).
    """
    interrupted = storage.interrupt_orphans_once()
    adopted = pipeline.adopt_orphan_audio(sessions)
    requeued = pipeline.recover(sessions)
    left = storage.count_open_chunks(excluding=sessions) if sessions is not None else 0
    recovery = StartupRecovery(interrupted, adopted, requeued, left)
    for line in recovery.lines():
        log.info("start-up recovery: %s", line)
    return recovery


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
    """scribe.metrics.PipelineMetrics when SCRIBE_METRICS_PORT > 0, else None."""
    recovery: StartupRecovery | None = None
    """What start-up recovery did (None until the pipeline starts)."""
    partials: Any = None
    """scribe.partials.PartialLane: live partial text beside the chunk lane (app only; None when off)."""
    speakers: Any = None
    """scribe.diarization.SpeakerLabeler (live speaker labels) in the app with SCRIBE_DIARIZATION."""

    @property
    def transcriber(self) -> Transcriber:
        return self.pipeline.transcriber

    @classmethod
    def build(cls, settings: Settings, *, transcriber: Transcriber | None = None,
              storage: Storage | None = None, start: bool = True,
              final_pass: bool = False, recover: Sequence[str] | None = None,
              partials: bool = False, warm: bool = False) -> "Runtime":
        """Open the DB, load the backend, run start-up recovery, start the queue.

        Recovery (`recover_at_start`) marks orphaned recordings interrupted and queues
        every unfinished chunk, or with `recover=[ids]` only those sessions' chunks.
        With `start=False` nothing is recovered until `pipeline.start()` (which queues
        every unfinished chunk).
        `partials=True` (the app) also builds the partial lane when SCRIBE_PARTIALS is on;
        `warm=True` (the app) runs the local model and the speech check once now (each only if
        it runs in this process), so the first chunk of the first session pays no start-up cost."""
        storage = storage or Storage(settings.db)
        backend = _with_limit(settings, transcriber or _backend_for(settings))
        speech_check = _speech_check() if settings.skip_silence else None
        pipeline = Pipeline(
            storage, backend.transcriber, audio_dir=settings.audio_dir,
            options=PipelineOptions.from_settings(settings),
            hooks=PipelineHooks(context=NoisyContext(settings.noisy_context_seconds),
                                before_call=backend.before_call, speech_check=speech_check),
        )
        runtime = cls(settings=settings, storage=storage, pipeline=pipeline,
                      backends={backend.transcriber.name: backend})
        # Only long-lived processes (the app) ask for it: a one-shot command would exit
        # in the middle of a pass, and native code in a dying daemon thread can crash.
        if final_pass and final_pass_enabled(settings):
            runtime.final_pass = FinalPass(storage, transcriber or final_transcriber(settings, backend.transcriber)
                                           ).attach(pipeline)
        if partials and settings.partials:
            runtime.partials = _partial_lane(settings, pipeline)
        if warm:
            _warm_chunk_lane(backend.transcriber, speech_check)
        if final_pass and settings.diarization:  # long-lived processes only, like the final pass
            runtime.speakers = _speaker_labeler(settings, storage, pipeline, runtime.final_pass)
            if runtime.speakers is not None:
                _ask_workers_for_voices(backend.transcriber)
        if settings.metrics_port > 0:
            from scribe.metrics import start_metrics

            runtime.metrics = start_metrics(pipeline, settings.metrics_port, partials=runtime.partials)
        if start:
            runtime.recovery = recover_at_start(storage, pipeline, recover)
            pipeline.start(recover=False)
            if runtime.partials is not None:
                runtime.partials.start()
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
        if self.partials is not None:
            self.partials.stop(timeout)
        if self.final_pass is not None:
            self.final_pass.stop(timeout)
        if self.speakers is not None:
            self.speakers.stop(timeout)
        if self.metrics is not None:
            self.metrics.stop()
        self.pipeline.stop(timeout)
        self.pipeline.transcriber.close()
        self.storage.close()


def _backend_for(settings: Settings) -> Transcriber:
    """The local backend, or with SCRIBE_REDIS_URL a proxy to Dramatiq workers running it."""
    if not settings.redis_url:
        return make_transcriber(settings)
    from scribe.distributed import RemoteTranscriber, wait_for_redis

    wait_for_redis(settings.redis_url)
    model = backends.spec(settings.backend).configured_model(settings) or settings.whisper_model
    return RemoteTranscriber(settings.redis_url, backend=settings.backend, model=model,
                             timeout=settings.remote_timeout, broker_wait=settings.broker_wait_seconds)


def final_transcriber(settings: Settings, live: Transcriber | None = None) -> Transcriber:
    """The final pass's model (SCRIBE_FINAL_MODEL), loaded once per process and shared.

    With SCRIBE_REDIS_URL the pass goes to the workers like live chunks do, with
    their model: the app process then loads no model of its own.
    """
    if settings.redis_url and live is not None:
        return live
    return make_transcriber(settings, backends.whisper_here(), model=settings.final_model, workers=1)


def _with_limit(settings: Settings, transcriber: Transcriber) -> Backend:
    """A backend with a requests-per-minute limit (its `rpm_setting`, e.g. SCRIBE_GEMINI_RPM) gets it as its hook."""
    rpm = backends.requests_per_minute(transcriber.name, settings)
    if rpm:
        return Backend(transcriber, RateLimit(rpm, per_seconds=60.0, name=transcriber.name))
    return Backend(transcriber)


def _partial_lane(settings: Settings, pipeline: Pipeline) -> Any:
    """The partial lane, paused whenever chunks wait for the chunk lane (not yet written, or
    queued: a backlog comes first), and told when a chunk's text is stored so the partial
    text for it goes away.

    A chunk being transcribed does not pause it. A chunk is transcribed in the first seconds
    of the next one, so pausing then held those words back by the chunk's whole decode, for a
    chunk lane only slightly faster; holding it for a chunk's first second traded the same way,
    smaller (BENCHMARKS.md, "Live latency: words on the page", has the measurements)."""
    from scribe.partials import build_partial_lane

    def chunks_waiting() -> bool:
        stats = pipeline.stats()
        return stats.queued + stats.intake > 0

    if settings.redis_url:  # VAD and decodes on the workers (`worker --lanes partials`): no model here
        from scribe.distributed import RemotePartialDecoder
        from scribe.partials import PartialLane

        lane = PartialLane(RemotePartialDecoder(settings.redis_url), interval_seconds=settings.partial_interval_seconds,
                           busy=chunks_waiting, capacity=settings.partial_capacity,
                           vocabulary=pipeline.storage.vocabulary_for, options=pipeline.storage.options_for,
                           wait_seconds=settings.partial_wait_seconds)
    else:
        lane = build_partial_lane(settings, busy=chunks_waiting, vocabulary=pipeline.storage.vocabulary_for,
                                  options=pipeline.storage.options_for)
    pipeline.add_listener(lane.on_pipeline_event)
    return lane


def _warm_chunk_lane(transcriber: Transcriber, speech_check: Any) -> None:
    """One call of the speech check (unless the workers run it: then this process loads no
    VAD for the chunk lane) and (a Whisper model in this process only: never a billed call)
    the model on a second of quiet noise."""
    import numpy as np

    from scribe.transcribers.base import checks_speech

    noise = (0.003 * np.random.default_rng(0).standard_normal(16_000)).astype(np.float32)
    if speech_check is not None and not checks_speech(transcriber):
        speech_check(noise)
    if backends.runs_whisper_here(transcriber.name):
        transcriber.transcribe(noise)


def _speaker_labeler(settings: Settings, storage: Storage, pipeline: Pipeline, final_pass: FinalPass | None):
    """The live speaker labeler, or None (with a warning) when the speaker model is missing."""
    from scribe.diarization import SpeakerLabeler
    from scribe.errors import SpeakerModelError
    from scribe.speakers import shared_encoder

    try:
        shared_encoder()
    except SpeakerModelError as exc:
        logging.getLogger("scribe.runtime").warning("speaker labels off: %s", exc)
        return None
    return SpeakerLabeler(storage, max_speakers=settings.max_speakers).attach(pipeline, final_pass)


def _ask_workers_for_voices(transcriber: Transcriber) -> None:
    """With workers, a chunk's voice windows are measured where its audio is already decoded,
    so this process's speaker labeler only reads them."""
    from scribe.distributed import RemoteTranscriber

    if isinstance(transcriber, RemoteTranscriber):
        transcriber.returns_voices = True


def _speech_check():
    from scribe.vad import has_speech

    return has_speech


HTTP_LOGGERS = ("httpx", "httpcore", "httpx2", "httpcore2", "urllib3", "google_genai", "google.genai", "hpack")
"""Libraries that log request lines or headers at DEBUG; kept at INFO or above."""


ICE_LOGGERS = {"aioice.ice": "", "streamlit_webrtc.webrtc": "ICE candidate"}
"""WebRTC loggers whose INFO lines carry ICE candidates, i.e. every participant's IP addresses
(logger name -> text that marks such a line; empty: every line). A shared server's log must not
collect them, so they are logged at DEBUG."""


class DemoteToDebug(logging.Filter):
    """Logger filter: a record whose message contains `marker` is logged at DEBUG, and only
    when its logger is enabled for DEBUG (the level check already let it through at INFO)."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or self.marker not in record.getMessage():
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def configure_logging(level: str = "INFO") -> None:
    """stdlib logging to stderr; pipeline lines carry `session=` and `seq=`.

    Every root handler gets a filter that redacts keys and tokens (scribe.redact), and
    HTTP libraries never log at DEBUG: their request and header dumps can carry a key."""
    from scribe.redact import RedactingFilter

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    logging.getLogger("faster_whisper").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for name, pattern in ICE_LOGGERS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DemoteToDebug) for f in logger.filters):
            logger.addFilter(DemoteToDebug(pattern))
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(level)))


class ProcessRuntimes:
    """The app process's Runtimes, one per key (the settings a page runs with), and their Storages,
    one per database file: each built on first use under a lock, then kept until `discard`.

    Not `st.cache_resource`: any WebSocket client may send Streamlit's `clear_cache` message, which
    empties that cache, and the next page would build a second Runtime on the same database: start-up
    recovery again beside the live pipeline (live sessions marked interrupted, queued chunks queued
    twice, DuckDB write conflicts)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._runtimes: dict[Hashable, Runtime] = {}
        self._storages: dict[str, Storage] = {}

    def storage(self, db: str) -> Storage:
        with self._lock:
            if db not in self._storages:
                self._storages[db] = Storage(db)
            return self._storages[db]

    def get(self, key: Hashable, build: Callable[[], Runtime]) -> Runtime:
        """The Runtime for `key`, built by `build()` the first time (other keys are not held up)."""
        with self._lock:
            if key in self._runtimes:
                return self._runtimes[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._runtimes:
                    return self._runtimes[key]
            runtime = build()
            with self._lock:
                self._runtimes[key] = runtime
            return runtime

    def built(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._runtimes

    def discard(self, key: Hashable) -> None:
        """Close and forget the Runtime for `key` and its Storage (tests; a closed data folder)."""
        with self._lock:
            runtime = self._runtimes.pop(key, None)
            if runtime is not None:
                self._storages = {db: s for db, s in self._storages.items() if s is not runtime.storage}
        if runtime is not None:
            runtime.close()
