"""The partial lane: live text for the chunk that is still open, best effort.

The chunk lane (capture -> Chunker -> pipeline) stores the transcript exactly
once, a chunk at a time (~15 s). Beside it, this lane re-decodes the open
chunk's audio after every `interval_seconds` of new audio with a fast local
model and keeps, per session, the latest hypothesis split into a stable part
(LocalAgreement-2: the words two successive hypotheses agree on; never taken
back within a chunk) and an unstable tail. When the chunk closes, its partial
text is held until the chunk lane has stored that chunk's text, then dropped
in its favour. Nothing here is stored as transcript; only decode statistics
(`PartialDecode` rows) are.

It never costs the chunk lane anything it can avoid:
- at most one decode per session in flight; a newer request replaces a waiting
  older one (coalesced, counted), so requests never queue up;
- its own `scribe-partial-N` threads serve sessions round-robin;
- while `busy()` reports a backlog in the chunk lane (chunks in its intake or queue),
  no decode starts; requests meanwhile keep only the newest (counted as paused);
- the model is always local (`load_model`), whatever backend the chunk lane uses:
  partials are never billed.

Threads (who calls what):
- `due`, `offer`, `chunk_closed`, `end_session`, `take_decodes`: the capture's
  processor thread (or the event loop when a track ends). They copy references
  and notify; they never decode and never touch disk or DuckDB.
- `scribe-partial-N`: decodes and applies the stability rule.
- `on_pipeline_event`: a pipeline worker (listener), when a chunk's text is stored.
- `partials`, `stats`: script threads of the pages.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from scribe.audio import SAMPLE_RATE
from scribe.config import Settings
from scribe.core import Segment
from scribe.hallucination import guard_segments

log = logging.getLogger("scribe.partials")

Decoder = Callable[[np.ndarray], str]
"""Audio of the open chunk (16 kHz float32) -> its text. Runs on a partial thread."""
PartialListener = Callable[["PartialDecode"], None]

BUSY_POLL_SECONDS = 0.1
"""While the chunk lane has work waiting, look again this often (its queue cannot wake us)."""
MAX_LAGS_KEPT = 2000
"""Per session, the lags kept in memory for the live percentiles (the table keeps all)."""
NICE = 10
"""Partial threads (and the model's compute threads they create) run this much nicer than
the process: under full CPUs the chunk lane, WebRTC and the pages go first."""
PARTIAL_THREADS = 1
"""CTranslate2 threads of the partial model: one core, so a decode never takes the whole
machine from the capture threads (measured: with all cores, frames stalled for seconds)."""


def lower_priority(nice: int = NICE) -> None:
    """Make the calling thread (and the threads it creates from now on) nicer. Linux
    applies nice per thread; elsewhere, or without permission, nothing changes."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (AttributeError, OSError):
        log.debug("cannot lower the partial thread's priority", exc_info=True)


@dataclass(frozen=True)
class PartialText:
    """The current best guess for one chunk's text (not stored)."""

    session_id: str
    seq: int
    start_ms: int
    """Where the chunk starts in session time."""
    end_ms: int
    """How far into the session the decoded audio reached."""
    stable: str
    tail: str

    @property
    def text(self) -> str:
        return " ".join(part for part in (self.stable, self.tail) if part)


@dataclass(frozen=True)
class PartialDecode:
    """One partial decode, for statistics (a row of `partial_decodes`)."""

    session_id: str
    seq: int
    produced_at: float
    """Epoch seconds the text was ready."""
    audio_end_ms: int
    lag_s: float
    """From the moment the decoded audio had arrived to the moment its text was ready."""
    decode_s: float
    words: int
    coalesced: int
    """Requests of this session replaced by newer ones since the previous decode."""
    paused: int
    """Of those, the ones replaced while the lane waited for the chunk lane's backlog."""


@dataclass
class PartialStats:
    """A session's partial-lane counters (a snapshot for pages and tests)."""

    offered: int = 0
    decodes: int = 0
    coalesced: int = 0
    paused: int = 0
    decode_seconds: float = 0.0
    lags: list[float] = field(default_factory=list)

    def lag_percentile(self, q: float) -> float | None:
        return float(np.percentile(self.lags, q)) if self.lags else None

    @property
    def skipped_share(self) -> float:
        """Requests never decoded (replaced by newer ones), as a share of all requests."""
        return self.coalesced / self.offered if self.offered else 0.0


def words_of(text: str) -> list[str]:
    return text.split()


def _norm(word: str) -> str:
    """Compare words without case or punctuation ("meeting." agrees with "meeting")."""
    return re.sub(r"[^\w']", "", word.lower())


def common_prefix(a: list[str], b: list[str]) -> int:
    """Length of the longest run of leading words `a` and `b` agree on."""
    n = 0
    for x, y in zip(a, b):
        if _norm(x) != _norm(y):
            break
        n += 1
    return n


class LocalAgreement:
    """LocalAgreement-n (Machacek et al., whisper_streaming): a word is stable once the
    last `n` hypotheses agree on it and on every word before it. Stable words are never
    taken back; the rest of the newest hypothesis is the unstable tail."""

    def __init__(self, n: int = 2) -> None:
        if n < 2:
            raise ValueError("LocalAgreement needs at least two hypotheses to agree")
        self.n = n
        self._history: deque[list[str]] = deque(maxlen=n)
        self.stable: list[str] = []

    def update(self, words: list[str]) -> tuple[list[str], list[str]]:
        """Add the newest hypothesis; returns (stable words, unstable tail)."""
        self._history.append(words)
        if len(self._history) == self.n:
            agreed = min(common_prefix(self._history[0], h) for h in list(self._history)[1:])
            if agreed > len(self.stable):
                self.stable = list(words[:agreed])
        return list(self.stable), tail_after(self.stable, words)


def tail_after(stable: list[str], words: list[str]) -> list[str]:
    """The part of hypothesis `words` that follows the `stable` words. When the model has
    since rewritten some of them, align the two, so that a word is neither repeated nor
    dropped at the seam (cutting at len(stable) would do either)."""
    agreed = common_prefix(stable, words)
    if agreed == len(stable):
        return list(words[agreed:])
    matcher = difflib.SequenceMatcher(None, [_norm(w) for w in stable], [_norm(w) for w in words],
                                      autojunk=False)
    blocks = [b for b in matcher.get_matching_blocks() if b.size]
    if not blocks:
        return list(words[len(stable):])
    last = blocks[-1]
    unmatched_stable = len(stable) - (last.a + last.size)  # stable words the model rewrote after it
    return list(words[last.b + last.size + unmatched_stable:])


@dataclass
class _Request:
    session_id: str
    seq: int
    start_sample: int
    audio: np.ndarray = field(repr=False)
    offered_at: float
    """Monotonic time the audio's last sample had arrived."""


@dataclass
class _Session:
    seq: int = -1
    start_sample: int = 0
    offered_until: int = 0
    """Open-chunk samples covered by the last request (0 when the chunk is new)."""
    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    waiting: _Request | None = None
    in_flight: bool = False
    current: PartialText | None = None
    held: dict[int, PartialText] = field(default_factory=dict)
    stats: PartialStats = field(default_factory=PartialStats)
    coalesced_since: int = 0
    paused_since: int = 0
    records: list[PartialDecode] = field(default_factory=list)
    ended: bool = False


class PartialLane:
    """Best-effort partial text for live sessions. Construct, `start()`, feed, `stop()`."""

    def __init__(self, decode: Decoder, *, interval_seconds: float = 1.0,
                 busy: Callable[[], bool] = lambda: False, threads: int = 1, agreement: int = 2,
                 monotonic: Callable[[], float] = time.monotonic,
                 clock: Callable[[], float] = time.time) -> None:
        self._decode = decode
        self.interval_samples = max(1, int(interval_seconds * SAMPLE_RATE))
        self._busy = busy
        self._n_threads = max(1, threads)
        self._agreement_n = agreement
        self._monotonic = monotonic
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._ready: deque[str] = deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._paused = False
        self._listeners: list[PartialListener] = []

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> "PartialLane":
        if self._threads:
            return self
        self._stopping = False
        for n in range(self._n_threads):
            thread = threading.Thread(target=self._run, name=f"scribe-partial-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def add_listener(self, listener: PartialListener) -> None:
        """Called on a partial thread after every decode (metrics); must not block."""
        self._listeners.append(listener)

    # -- capture side (processor thread): never blocks ----------------------------
    def due(self, session_id: str, seq: int, buffered_samples: int) -> bool:
        """True when the open chunk has `interval` of audio not yet offered (or is new)."""
        with self._cond:
            state = self._sessions.get(session_id)
            if state is None or state.seq != seq:
                return buffered_samples >= self.interval_samples
            return buffered_samples - state.offered_until >= self.interval_samples

    def offer(self, session_id: str, seq: int, start_sample: int, audio: np.ndarray) -> None:
        """The open chunk's audio so far; replaces a request of this session still waiting."""
        request = _Request(session_id, seq, start_sample, audio, self._monotonic())
        with self._cond:
            state = self._sessions.setdefault(session_id, self._new_session())
            state.ended = False  # frames again after an end: the capture was revived
            if state.seq != seq:
                self._open_chunk(state, seq, start_sample)
            state.offered_until = audio.size
            state.stats.offered += 1
            if state.waiting is not None:
                self._note_replaced(state)
            elif not state.in_flight:
                self._ready.append(session_id)
            state.waiting = request
            self._cond.notify()

    def chunk_closed(self, session_id: str, seq: int) -> None:
        """A chunk closed: hold its partial text until its stored text arrives."""
        with self._cond:
            state = self._sessions.get(session_id)
            if state is None or state.seq != seq:
                return
            if state.current is not None and state.current.text:
                state.held[seq] = state.current
            state.current = None
            state.seq, state.offered_until = -1, 0
            if state.waiting is not None and state.waiting.seq == seq:
                state.waiting = None  # its chunk is on its way to the chunk lane

    def take_decodes(self, session_id: str) -> list[PartialDecode]:
        """Decode records not yet handed out (to be stored by the caller)."""
        with self._cond:
            state = self._sessions.get(session_id)
            if state is None:
                return []
            records, state.records = state.records, []
            return records

    def end_session(self, session_id: str) -> list[PartialDecode]:
        """The capture ended (its last chunk already closed): no more decodes; its held
        partial text stays until stored text replaces it. Returns its last decode records."""
        with self._cond:
            state = self._sessions.get(session_id)
            if state is None:
                return []
            state.waiting = None
            state.ended = True
            records, state.records = state.records, []
            self._drop_if_finished(session_id, state)
            return records

    def _drop_if_finished(self, session_id: str, state: _Session) -> None:
        """An ended session's state goes once nothing is in flight or held (caller holds the lock)."""
        if state.ended and not state.in_flight and not state.held:
            del self._sessions[session_id]

    # -- pipeline side (worker thread) ---------------------------------------------
    def on_pipeline_event(self, event: str, fields: dict) -> None:
        """Pipeline listener: a chunk's stored text (or its failure) replaces its partial."""
        if event in ("chunk_done", "chunk_failed"):
            self.forget_chunk(str(fields["session_id"]), int(fields["seq"]))

    def forget_chunk(self, session_id: str, seq: int) -> None:
        with self._cond:
            state = self._sessions.get(session_id)
            if state is not None:
                state.held.pop(seq, None)
                self._drop_if_finished(session_id, state)

    # -- readers (script threads) ------------------------------------------------
    def partials(self, session_id: str) -> list[PartialText]:
        """Partial text not yet replaced by stored text, in session order."""
        with self._cond:
            state = self._sessions.get(session_id)
            if state is None:
                return []
            shown = [state.held[seq] for seq in sorted(state.held)]
            if state.current is not None and state.current.text:
                shown.append(state.current)
            return shown

    def stats(self, session_id: str) -> PartialStats | None:
        with self._cond:
            state = self._sessions.get(session_id)
            if state is None:
                return None
            s = state.stats
            return PartialStats(s.offered, s.decodes, s.coalesced, s.paused, s.decode_seconds, list(s.lags))

    # -- internals ---------------------------------------------------------------
    def _new_session(self) -> _Session:
        return _Session(agreement=LocalAgreement(self._agreement_n))

    def _open_chunk(self, state: _Session, seq: int, start_sample: int) -> None:
        if state.current is not None and state.current.text and state.seq >= 0:
            state.held[state.seq] = state.current  # closed without chunk_closed (resume)
        state.seq, state.start_sample, state.offered_until = seq, start_sample, 0
        state.agreement = LocalAgreement(self._agreement_n)
        state.current = None

    def _note_replaced(self, state: _Session) -> None:
        state.stats.coalesced += 1
        state.coalesced_since += 1
        if self._paused:
            state.stats.paused += 1
            state.paused_since += 1

    def _run(self) -> None:
        """Partial thread: take the next session's newest request, decode it, repeat."""
        lower_priority()
        while (request := self._next_request()) is not None:
            started = self._monotonic()
            try:
                text: str | None = self._decode(request.audio)
            except Exception:  # a failed partial costs one refresh, never the lane
                log.exception("session=%s partial decode failed", request.session_id)
                text = None
            self._finish(request, text, started)

    def _next_request(self) -> _Request | None:
        while True:
            with self._cond:
                while not self._ready and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return None
            if self._chunk_lane_busy():
                with self._cond:
                    self._cond.wait(BUSY_POLL_SECONDS)
                continue
            with self._cond:
                request = self._pop_ready()
                if request is not None:
                    return request

    def _chunk_lane_busy(self) -> bool:
        try:
            busy = bool(self._busy())
        except Exception:  # an unreadable backlog must not stop live text
            log.exception("partial lane: busy check failed")
            busy = False
        with self._cond:
            self._paused = busy
        return busy

    def _pop_ready(self) -> _Request | None:
        while self._ready:
            session_id = self._ready.popleft()
            state = self._sessions.get(session_id)
            if state is None or state.waiting is None or state.in_flight:
                continue
            request, state.waiting = state.waiting, None
            state.in_flight = True
            return request
        return None

    def _finish(self, request: _Request, text: str | None, started: float) -> None:
        done = self._monotonic()
        record = None
        with self._cond:
            state = self._sessions.get(request.session_id)
            if state is None:
                return
            state.in_flight = False
            if state.ended:
                self._drop_if_finished(request.session_id, state)
                return
            if state.waiting is not None:
                self._ready.append(request.session_id)
                self._cond.notify()
            if text is not None:
                record = self._apply(state, request, text, started, done)
        if record is not None:
            for listener in self._listeners:
                try:
                    listener(record)
                except Exception:
                    log.exception("partial listener failed")

    def _apply(self, state: _Session, request: _Request, text: str, started: float,
               done: float) -> PartialDecode:
        words = words_of(text)
        if request.seq == state.seq:  # a late answer for a closed chunk is only counted
            stable, tail = state.agreement.update(words)
            state.current = PartialText(
                request.session_id, request.seq, request.start_sample * 1000 // SAMPLE_RATE,
                (request.start_sample + request.audio.size) * 1000 // SAMPLE_RATE,
                " ".join(stable), " ".join(tail))
        lag = done - request.offered_at
        record = PartialDecode(
            request.session_id, request.seq, self._clock(),
            (request.start_sample + request.audio.size) * 1000 // SAMPLE_RATE, round(lag, 4),
            round(done - started, 4), len(words), state.coalesced_since, state.paused_since)
        state.coalesced_since = state.paused_since = 0
        state.stats.decodes += 1
        state.stats.decode_seconds += done - started
        state.stats.lags.append(lag)
        del state.stats.lags[:-MAX_LAGS_KEPT]
        state.records.append(record)
        return record


CONTEXT_PADDING_SECONDS = 2.0
"""Silence after the speech in a partial decode's encoder input. Whisper's encoder
normally sees a 30 s window whatever the audio's length, and its cost grows with its
input: on speech plus this much silence, a partial decode takes a third of the time
(tiny.en, one thread: 0.2 s instead of 0.6 s), and words show half a second sooner.
Accuracy is a wash: over clean and noisy speech, tuning and evaluation sets, the same
mean WER, 2 % fewer words ever shown (benchmarks/partial_decoding.py). Chosen on the
tuning set; with much less silence the model drops the last words more often."""
TOKENS_PER_SECOND = 12
"""A bound on the decoded tokens per second of speech (speech is about 4, timestamps
included): a decode that loops on a phrase stops there instead of at Whisper's 448."""


class WhisperPartialDecoder:
    """Greedy decoding of an open chunk with the shared local model, on a short window.

    Silero VAD first, so silence costs no decoder pass and never turns into "Thank you.";
    then the speech, plus `CONTEXT_PADDING_SECONDS` of silence, through the encoder and
    a greedy (beam 1: a partial is replaced a second later anyway) decode in one
    CTranslate2 call; the hallucination guard as on the chunk lane. Speech too long for
    one Whisper window goes through faster-whisper's own windowed decoding instead.
    """

    def __init__(self, model: str, *, compute_type: str = "int8", threads: int = PARTIAL_THREADS,
                 workers: int = 1, language: str = "en", short_window: bool = True) -> None:
        """`short_window=False` always decodes in Whisper's 30 s windows (for comparison)."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        from scribe.transcribers.local import load_model

        self.model = model
        self.short_window = short_window
        self._whisper = load_model(model, compute_type=compute_type, threads=threads, workers=workers)
        # Always a language: left to the model, a multilingual one would detect it on every
        # decode, a second encoder pass per partial.
        self.language = "en" if self._whisper.model.is_multilingual is False else language
        self._tokenizer = Tokenizer(self._whisper.hf_tokenizer, self._whisper.model.is_multilingual,
                                    task="transcribe", language=self.language)
        self._suppress = list(get_suppressed_tokens(self._tokenizer, [-1]))
        extractor = self._whisper.feature_extractor
        self._window_frames = extractor.nb_max_frames
        self._window_samples = extractor.nb_max_frames * extractor.hop_length

    def __call__(self, audio: np.ndarray) -> str:
        if not self.short_window:
            return self._decode_windows(audio)
        speech = self._speech_only(audio)
        if speech.size == 0:
            return ""
        padded = np.concatenate([speech, np.zeros(int(CONTEXT_PADDING_SECONDS * SAMPLE_RATE), np.float32)])
        if padded.size > self._window_samples:
            return self._decode_windows(audio)
        seconds = speech.size / SAMPLE_RATE
        text, no_speech_prob = self._decode_short(padded, seconds)
        if not text:
            return ""
        found = Segment(start=0.0, end=seconds, text=text, no_speech_prob=no_speech_prob)
        return " ".join(s.text for s in guard_segments([found], speech))

    def _speech_only(self, audio: np.ndarray) -> np.ndarray:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        spans = get_speech_timestamps(audio, VadOptions())
        if not spans:
            return np.zeros(0, np.float32)
        return np.concatenate([audio[span["start"]:span["end"]] for span in spans]).astype(np.float32)

    def _decode_short(self, padded: np.ndarray, speech_seconds: float) -> tuple[str, float]:
        """Text and no-speech probability of `padded` (shorter than one window)."""
        from faster_whisper.transcribe import get_ctranslate2_storage

        features = self._whisper.feature_extractor(padded)[:, : self._window_frames]
        result = self._whisper.model.generate(
            get_ctranslate2_storage(np.ascontiguousarray(features[None])), [list(self._tokenizer.sot_sequence)],
            beam_size=1, max_length=min(448, 16 + int(TOKENS_PER_SECOND * speech_seconds)),
            return_no_speech_prob=True, suppress_blank=True, suppress_tokens=self._suppress)[0]
        # Timestamp tokens (at and after eot) mark segment times; only the words are wanted.
        words = [token for token in result.sequences_ids[0] if token < self._tokenizer.eot]
        return self._tokenizer.decode(words).strip(), float(result.no_speech_prob)

    def _decode_windows(self, audio: np.ndarray) -> str:
        segments, _info = self._whisper.transcribe(
            audio, language=self.language, beam_size=1,
            vad_filter=True, condition_on_previous_text=False)
        found = [Segment(start=float(s.start), end=float(s.end), text=s.text.strip(),
                         no_speech_prob=float(s.no_speech_prob)) for s in list(segments) if s.text.strip()]
        return " ".join(s.text for s in guard_segments(found, audio))

    def warm(self) -> None:
        """One decode now, so the first session's first partial pays no start-up cost."""
        rng = np.random.default_rng(0)
        noise = (0.01 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32)
        self._speech_only(noise)
        self._decode_short(noise, 1.0)


def build_partial_lane(settings: Settings, busy: Callable[[], bool]) -> PartialLane:
    """The app's lane: the local partial model (loaded once per process through `load_model`,
    shared by every session), warmed before any session starts.

    It is loaded on a nicer thread of its own: CTranslate2's compute threads inherit that
    priority, so partial decodes yield the CPU to everything else."""
    loaded: dict[str, object] = {}

    def load() -> None:
        lower_priority()
        try:
            decoder = WhisperPartialDecoder(settings.partial_model, compute_type=settings.whisper_compute_type,
                                            language=settings.language)
            decoder.warm()
            loaded["decoder"] = decoder
        except BaseException as exc:  # surfaced on the building thread below
            loaded["error"] = exc

    thread = threading.Thread(target=load, name="scribe-partial-load", daemon=True)
    thread.start()
    thread.join()
    if "error" in loaded:
        raise loaded["error"]  # type: ignore[misc]
    return PartialLane(loaded["decoder"], interval_seconds=settings.partial_interval_seconds,  # type: ignore[arg-type]
                       busy=busy)
