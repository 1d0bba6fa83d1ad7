"""Scale-out: transcription workers on other machines, through Dramatiq and Redis.

The app keeps everything that needs the disk and DuckDB. Only the backend call
moves out: `RemoteTranscriber` implements the `Transcriber` protocol by sending
the chunk's audio (FLAC bytes) as a Dramatiq message and waiting for the answer
on a Redis stream owned by this app process. The pipeline is unchanged: its
retries, recovery and idempotent writes work exactly as with a local backend,
and only the app process ever writes DuckDB.

Workers (`python -m scribe worker`) run the configured backend and answer on
the stream named in each message. Delivery is at-least-once: a worker that dies
mid-job leaves its message to be redelivered, and the app's own timeout resends
it; a late duplicate answer finds no waiter and is dropped, and a chunk's
segments are replaced, never appended, so nothing is duplicated.

A global requests-per-minute cap (Dramatiq's Redis-backed `WindowRateLimiter`)
is shared by every worker; a message over the cap is retried by Dramatiq later.

A broker outage is not a transcription failure: sending waits Redis out (tenacity,
exponential backoff, up to `broker_wait` seconds, one log line per outage), and an
answer's deadline is extended while the results stream cannot be read. Only an
outage longer than `broker_wait` costs the chunk an attempt.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import Future, TimeoutError as FutureTimeout
from dataclasses import asdict
from typing import Any, Callable

import numpy as np

from scribe.audio import encode_bytes
from scribe.core import Segment, Transcription, Usage
from scribe.errors import BackendUnavailableError, TranscriptionError
from scribe.transcribers.base import Transcriber

log = logging.getLogger("scribe.distributed")

QUEUE = "scribe-transcribe"
ACTOR = "transcribe_chunk"
RESULTS_PREFIX = "scribe:results:"
STREAM_MAXLEN = 10_000


def safe_url(url: str) -> str:
    """The URL without credentials, for messages and logs."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def _redis(url: str):
    try:
        import redis
    except ImportError:
        raise BackendUnavailableError("redis is not installed: pip install 'dramatiq[redis]'") from None
    return redis.Redis.from_url(url)


def make_broker(url: str, *, heartbeat_ms: int = 60_000):
    """A Dramatiq Redis broker declaring the transcription actor's queue."""
    try:
        from dramatiq.brokers.redis import RedisBroker
    except ImportError:
        raise BackendUnavailableError("dramatiq is not installed: pip install 'dramatiq[redis]'") from None
    return RedisBroker(url=url, heartbeat_timeout=heartbeat_ms)


def declare_actor(broker, handler: Callable[[dict], None]):
    """Bind the transcription actor to `broker`; the app only sends, workers run `handler`."""
    import dramatiq

    return dramatiq.actor(handler, broker=broker, actor_name=ACTOR, queue_name=QUEUE,
                          max_retries=20, min_backoff=500, max_backoff=15_000,
                          time_limit=10 * 60_000)


def _segments_from_json(items: list[dict]) -> list[Segment]:
    return [Segment(**item) for item in items]


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What a lost broker connection raises (redis-py's and Dramatiq's own types)."""
    import redis.exceptions
    from dramatiq.errors import BrokerConnectionError

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, BrokerConnectionError,
            ConnectionError)


class RemoteTranscriber:
    """App side: a Transcriber whose work is done by Dramatiq workers.

    `transcribe` runs on a pipeline worker thread and blocks until the answer
    arrives (or `timeout` passes: a retryable error, so the pipeline resends).
    One `scribe-results` thread reads this process's reply stream.
    """

    def __init__(self, redis_url: str, *, backend: str, model: str, timeout: float = 120.0,
                 heartbeat_ms: int = 60_000, broker_wait: float = 600.0) -> None:
        self.name, self.model = backend, model
        self.timeout = timeout
        self.broker_wait = broker_wait
        self._outage_lock = threading.Lock()
        self._down_since: float | None = None
        """Monotonic time Redis became unreachable (send or read), None while it answers."""
        self._redis = _redis(redis_url)
        self._stream = f"{RESULTS_PREFIX}{uuid.uuid4().hex}"
        self._actor = declare_actor(make_broker(redis_url, heartbeat_ms=heartbeat_ms), _never_called)
        self._waiting: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_results, name="scribe-results", daemon=True)
        self._reader.start()

    def transcribe(self, audio: np.ndarray) -> Transcription:
        """Runs on a pipeline worker thread; the answer (with the worker's usage and model)
        is this job's own, whatever other jobs are in flight."""
        job = uuid.uuid4().hex
        future: Future = Future()
        with self._lock:
            self._waiting[job] = future
        try:
            self._send({"job": job, "reply_to": self._stream,
                        "audio": base64.b64encode(encode_bytes(audio, "FLAC")).decode("ascii")})
            return self._await(job, future)
        finally:
            with self._lock:
                self._waiting.pop(job, None)

    def _send(self, message: dict) -> None:
        """Send, waiting out a broker outage (up to `broker_wait` s) instead of failing."""
        from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

        retrying = Retrying(retry=retry_if_exception_type(_transport_errors()),
                            stop=stop_after_delay(self.broker_wait),
                            wait=wait_exponential(multiplier=0.2, max=5.0), reraise=True,
                            before_sleep=lambda state: self._note_down(state.outcome.exception()))
        try:
            for attempt in retrying:
                with attempt:
                    self._actor.send(message)
        except _transport_errors() as exc:
            raise TranscriptionError(f"Redis unreachable for over {self.broker_wait:g} s "
                                     f"(SCRIBE_BROKER_WAIT_SECONDS): {type(exc).__name__}",
                                     retryable=True) from None
        self._note_up()

    def _note_down(self, exc: BaseException | None) -> None:
        with self._outage_lock:
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
        if first:
            log.warning("Redis unreachable (%s); waiting up to %g s for it to come back",
                        type(exc).__name__ if exc else "?", self.broker_wait)

    def _note_up(self) -> None:
        with self._outage_lock:
            down, self._down_since = self._down_since, None
        if down is not None:
            log.warning("Redis reachable again after %.1f s", time.monotonic() - down)

    def _await(self, job: str, future: Future) -> Transcription:
        """The answer; the deadline moves while Redis is unreachable (up to `broker_wait`)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                answer = future.result(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
                break
            except FutureTimeout:
                with self._outage_lock:
                    down_since = self._down_since
                if down_since is not None and time.monotonic() - down_since < self.broker_wait:
                    deadline = max(deadline, time.monotonic() + 1.0)
                elif time.monotonic() >= deadline:
                    raise TranscriptionError(f"no worker answered job {job[:8]} within {self.timeout:g} s",
                                             retryable=True) from None
        if not answer["ok"]:
            raise TranscriptionError(answer["error"], retryable=answer["retryable"],
                                     retry_after=answer.get("retry_after"))
        return Transcription(_segments_from_json(answer["segments"]), Usage(**answer.get("usage", {})),
                             model=answer.get("model"))

    def _read_results(self) -> None:
        """Runs on `scribe-results`: hand each answer to the thread waiting for it."""
        last_id = "0-0"
        while not self._stop.is_set():
            try:
                batches = self._redis.xread({self._stream: last_id}, count=100, block=500)
            except Exception as exc:  # Redis down: keep trying; waiters' deadlines wait too
                self._note_down(exc)
                self._stop.wait(1.0)
                continue
            self._note_up()
            for _stream, entries in batches or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    self._deliver(json.loads(fields[b"answer"]))
                self._redis.xtrim(self._stream, minid=last_id)

    def _deliver(self, answer: dict) -> None:
        with self._lock:
            future = self._waiting.get(answer["job"])
        if future is None:
            log.info("late answer for job %s dropped (already retried or timed out)", answer["job"][:8])
        elif not future.done():
            future.set_result(answer)

    def close(self) -> None:
        """Stop the `scribe-results` thread and delete this process's reply stream."""
        self._stop.set()
        self._reader.join(2.0)
        self._redis.delete(self._stream)


def _never_called(message: dict) -> None:
    raise RuntimeError("the app process does not run transcription jobs")


class TranscriptionWorker:
    """Worker side: runs jobs from the queue on a local backend and answers on Redis.

    `handle` runs on one of Dramatiq's worker threads.
    """

    def __init__(self, redis_url: str, transcriber: Transcriber, *, rpm: int | None = None,
                 rate_window_s: int = 60, threads: int = 1, heartbeat_ms: int = 60_000) -> None:
        self.transcriber = transcriber
        self.threads = threads
        self._redis = _redis(redis_url)
        self._broker = make_broker(redis_url, heartbeat_ms=heartbeat_ms)
        declare_actor(self._broker, self.handle)
        self._limiter = self._make_limiter(redis_url, rpm, rate_window_s)
        self._worker = None

    @staticmethod
    def _make_limiter(url: str, rpm: int | None, window_s: int):
        if not rpm:
            return None
        from dramatiq.rate_limits import WindowRateLimiter
        from dramatiq.rate_limits.backends import RedisBackend

        limit = max(1, round(rpm * window_s / 60))
        return WindowRateLimiter(RedisBackend(client=_redis(url)), "scribe-backend-rpm",
                                 limit=limit, window=window_s)

    def handle(self, message: dict) -> None:
        if self._limiter is None:
            return self._answer(message, self._run(message))
        # Over the cap: raising RateLimitExceeded makes Dramatiq retry the message later.
        with self._limiter.acquire():
            return self._answer(message, self._run(message))

    def _run(self, message: dict) -> dict[str, Any]:
        from scribe.audio import read_flac_bytes

        try:
            audio = read_flac_bytes(base64.b64decode(message["audio"]))
            result = self.transcriber.transcribe(audio)
        except TranscriptionError as exc:
            return {"ok": False, "error": str(exc), "retryable": exc.retryable, "retry_after": exc.retry_after}
        except Exception as exc:  # reported to the app, which decides about retrying
            log.exception("job %s failed", message["job"][:8])
            return {"ok": False, "error": f"worker error: {type(exc).__name__}: {exc}", "retryable": True}
        return {"ok": True, "segments": [asdict(s) for s in result.segments],
                "model": result.model or self.transcriber.model, "usage": asdict(result.usage)}

    def _answer(self, message: dict, answer: dict) -> None:
        answer["job"] = message["job"]
        answer["worker"] = f"{os.uname().nodename}:{os.getpid()}"
        self._redis.xadd(message["reply_to"], {"answer": json.dumps(answer)},
                         maxlen=STREAM_MAXLEN, approximate=True)

    def start(self) -> "TranscriptionWorker":
        from dramatiq import Worker

        self._worker = Worker(self._broker, queues={QUEUE}, worker_threads=self.threads, worker_timeout=200)
        self._worker.start()
        return self

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self._broker.close()

    def run_until(self, stop: threading.Event) -> None:
        """Serve until `stop` is set (the CLI sets it on SIGINT/SIGTERM)."""
        self.start()
        try:
            while not stop.wait(0.5):
                pass
        finally:
            self.stop()


def wait_for_redis(url: str, timeout: float = 10.0) -> None:
    """Fail with a clear message when Redis is not reachable."""
    client = _redis(url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise BackendUnavailableError(f"cannot reach Redis at {safe_url(url)}: {exc}") from None
            time.sleep(0.1)
