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

When the app labels speakers, a chunk job also asks for the chunk's voice windows: the
worker measures them on the audio it already decoded and sends them with the text, and the
app stores them with the chunk, so its speaker labeler runs no voice encoder. An answer
without them (a worker without the speaker model) only means the app measures them.

When the app skips silence, a chunk job asks the worker to run the speech check (Silero,
`scribe.vad`) on the audio it decoded: a chunk without speech is answered `silent` without
calling the worker's backend (no model time, no tokens billed), and the app stores it as
it stores a chunk its own check found silent. A failed check transcribes the chunk.

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
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Callable, Self, Sequence

import numpy as np

from scribe.audio import encode_bytes
from scribe.core import DecodeOptions, PackedWindows, Segment, Transcription, Usage, Word
from scribe.errors import BackendUnavailableError, TranscriptionError
from scribe.transcribers.base import Transcriber, call_transcriber

if TYPE_CHECKING:
    from scribe.partials import Heard, Tail

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

    return dramatiq.actor(broker=broker, actor_name=ACTOR, queue_name=QUEUE, max_retries=20,
                          min_backoff=500, max_backoff=15_000, time_limit=10 * 60_000)(handler)


def _segments_from_json(items: list[dict]) -> list[Segment]:
    return [Segment(**{**item, "words": [Word(**w) for w in item.get("words", ())]}) for item in items]


def _voices_json(packed: PackedWindows) -> dict[str, Any]:
    """Voice windows for an answer: exact float32 embeddings (~1.4 KB of JSON per window)."""
    return {"frames": packed.frames, "speech": packed.speech, "spans": packed.spans,
            "embeddings": base64.b64encode(packed.embeddings).decode("ascii")}


def _voices_from_json(item: dict | None) -> PackedWindows | None:
    """An answer's voice windows; None when it has none (a worker without the speaker model,
    or an older one) or they do not read: the app then measures them itself."""
    if not item:
        return None
    from scribe.speakers import unpack_windows

    try:
        packed = PackedWindows(0, int(item["frames"]), [int(f) for f in item["speech"]],
                               [int(f) for f in item["spans"]], base64.b64decode(item["embeddings"]))
        unpack_windows(packed)  # the check that they make windows; cheap beside the encoder
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("answer's voice windows unreadable (%s); the app measures them", exc)
        return None
    return packed


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
    One `scribe-results` thread reads this process's reply stream. With `voices` (the app
    labels speakers) a chunk job also asks the worker for the chunk's voice windows.
    """

    checks_speech = True
    """A job may ask the worker for the speech check (`speech_from`), so the app runs none."""

    def __init__(self, redis_url: str, *, backend: str, model: str, timeout: float = 120.0,
                 heartbeat_ms: int = 60_000, broker_wait: float = 600.0, voices: bool = False) -> None:
        self.name, self.model = backend, model
        self.returns_voices = voices
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

    def transcribe(self, audio: np.ndarray, *, vocabulary: Sequence[str] = (), options: DecodeOptions | None = None,
                   voices_from: int | None = None, speech_from: int | None = None) -> Transcription:
        """Runs on a pipeline worker thread; the answer (with the worker's usage and model)
        is this job's own, whatever other jobs are in flight. The vocabulary and the session's
        decode options travel with the job; `voices_from` (the chunk's own audio starts there)
        asks for the voice windows of `audio[voices_from:]`, and `speech_from` for the speech
        check of `audio[speech_from:]` first (no speech: `Transcription([], silent=True)`)."""
        job = uuid.uuid4().hex
        future: Future = Future()
        with self._lock:
            self._waiting[job] = future
        try:
            self._send(_job_message(job, self._stream, audio, vocabulary, options, voices_from, speech_from))
            return self._await(job, future)
        finally:
            with self._lock:
                self._waiting.pop(job, None)

    def _note_retry(self, state: Any) -> None:
        """tenacity's before_sleep: a failed send's outcome is always set."""
        self._note_down(state.outcome.exception())

    def _send(self, message: dict) -> None:
        """Send, waiting out a broker outage (up to `broker_wait` s) instead of failing."""
        from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

        retrying = Retrying(retry=retry_if_exception_type(_transport_errors()),
                            stop=stop_after_delay(self.broker_wait),
                            wait=wait_exponential(multiplier=0.2, max=5.0), reraise=True,
                            before_sleep=self._note_retry)
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
        if answer.get("silent"):  # an answer without the field (an older worker) has text
            return Transcription([], model=answer.get("model"), silent=True)
        return Transcription(_segments_from_json(answer["segments"]), Usage(**answer.get("usage", {})),
                             model=answer.get("model"), voices=_voices_from_json(answer.get("voices")))

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


def _job_message(job: str, reply_to: str, audio: np.ndarray, vocabulary: Sequence[str],
                 options: DecodeOptions | None, voices_from: int | None, speech_from: int | None) -> dict[str, Any]:
    """A chunk job: its audio as FLAC, the session's words and decode options, and what else
    the worker is asked for (voice windows, the speech check) from where the chunk's own audio
    starts. A worker that predates a field ignores it."""
    message: dict[str, Any] = {
        "job": job, "reply_to": reply_to,
        "audio": base64.b64encode(encode_bytes(audio, "FLAC")).decode("ascii"),
        "vocabulary": list(vocabulary), "options": asdict(options or DecodeOptions())}
    if voices_from is not None:
        message["voices_from"] = int(voices_from)
    if speech_from is not None:
        message["speech_from"] = int(speech_from)
    return message


def _never_called(message: dict) -> None:
    raise RuntimeError("the app process does not run transcription jobs")


class _QueueWorker:
    """A Dramatiq worker on one queue of this process's broker: `start()` runs its threads,
    `stop()` ends them and closes the broker. Subclasses set `_broker`, `threads` and `_worker`."""

    queue: str
    poll_timeout_ms: int
    _broker: Any
    _worker: Any
    threads: int

    def start(self) -> Self:
        from dramatiq import Worker

        self._worker = Worker(self._broker, queues={self.queue}, worker_threads=self.threads,
                              worker_timeout=self.poll_timeout_ms)
        self._worker.start()
        return self

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self._broker.close()


class TranscriptionWorker(_QueueWorker):
    """Worker side: runs jobs from the queue on a local backend and answers on Redis; a job
    that asks for them (`voices_from`) also gets the chunk's voice windows, measured on the
    audio already decoded, with `encoder` (default: the speaker model, loaded on first use).
    A job that asks for the speech check (`speech_from`) is answered `silent`, its backend never
    called, when `speech_check` (default: `scribe.vad.has_speech`) finds no speech.

    `handle` runs on one of Dramatiq's worker threads.
    """

    queue = QUEUE
    poll_timeout_ms = 200

    def __init__(self, redis_url: str, transcriber: Transcriber, *, rpm: int | None = None,
                 rate_window_s: int = 60, threads: int = 1, heartbeat_ms: int = 60_000,
                 encoder: Any = None, speech_check: Callable[[np.ndarray], bool] | None = None) -> None:
        self.transcriber = transcriber
        self._speech_check = speech_check
        self.threads = threads
        self._encoder = encoder
        self._encoder_lock = threading.Lock()
        self._no_speaker_model = False
        self._redis = _redis(redis_url)
        self._broker = make_broker(redis_url, heartbeat_ms=heartbeat_ms)
        declare_actor(self._broker, self.handle)
        self._limiter = self._make_limiter(redis_url, rpm, rate_window_s)
        self._worker: Any = None

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
            if self._silent(audio, message):
                return {"ok": True, "silent": True, "model": self.transcriber.model}
            result = call_transcriber(self.transcriber, audio, message.get("vocabulary") or (),
                                      DecodeOptions(**message.get("options") or {}))
        except TranscriptionError as exc:
            return {"ok": False, "error": str(exc), "retryable": exc.retryable, "retry_after": exc.retry_after}
        except Exception as exc:  # reported to the app, which decides about retrying
            log.exception("job %s failed", message["job"][:8])
            return {"ok": False, "error": f"worker error: {type(exc).__name__}: {exc}", "retryable": True}
        answer = {"ok": True, "segments": [asdict(s) for s in result.segments],
                  "model": result.model or self.transcriber.model, "usage": asdict(result.usage)}
        if message.get("voices_from") is not None:
            answer["voices"] = self._voices(audio[int(message["voices_from"]):], message["job"])
        return answer

    def _silent(self, audio: np.ndarray, message: dict) -> bool:
        """True when the job asked for the speech check and the chunk's own audio has no speech
        (a check that fails transcribes the chunk, as the app's own check does)."""
        if message.get("speech_from") is None:
            return False
        from scribe.vad import found_silent, has_speech

        return found_silent(audio[int(message["speech_from"]):], self._speech_check or has_speech)

    def _voices(self, audio: np.ndarray, job: str) -> dict[str, Any] | None:
        """The voice windows of the chunk's own audio; None when this worker has no speaker
        model or measuring failed (the app then measures them: they are never worth a retry)."""
        encoder = self._voice_encoder()
        if encoder is None:
            return None
        from scribe.speakers import embed_windows, pack_windows

        try:
            return _voices_json(pack_windows(embed_windows(audio, encoder)))
        except Exception:
            log.exception("job %s: voice windows not measured; the app measures them", job[:8])
            return None

    def _voice_encoder(self) -> Any:
        """The speaker model, loaded by the first job that asks; None (said once) when missing."""
        with self._encoder_lock:
            if self._encoder is None and not self._no_speaker_model:
                from scribe.errors import SpeakerModelError
                from scribe.speakers import shared_encoder

                try:
                    self._encoder = shared_encoder()
                except SpeakerModelError as exc:
                    self._no_speaker_model = True
                    log.warning("no speaker model on this worker (%s): chunks are answered without "
                                "voice windows, and the app measures them", exc)
            return self._encoder

    def _answer(self, message: dict, answer: dict) -> None:
        answer["job"] = message["job"]
        answer["worker"] = f"{os.uname().nodename}:{os.getpid()}"
        self._redis.xadd(message["reply_to"], {"answer": json.dumps(answer)},
                         maxlen=STREAM_MAXLEN, approximate=True)

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


# -- the partial lane on workers ------------------------------------------------------
PARTIAL_QUEUE = "scribe-partials"
PARTIAL_ACTOR = "decode_partials"
PARTIAL_LATEST = "scribe:partials:latest:"
"""+ reply stream: the newest tick that app sent. A worker skips any older one."""
PARTIAL_MAX_AGE_S = 2.0
"""A partial request older than this when a worker takes it is dropped, never decoded (the
session has newer audio by then), and the app stops waiting for it."""


def declare_partial_actor(broker, handler: Callable[[dict], None]):
    """The partial lane's actor, on its own queue so it never waits behind chunks; never retried."""
    import dramatiq

    return dramatiq.actor(broker=broker, actor_name=PARTIAL_ACTOR, queue_name=PARTIAL_QUEUE,
                          max_retries=0, time_limit=30_000)(handler)


def _pcm16(audio: np.ndarray) -> str:
    return base64.b64encode((np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()).decode("ascii")


def _from_pcm16(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<i2").astype(np.float32) / 32767


def _tail_json(tail: Tail) -> dict[str, Any]:
    """A tail of a tick message: its audio as 16-bit samples, the rest as it is."""
    fields = {name: getattr(tail, name) for name in ("offset_s", "prompt", "times", "vocabulary", "language",
                                                    "initial_prompt")}
    return {**fields, "audio": _pcm16(tail.audio), "gate": asdict(tail.gate) if tail.gate else None}


def _tail_from_json(item: dict) -> Tail:
    from scribe.partials import Gate, Tail

    return Tail(_from_pcm16(item["audio"]), item["offset_s"], item["prompt"], item["times"], item["vocabulary"],
                item["language"], item["initial_prompt"], Gate(**item["gate"]) if item["gate"] else None)


def _heard_json(heard: Heard | None) -> dict[str, Any] | None:
    if heard is None:
        return None
    return {"words": [[w.text, w.start, w.end] for w in heard.words], "speech_end_s": heard.speech_end_s,
            "quiet": heard.quiet}


def _heard_from_json(item: dict | None) -> Heard | None:
    from scribe.partials import Heard
    from scribe.transcribers.partial_whisper import TimedWord

    if item is None:
        return None
    return Heard([TimedWord(*w) for w in item["words"]], item["speech_end_s"], item["quiet"])


class RemotePartialDecoder:
    """App side of the partial lane on workers: the lane's `hear`. Each tick's tails (the open
    chunks' audio still to decode, with each session's prompt, vocabulary, language and chunk
    gate) go out as one message; the worker runs the VAD and decides, as the local lane would,
    which tails are worth a decode (`scribe.partials.hear`), so this process runs no VAD. Their
    words, or why a tail was not decoded, come back on this process's own stream. A tick not
    answered within `max_age_s` is skipped (its sessions get their next decode on the next
    tick); nothing is ever resent."""

    def __init__(self, redis_url: str, *, max_age_s: float = PARTIAL_MAX_AGE_S) -> None:
        self.max_age_s = max_age_s
        self._redis = _redis(redis_url)
        self._stream = f"{RESULTS_PREFIX}partials:{uuid.uuid4().hex}"
        self._actor = declare_partial_actor(make_broker(redis_url), _never_called)
        self._last_id = "0-0"
        self.skipped = 0
        """Ticks not answered in time (or lost with a worker)."""

    def hear(self, tails: list[Tail]) -> list[Heard | None]:
        """What each tail gave (`scribe.partials.Heard`, None where the worker's VAD or decode
        failed), from whichever worker took the tick; raises TranscriptionError (not
        retryable) when no answer came within `max_age_s`."""
        tick = uuid.uuid4().hex
        sent = time.time()
        self._redis.set(PARTIAL_LATEST + self._stream, tick, ex=60)
        self._actor.send({"tick": tick, "reply_to": self._stream, "sent_at": sent, "max_age_s": self.max_age_s,
                          "tails": [_tail_json(t) for t in tails]})
        answer = self._await(tick, sent + self.max_age_s + 1.0)
        if answer is None:
            self.skipped += 1
            raise TranscriptionError(f"no worker answered partial tick {tick[:8]} in time", retryable=False)
        return [_heard_from_json(h) for h in answer["heard"]]

    def _await(self, tick: str, deadline: float) -> dict | None:
        """This tick's answer; older ticks' late answers are read past and dropped."""
        while (left := deadline - time.time()) > 0:
            batches = self._redis.xread({self._stream: self._last_id}, count=10, block=max(1, int(left * 1000)))
            for _stream, entries in batches or []:
                for entry_id, fields in entries:
                    self._last_id = entry_id
                    answer = json.loads(fields[b"answer"])
                    if answer["tick"] == tick:
                        self._redis.xtrim(self._stream, minid=entry_id)
                        return answer
        return None

    def close(self) -> None:
        self._redis.delete(self._stream, PARTIAL_LATEST + self._stream)


class PartialWorker(_QueueWorker):
    """Worker side: serves partial ticks on its own queue with a local partial model: VAD over
    each tail, then a decode of those worth it (`scribe.partials.hear`, as the local lane).
    A tick older than its `max_age_s`, or no longer its app's newest, is dropped undecoded."""

    queue = PARTIAL_QUEUE
    poll_timeout_ms = 100

    def __init__(self, redis_url: str, decoder: Any, *, threads: int = 1, heartbeat_ms: int = 60_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.decoder = decoder
        self.threads = threads
        self.dropped = 0
        self.decoded = 0
        self._clock = clock
        self._redis = _redis(redis_url)
        self._broker = make_broker(redis_url, heartbeat_ms=heartbeat_ms)
        declare_partial_actor(self._broker, self.handle)
        self._worker: Any = None

    def handle(self, message: dict) -> None:
        if self.stale(message):
            self.dropped += 1
            log.info("partial tick %s dropped: stale", message["tick"][:8])
            return
        from scribe.partials import hear

        heard = hear(self.decoder, [_tail_from_json(t) for t in message["tails"]])
        self.decoded += 1
        answer = {"tick": message["tick"], "heard": [_heard_json(h) for h in heard],
                  "worker": f"{os.uname().nodename}:{os.getpid()}"}
        self._redis.xadd(message["reply_to"], {"answer": json.dumps(answer)}, maxlen=1000, approximate=True)

    def stale(self, message: dict) -> bool:
        """Too old, or a newer tick of the same app was sent since (the latest wins)."""
        if self._clock() - float(message["sent_at"]) > float(message["max_age_s"]):
            return True
        latest = self._redis.get(PARTIAL_LATEST + message["reply_to"])
        return latest is not None and latest.decode() != message["tick"]

