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
import math
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from scribe.audio import SAMPLE_RATE
from scribe.config import Settings
from scribe.core import DecodeOptions
from scribe.errors import TranscriptionError
from scribe.transcribers.partial_whisper import Speech, TimedWord, WhisperPartialDecoder, words_of
from scribe.vocabulary import whisper_prompt

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
the process: under full CPUs the chunk lane, WebRTC and the pages go first (beside a busy
partial lane a chunk decode took +8-54 % at this nice, +74-251 % without it:
`benchmarks/partial_cost.py --lane-only`)."""


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
    quiet: int = 0
    """Requests not decoded: no new speech since the last decode, or speech running on with
    less than `WAIT_SECONDS` of it since then (`ChunkText.waits`)."""

    @property
    def served(self) -> int:
        """Requests the lane took: decoded, or found to hold no new speech."""
        return self.decodes + self.quiet

    def lag_percentile(self, q: float) -> float | None:
        return float(np.percentile(self.lags, q)) if self.lags else None

    @property
    def skipped_share(self) -> float:
        """Requests never decoded (replaced by newer ones), as a share of all requests."""
        return self.coalesced / self.offered if self.offered else 0.0


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
        self.stable = self.peek(words)
        self._history.append(words)
        return list(self.stable), tail_after(self.stable, words)

    def peek(self, words: list[str]) -> list[str]:
        """The stable words once `words` is added, without adding it."""
        return stable_after(self.stable, list(self._history)[1 - self.n:], words, self.n)

    @property
    def previous(self) -> tuple[tuple[str, ...], ...]:
        """The hypotheses a new one must agree with (the last n - 1)."""
        return tuple(tuple(h) for h in list(self._history)[1 - self.n:])


def stable_after(stable: Sequence[str], previous: Sequence[Sequence[str]], words: list[str], n: int) -> list[str]:
    """LocalAgreement's stable words after hypothesis `words`, given the stable words so far
    and the last n - 1 hypotheses before it."""
    if len(previous) < n - 1:
        return list(stable)
    agreed = min(common_prefix(list(h), words) for h in previous)
    return list(words[:agreed]) if agreed > len(stable) else list(stable)


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


COMMIT_AFTER_SECONDS = 3.0
"""Once the tail being decoded is this long, its stable words up to a pause are committed:
never decoded again, the prompt of the decodes after them. Each decode then reads a few
seconds of audio whatever the chunk's length (chosen on the tuning set,
benchmarks/partial_decoding.py)."""
PAUSE_SECONDS = 0.3
"""A gap this long between two decoded words is a pause where the tail may be cut. Whisper
reads a tail that starts at a pause (a new phrase) well; one cut between two words of a
running phrase it misreads ("the third quarter" cut after "the" became "free from the noon")."""
SETTLE_SECONDS = 0.5
"""Only words ending this long before the decoded audio's end are committed (the last
words' times are the least sure)."""
OVERLAP_SECONDS = 0.1
"""A tail starts this much before the middle of the pause it was cut at (still silence)."""
QUIET_SECONDS = 0.3
"""No decode while VAD finds no speech past what the last decode heard, once that decode
already had this much audio after the speech (the last words were not cut off)."""
WAIT_SECONDS = 2.0
"""While speech runs on without a pause, a tail is decoded once this much audio arrived since
its last decode (a decode costs about the same whatever its length, so fewer of them is
what makes a live session cheap); a pause (`Speech.paused`) decodes it at once
(`ChunkText.waits`)."""
CONTEXT_WORDS = 40
"""Words of the session kept as the prompt's source (the decoder takes its last tokens)."""


class ChunkText:
    """One open chunk's words: the committed words (stable, whose audio is never decoded
    again) and the hypotheses of the tail after them (LocalAgreement over the tail).

    Pure state, no threads: the lane holds one per session under its lock, and
    benchmarks/partial_decoding.py drives one directly. Stable words, committed or not, are
    never taken back within the chunk."""

    def __init__(self, context: str = "", agreement: int = 2,
                 commit_after_s: float = COMMIT_AFTER_SECONDS, wait_s: float = WAIT_SECONDS) -> None:
        self.context = context
        """Words shown before this chunk (the prompt's start)."""
        self.committed: list[str] = []
        self.cut_s = 0.0
        """Where the tail starts, in seconds from the chunk's start."""
        self._n = agreement
        self.agreement = LocalAgreement(agreement)
        self.commit_after_s = commit_after_s
        self.wait_s = wait_s
        self.tail: list[str] = []
        self.speech_end_s: float | None = None
        self.decoded_end_s = 0.0

    @property
    def stable(self) -> list[str]:
        return self.committed + self.agreement.stable

    def words(self) -> list[str]:
        return self.stable + self.tail

    def tail_audio(self, audio: np.ndarray) -> tuple[np.ndarray, float]:
        """The part of the open chunk's audio still to decode, and where it starts (s)."""
        start = max(0, int((self.cut_s - OVERLAP_SECONDS) * SAMPLE_RATE)) if self.cut_s > 0 else 0
        return audio[start:], start / SAMPLE_RATE

    def prompt(self) -> str:
        return " ".join([*self.context.split(), *self.committed][-CONTEXT_WORDS:])

    def wants_times(self, audio_end_s: float) -> bool:
        """Word times are needed only by a decode that may commit (a long tail)."""
        return audio_end_s - self.cut_s >= self.commit_after_s

    def gate(self, wait_s: float | None = None) -> "Gate":
        """What a decode of this tail waits for now (`wait_s`: see `waits`)."""
        return Gate(self.speech_end_s, self.decoded_end_s, self.cut_s,
                    self.wait_s if wait_s is None else wait_s, tuple(self.committed[-REPEAT_WORDS:]),
                    tuple(self.agreement.stable), self.agreement.previous, self._n)

    def unchanged(self, speech: "Speech | None", audio_end_s: float) -> bool:
        """True when a decode of this tail could tell nothing new: no speech in it (the
        cut then moves past the silence when nothing uncommitted is shown), or no speech
        since a decode that heard enough silence after it."""
        quiet = SILENCE if speech is None else UNCHANGED if self.gate().heard_before(speech) else None
        if quiet is not None:
            self.passed(quiet, audio_end_s)
        return quiet is not None

    def waits(self, speech: "Speech | None", audio_end_s: float, wait_s: float | None = None) -> bool:
        """True when this decode can wait for more audio: the speech runs on to the audio's
        end and less than `wait_s` (else the chunk's own) of audio arrived since the last
        decode. Words that end a phrase are decoded at the pause after them; words within a
        long phrase wait up to `wait_s`."""
        return speech is not None and self.gate(wait_s).waits(speech, audio_end_s)

    def passed(self, quiet: str, audio_end_s: float) -> None:
        """A tail up to `audio_end_s` was not decoded (`Gate.quiet`'s answer): the audio counts
        as heard, and a silence moves the cut past itself when nothing uncommitted is shown."""
        if quiet == SILENCE and not self.tail and not self.agreement.stable:
            self.cut_s = max(self.cut_s, audio_end_s - 1.0)
        if quiet != WAITS:
            self.decoded_end_s = audio_end_s

    def accept(self, heard: list[TimedWord], audio_end_s: float, speech_end_s: float) -> None:
        """A decode of the tail up to `audio_end_s`: update the stable words and the tail, and
        once the tail is long commit its stable words up to a pause (words with times only)."""
        heard = _new_words(self.committed, heard)
        texts = [w.text for w in heard]
        stable, self.tail = self.agreement.update(texts)
        self.decoded_end_s, self.speech_end_s = audio_end_s, speech_end_s
        if audio_end_s - self.cut_s < self.commit_after_s or not _commits_from(stable, texts):
            return
        pause = _last_pause(heard[: len(stable) + 1], len(stable), audio_end_s - SETTLE_SECONDS,
                            forced=audio_end_s - self.cut_s >= 2 * self.commit_after_s)
        if pause is None:
            return
        k, cut_s = pause
        self.cut_s = max(self.cut_s, cut_s)
        self.committed += stable[:k]
        self.agreement = LocalAgreement(self._n)
        self.agreement.update(texts[k:])  # the next hypothesis of the tail can agree at once
        self.tail = texts[k:]


SILENCE, UNCHANGED, WAITS = "silence", "unchanged", "waits"
"""Why a tail was not decoded (`Gate.quiet`)."""


@dataclass(frozen=True)
class Gate:
    """A chunk's state as far as deciding whether a tail is worth decoding goes: plain
    numbers, so a worker that runs the VAD decides as the lane would (`hear`)."""

    speech_end_s: float | None
    """Where the speech of the last decode ended (None: no decode yet in this chunk)."""
    decoded_end_s: float
    cut_s: float
    wait_s: float
    committed: Sequence[str] = ()
    """The last committed words (a decode's repeat of them is dropped)."""
    stable: Sequence[str] = ()
    """The tail's stable words so far (LocalAgreement)."""
    previous: Sequence[Sequence[str]] | None = None
    """The tail's last hypotheses, which a new one must agree with (None: unknown)."""
    agreement: int = 2

    def may_commit(self, words: list[str]) -> bool:
        """Whether a decode that heard `words` can commit any (`ChunkText.accept`): only
        then does it need word times. A commit needs stable words the hypothesis still
        starts with; which words are stable does not depend on times."""
        if self.previous is None:
            return True
        heard = _new_words(self.committed, [TimedWord(w, math.nan, math.nan) for w in words])
        texts = [w.text for w in heard]
        return _commits_from(stable_after(self.stable, self.previous, texts, self.agreement), texts)

    def heard_before(self, speech: "Speech") -> bool:
        """No speech since a decode that heard enough silence after it."""
        return self.speech_end_s is not None and speech.speech_end_s <= self.speech_end_s + 0.05 \
            and self.decoded_end_s - self.speech_end_s >= QUIET_SECONDS

    def waits(self, speech: "Speech", audio_end_s: float) -> bool:
        """The speech runs on and less than `wait_s` of audio arrived since the last decode."""
        return self.within_wait(audio_end_s) and not speech.paused

    def within_wait(self, audio_end_s: float) -> bool:
        """Less than `wait_s` of audio arrived since the last decode (or the cut)."""
        return audio_end_s - max(self.decoded_end_s, self.cut_s) < self.wait_s

    def quiet(self, speech: "Speech | None", audio_end_s: float) -> str | None:
        """Why this tail's decode is not worth it (`SILENCE`, `UNCHANGED`, `WAITS`), or None."""
        if speech is None:
            return SILENCE
        if self.heard_before(speech):
            return UNCHANGED
        return WAITS if self.waits(speech, audio_end_s) else None


@dataclass(frozen=True)
class Tail:
    """One session's part of a tick, before VAD: the open chunk's audio still to decode and
    what its decode needs. Where the decoder runs on a worker, this is what travels."""

    audio: np.ndarray = field(repr=False)
    offset_s: float
    """Where `audio` starts, in seconds from the open chunk's start."""
    prompt: str = ""
    times: bool = True
    vocabulary: str = ""
    language: str | None = None
    initial_prompt: str = ""
    gate: Gate | None = None
    """The chunk's state, to skip a decode that could tell nothing new (None: a request for
    a chunk already closed, decoded whenever it holds speech)."""

    @property
    def end_s(self) -> float:
        return self.offset_s + self.audio.size / SAMPLE_RATE


@dataclass(frozen=True)
class Heard:
    """What a tail gave: its words, or why it was not decoded (`quiet`)."""

    words: list[TimedWord]
    speech_end_s: float | None
    """Where its last speech ends (chunk seconds); None when it held none."""
    quiet: str | None = None


def hear(decoder: Any, tails: list[Tail]) -> list[Heard | None]:
    """VAD over each tail (`decoder.prepare`), then one batched decode of those worth it
    (`Gate.quiet`). None for a tail whose VAD or decode failed: a failed partial costs one
    refresh, never the lane. Runs on a partial thread, or on a worker for a remote lane."""
    heard: list[Heard | None] = [None] * len(tails)
    todo: list[tuple[int, Speech]] = []
    for i, tail in enumerate(tails):
        try:
            if _runs_on(decoder, tail):
                heard[i] = Heard([], None, WAITS)
                continue
            speech = decoder.prepare(tail.audio, tail.offset_s, tail.prompt, tail.times,
                                     **({"vocabulary": tail.vocabulary} if tail.vocabulary else {}))
        except Exception:
            log.exception("partial VAD failed")
            continue
        if speech is not None and (tail.language is not None or tail.initial_prompt):
            speech = replace(speech, language=tail.language, initial_prompt=tail.initial_prompt)
        if speech is not None and speech.times and tail.gate is not None:
            speech = replace(speech, may_commit=tail.gate.may_commit)
        quiet = tail.gate.quiet(speech, tail.end_s) if tail.gate else None if speech else SILENCE
        if quiet is not None:
            heard[i] = Heard([], speech.speech_end_s if speech else None, quiet)
        else:
            todo.append((i, speech))
    if todo:
        try:
            for (i, speech), words in zip(todo, decoder.decode([s for _, s in todo])):
                heard[i] = Heard(words, speech.speech_end_s)
        except TranscriptionError as exc:
            log.info("partial decode of %d session(s) skipped: %s", len(todo), exc)
        except Exception:
            log.exception("partial decode of %d session(s) failed", len(todo))
    return heard


def _runs_on(decoder: Any, tail: Tail) -> bool:
    """The tail's decode waits (`Gate.waits`), known from the decoder's pause look at its last
    second and a half alone: while the wait lasts, only a pause would decode it, so the VAD
    pass over the whole tail (three times the cost) is spared."""
    pause = getattr(decoder, "ends_in_pause", None)
    return pause is not None and tail.gate is not None and tail.gate.within_wait(tail.end_s) \
        and not pause(tail.audio)


REPEAT_WORDS = 16
"""The most leading words of a tail dropped for repeating the last committed ones: the
overlap heard again, or a whole phrase read again when its commit cut the audio too early
(a loop: "Maria will prepare a hiring plan" committed four times). A speaker's own repeat
of a long phrase right after it is rare, and the stored text keeps it anyway."""


def _new_words(committed: Sequence[str], heard: list[TimedWord]) -> list[TimedWord]:
    """A decode's words as the chunk's text takes them: without loops, and without a repeat of
    the last committed words."""
    return _without_repeat(list(committed), without_loops(heard))


def _commits_from(stable: list[str], texts: list[str]) -> bool:
    """Whether a decode that heard `texts` may commit some of the `stable` words: only while
    it still starts with all of them (the commit rule `ChunkText.accept` and `Gate.may_commit`
    share)."""
    return bool(stable) and common_prefix(stable, texts) == len(stable)


def _without_repeat(committed: list[str], heard: list[TimedWord]) -> list[TimedWord]:
    """`heard` without leading words that repeat the last committed ones (the overlap heard
    again, or a phrase read twice)."""
    for k in range(min(REPEAT_WORDS, len(committed), len(heard)), 0, -1):
        if common_prefix(committed[-k:], [w.text for w in heard[:k]]) == k:
            return heard[k:]
    return heard


LOOP_WORDS = 20
"""The longest phrase whose back-to-back repeats are taken for a decoding loop (a long tail
decoded with its committed words as the prompt looped a whole sentence: "you will navigate
this demonstration by dialing digits if you are using a console chain" three times)."""


def without_loops(heard: list[TimedWord]) -> list[TimedWord]:
    """`heard` with a decoding loop cut to its first pass. Greedy decoding of a short tail,
    above all with a prompt, loops ("we showed them we showed them ..." for one second of
    "we should"); the hallucination guard keeps such text when there is speech under it.
    A phrase of 2+ words said twice in a row, or one word three times, counts as a loop
    (the stored text, not this, keeps a speaker's real repeats); words after the loop that
    start it again once more are dropped too."""
    kept: list[TimedWord] = []
    loop: list[str] = []
    looped_at = 0
    for word in heard:
        kept.append(word)
        said = [_norm(w.text) for w in kept[-2 * LOOP_WORDS:]]
        for n in range(1, LOOP_WORDS + 1):
            times = 3 if n == 1 else 2
            if len(said) >= times * n and all(said[-n:]) and \
                    all(said[-k * n - n:len(said) - k * n] == said[-n:] for k in range(1, times)):
                loop, looped_at = said[-n:], len(kept) - n
                del kept[looped_at:]
                break
    after = [_norm(w.text) for w in kept[looped_at:]]
    if loop and after and after == loop[: len(after)]:
        del kept[looped_at:]
    return kept


def _last_pause(words: list[TimedWord], limit: int, settled_s: float, forced: bool) -> tuple[int, float] | None:
    """Where to cut: (words before the cut, its time) at the last pause after one of the first
    `limit` words that ended by `settled_s`; when `forced` (a long tail with no pause) the
    widest gap there. None when nothing qualifies or the words have no times."""
    best: tuple[float, int, float] | None = None
    for k in range(1, min(limit, len(words)) + 1):
        last = words[k - 1]
        if not math.isfinite(last.end) or last.end > settled_s:
            break
        after = words[k].start if k < len(words) else settled_s + SETTLE_SECONDS
        gap = after - last.end
        if gap >= PAUSE_SECONDS:
            best = (math.inf, k, last.end + gap / 2)
        elif forced and (best is None or (best[0] != math.inf and gap > best[0])):
            best = (gap, k, last.end + max(gap, 0.0) / 2)
    return None if best is None else (best[1], best[2])


class _PlainDecoder:
    """A `Decoder` callable (audio -> text) as the lane's batch decoder: the whole open
    chunk each time, words without times (so nothing is committed). For stand-ins in tests."""

    def __init__(self, decode: Decoder) -> None:
        self.decode_one = decode

    def prepare(self, audio: np.ndarray, offset_s: float = 0.0, prompt: str = "", times: bool = True,
                vocabulary: str = "") -> "Speech | None":
        return Speech(audio, offset_s, offset_s + audio.size / SAMPLE_RATE, prompt, times, vocabulary)

    def decode(self, batch: list["Speech"]) -> list[list["TimedWord"]]:
        return [[TimedWord(w, math.nan, math.nan) for w in words_of(self.decode_one(s.audio))] for s in batch]


@dataclass
class _Request:
    session_id: str
    seq: int
    start_sample: int
    audio: np.ndarray = field(repr=False)
    offered_at: float
    """Monotonic time the audio's last sample had arrived."""
    chunk: "ChunkText | None" = None
    """The chunk's state when the request was taken (its answer applies only to it)."""
    tail: np.ndarray | None = field(default=None, repr=False)
    tail_offset_s: float = 0.0
    prompt: str = ""


@dataclass
class _Session:
    seq: int = -1
    start_sample: int = 0
    offered_until: int = 0
    """Open-chunk samples covered by the last request (0 when the chunk is new)."""
    chunk: ChunkText = field(default_factory=ChunkText)
    context: str = ""
    """The session's last shown words (the next chunk's prompt)."""
    waiting: _Request | None = None
    in_flight: bool = False
    current: PartialText | None = None
    held: dict[int, PartialText] = field(default_factory=dict)
    stats: PartialStats = field(default_factory=PartialStats)
    coalesced_since: int = 0
    paused_since: int = 0
    records: list[PartialDecode] = field(default_factory=list)
    ended: bool = False


MAX_BATCH = 8
"""Sessions decoded together in one model call at most (more wait for the next tick)."""
PACE_SMOOTHING = 0.3
"""Weight of the newest tick in the lane's running tick length (its pace under load)."""
TARGET_LOAD = 0.7
"""Share of the lane's decoding time that live sessions may fill before words lag: the
rest absorbs a speaker's burst (capacity = this x threads / one session's cost)."""
BUSY_WINDOW_SECONDS = 10.0
"""Time constant of the lane's running busy share."""
SPARE_WAIT_SHARE = 0.5
"""The share of the wait (`ChunkText.waits`) a running phrase gets while the lane is idle for
at least `SPARE_BUSY_SHARE` of its time: spare CPU shows the words inside long phrases
sooner. As sessions fill the lane the wait grows back, linearly, to the whole at
`TARGET_LOAD`, alike for every session."""
SPARE_BUSY_SHARE = 0.5


class PartialLane:
    """Best-effort partial text for live sessions. Construct, `start()`, feed, `stop()`.

    `decode` is a batch decoder (`WhisperPartialDecoder`: `prepare` + `decode`, run by `hear`
    here), one that hears each tick's tails itself (`hear`: `distributed.RemotePartialDecoder`,
    whose workers run the VAD and the decode) or a plain callable audio -> text (decoded one by
    one, nothing committed)."""

    def __init__(self, decode: Any, *, interval_seconds: float = 1.0,
                 busy: Callable[[], bool] = lambda: False, threads: int = 1, agreement: int = 2,
                 monotonic: Callable[[], float] = time.monotonic,
                 clock: Callable[[], float] = time.time, max_batch: int = MAX_BATCH,
                 session_cost: float | None = None, capacity: int = 0,
                 vocabulary: Callable[[str], Sequence[str]] = lambda session_id: (),
                 options: Callable[[str], DecodeOptions] = lambda session_id: DecodeOptions(),
                 wait_seconds: float = WAIT_SECONDS) -> None:
        """`session_cost`: a first estimate of one session's decoding seconds per second of
        audio (refined by every tick); `capacity` > 0 fixes the sessions served live words;
        `vocabulary(session_id)`: the words the model is given for that session, and
        `options(session_id)` its language and prompt (both read before each decode);
        `wait_seconds`: see `ChunkText.waits` (a plain callable, with no VAD to tell a pause,
        decodes at every interval)."""
        self._decode = decode
        self._vocabulary = vocabulary
        self._options = options
        self._decoder = decode if hasattr(decode, "prepare") or hasattr(decode, "hear") else _PlainDecoder(decode)
        self._hear: Callable[[list[Tail]], list[Heard | None]] = getattr(
            self._decoder, "hear", lambda tails: hear(self._decoder, tails))
        self._wait_s = wait_seconds if self._decoder is decode else 0.0
        self.interval_samples = max(1, int(interval_seconds * SAMPLE_RATE))
        self.interval_seconds = interval_seconds
        self._busy = busy
        self._n_threads = max(1, threads)
        self._agreement_n = agreement
        self._monotonic = monotonic
        self._clock = clock
        self.max_batch = max(1, max_batch)
        self._sessions: dict[str, _Session] = {}
        self._ready: deque[str] = deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._paused = False
        self._listeners: list[PartialListener] = []
        self._pace = 0.0
        """Running length of a tick (seconds): the interval between decodes grows to it."""
        self._cost = session_cost
        """Running estimate: decoding seconds one live session needs per second of audio."""
        self._busy_share = TARGET_LOAD
        """Running share of the lane's wall time spent decoding or held back for the chunk
        lane (starts as if fully loaded)."""
        self._last_tick_end: float | None = None
        self._held_seconds = 0.0
        """Seconds held back for the chunk lane since the last tick."""
        self._capacity = capacity

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
        if callable(close := getattr(self._decoder, "close", None)):
            close()  # a remote decoder's reply stream

    def add_listener(self, listener: PartialListener) -> None:
        """Called on a partial thread after every decode (metrics); must not block."""
        self._listeners.append(listener)

    # -- capture side (processor thread): never blocks ----------------------------
    def due(self, session_id: str, seq: int, buffered_samples: int) -> bool:
        """True when the open chunk has `interval` of audio not yet offered (or is new); the
        interval grows to the lane's tick under load, the same for every session."""
        with self._cond:
            interval = max(self.interval_samples, int(self._pace * SAMPLE_RATE))
            state = self._sessions.get(session_id)
            if state is None or state.seq != seq:
                return buffered_samples >= self.interval_samples
            return buffered_samples - state.offered_until >= interval

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
                state.context = state.current.text
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
            return PartialStats(s.offered, s.decodes, s.coalesced, s.paused, s.decode_seconds, list(s.lags),
                                s.quiet)

    def load(self) -> LaneLoad:
        """How many live sessions this lane serves and can serve live words to."""
        with self._cond:
            live = sum(1 for state in self._sessions.values() if not state.ended)
            cost = self._cost
        capacity = self._capacity or (None if cost is None else
                                      max(1, int(TARGET_LOAD * self._n_threads / max(cost, 1e-3))))
        return LaneLoad(live, capacity, cost, self._pace, self._wait_now())

    # -- internals ---------------------------------------------------------------
    def _new_session(self) -> _Session:
        return _Session(chunk=ChunkText(agreement=self._agreement_n, wait_s=self._wait_s))

    def _open_chunk(self, state: _Session, seq: int, start_sample: int) -> None:
        if state.current is not None and state.current.text and state.seq >= 0:
            state.held[state.seq] = state.current  # closed without chunk_closed (resume)
            state.context = state.current.text
        state.seq, state.start_sample, state.offered_until = seq, start_sample, 0
        state.chunk = ChunkText(state.context, agreement=self._agreement_n, wait_s=self._wait_s)
        state.current = None

    def _note_replaced(self, state: _Session) -> None:
        state.stats.coalesced += 1
        state.coalesced_since += 1
        if self._paused:
            state.stats.paused += 1
            state.paused_since += 1

    def _run(self) -> None:
        """Partial thread: take every waiting session's newest request (one each, in turn),
        decode those with new speech in one batch, repeat."""
        lower_priority()
        while (batch := self._next_batch()) is not None:
            started = self._monotonic()
            results = self._decode_batch(batch)
            finished = self._monotonic()
            for request, result in zip(batch, results):
                self._finish(request, result, started, finished, len(batch))
            self._note_tick(started, finished)

    def _decode_batch(self, batch: list[_Request]) -> list[Any]:
        """Per request: its words, `QUIET` (no new speech: nothing decoded) or None (failed)."""
        tails = [self._tail(request) for request in batch]
        try:
            heard = self._hear(tails)
        except TranscriptionError as exc:  # a remote tick not answered in time: skipped
            log.info("partial tick of %d session(s) skipped: %s", len(batch), exc)
            return [None] * len(batch)
        return [self._result(request, tail, found) for request, tail, found in zip(batch, tails, heard)]

    def _tail(self, request: _Request) -> Tail:
        """What the decoder needs of a request: its tail (set when the batch was taken), the
        session's words and options, and its chunk's gate."""
        audio = request.tail if request.tail is not None else request.audio
        words = whisper_prompt(self._vocabulary(request.session_id))
        asked = self._options(request.session_id)
        chunk = request.chunk
        return Tail(audio, request.tail_offset_s, request.prompt,
                    chunk is not None and chunk.wants_times(request.audio.size / SAMPLE_RATE), words,
                    asked.language, asked.prompt, chunk.gate(self._wait_now()) if chunk is not None else None)

    def _result(self, request: _Request, tail: Tail, heard: Heard | None) -> Any:
        """A tail not decoded counts as heard by its chunk (`ChunkText.passed`): `QUIET`."""
        if heard is None or heard.quiet is None:
            return None if heard is None else (heard.words, heard.speech_end_s)
        if request.chunk is None:
            return None
        with self._cond:
            request.chunk.passed(heard.quiet, tail.end_s)
        return QUIET

    def _wait_now(self) -> float:
        """The wait for a running phrase at the lane's present load (`SPARE_WAIT_SHARE`)."""
        filled = (self._busy_share - SPARE_BUSY_SHARE) / (TARGET_LOAD - SPARE_BUSY_SHARE)
        return self._wait_s * (SPARE_WAIT_SHARE + (1 - SPARE_WAIT_SHARE) * min(1.0, max(0.0, filled)))

    def _note_tick(self, started: float, finished: float) -> None:
        """The lane's pace and busy share, and one live session's cost per second of audio:
        a tick serves each live session at most once, about once per max(interval, tick)."""
        seconds = finished - started
        with self._cond:
            self._pace = seconds if self._pace == 0 else (1 - PACE_SMOOTHING) * self._pace + PACE_SMOOTHING * seconds
            if self._last_tick_end is not None and finished > self._last_tick_end:
                span = finished - self._last_tick_end
                busy = min(1.0, (seconds + self._held_seconds) / span)
                self._busy_share += (1 - math.exp(-span / BUSY_WINDOW_SECONDS)) * (busy - self._busy_share)
            self._last_tick_end, self._held_seconds = finished, 0.0
            live = max(1, sum(1 for state in self._sessions.values() if not state.ended))
        per_session = seconds / live / max(self.interval_seconds, self._pace)
        with self._cond:
            self._cost = per_session if self._cost is None else \
                (1 - PACE_SMOOTHING) * self._cost + PACE_SMOOTHING * per_session

    def _next_batch(self) -> list[_Request] | None:
        while True:
            with self._cond:
                while not self._ready and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return None
            if self._chunk_lane_busy():
                held = self._monotonic()
                with self._cond:
                    self._cond.wait(BUSY_POLL_SECONDS)
                    self._held_seconds += self._monotonic() - held
                continue
            with self._cond:
                batch = self._pop_ready()
                if batch:
                    return batch

    def _chunk_lane_busy(self) -> bool:
        try:
            busy = bool(self._busy())
        except Exception:  # an unreadable backlog must not stop live text
            log.exception("partial lane: busy check failed")
            busy = False
        with self._cond:
            self._paused = busy
        return busy

    def _pop_ready(self) -> list[_Request]:
        """Up to `max_batch` sessions' newest requests, each session once, in turn (caller
        holds the lock): no session gets a second decode before every waiting one had one."""
        batch: list[_Request] = []
        while self._ready and len(batch) < self.max_batch:
            session_id = self._ready.popleft()
            state = self._sessions.get(session_id)
            if state is None or state.waiting is None or state.in_flight:
                continue
            request, state.waiting = state.waiting, None
            state.in_flight = True
            request.chunk = state.chunk if request.seq == state.seq else None
            request.tail, request.tail_offset_s = (state.chunk.tail_audio(request.audio) if request.chunk
                                                   else (request.audio, 0.0))
            request.prompt = state.chunk.prompt() if request.chunk else ""
            batch.append(request)
        return batch

    def _finish(self, request: _Request, result: Any, started: float, done: float, batch_size: int) -> None:
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
            if result is QUIET:
                state.stats.quiet += 1
            elif result is not None:
                record = self._apply(state, request, result, started, done, batch_size)
        if record is not None:
            for listener in self._listeners:
                try:
                    listener(record)
                except Exception:
                    log.exception("partial listener failed")

    def _apply(self, state: _Session, request: _Request, result: tuple[list[TimedWord], float],
               started: float, done: float, batch_size: int) -> PartialDecode:
        words, speech_end_s = result
        end_sample = request.start_sample + request.audio.size
        if request.chunk is not None and request.chunk is state.chunk:  # a late answer for a closed chunk is only counted
            chunk = state.chunk
            chunk.accept(words, request.audio.size / SAMPLE_RATE, speech_end_s)
            state.current = PartialText(
                request.session_id, request.seq, request.start_sample * 1000 // SAMPLE_RATE,
                end_sample * 1000 // SAMPLE_RATE, " ".join(chunk.stable), " ".join(chunk.tail))
        lag = done - request.offered_at
        share = (done - started) / batch_size
        record = PartialDecode(
            request.session_id, request.seq, self._clock(), end_sample * 1000 // SAMPLE_RATE, round(lag, 4),
            round(share, 4), len(words), state.coalesced_since, state.paused_since)
        state.coalesced_since = state.paused_since = 0
        state.stats.decodes += 1
        state.stats.decode_seconds += share
        state.stats.lags.append(lag)
        del state.stats.lags[:-MAX_LAGS_KEPT]
        state.records.append(record)
        return record


QUIET = object()
"""A request whose tail held no new speech: nothing was decoded."""


@dataclass(frozen=True)
class LaneLoad:
    """The partial lane's live sessions against what it can serve (for admission and health)."""

    live: int
    capacity: int | None
    """Live sessions it can give live words to (None until a decode cost is known)."""
    session_cost: float | None
    """Decoding seconds one live session needs per second of audio (running estimate)."""
    pace_s: float
    """Running length of one decoding tick: the interval between a session's decodes grows to it."""
    wait_s: float = 0.0
    """How long a running phrase waits for its next decode now (`SPARE_WAIT_SHARE`)."""

    @property
    def over(self) -> bool:
        return self.capacity is not None and self.live > self.capacity


def build_partial_lane(settings: Settings, busy: Callable[[], bool],
                       vocabulary: Callable[[str], Sequence[str]] = lambda session_id: (),
                       options: Callable[[str], DecodeOptions] = lambda session_id: DecodeOptions()) -> PartialLane:
    """The app's lane: the local partial model (loaded once per process through `load_model`,
    shared by every session), warmed before any session starts. (With SCRIBE_REDIS_URL the
    Runtime gives the lane `distributed.RemotePartialDecoder` instead.)

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
    decoder: WhisperPartialDecoder = loaded["decoder"]  # type: ignore[assignment]
    prior = decoder.warm_seconds / settings.partial_interval_seconds if decoder.warm_seconds else None
    return PartialLane(decoder, interval_seconds=settings.partial_interval_seconds, busy=busy, session_cost=prior,
                       capacity=settings.partial_capacity, vocabulary=vocabulary, options=options,
                       wait_seconds=settings.partial_wait_seconds)
