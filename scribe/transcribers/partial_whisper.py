"""The partial lane's local decoder: a second faster-whisper adapter beside
`scribe.transcribers.local`, sharing its loaded models (`load_model`).

`WhisperPartialDecoder` reads the open chunk's tails for `scribe.partials.PartialLane`
(`prepare` + `decode`, batched), in the app or on a partial worker (`scribe.distributed`);
`prepare_speech` is its VAD step. `Speech` and `TimedWord` are what pass between the lane
and a decoder.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from scribe.audio import SAMPLE_RATE
from scribe.core import Segment
from scribe.hallucination import guard_segments
from scribe.transcribers.local import VOCABULARY_OPTION

PARTIAL_THREADS = 1
"""CTranslate2 threads of the partial model: one core, so a decode never takes the whole
machine from the capture threads (measured: with all cores, frames stalled for seconds); a
second thread did not spare the chunk lane anything (`benchmarks/partial_cost.py --lane-only`)."""

CONTEXT_PADDING_SECONDS = 2.0
"""Silence after the speech in a partial decode's encoder input. Whisper's encoder
normally sees a 30 s window whatever the audio's length, and its cost grows with its
input: on speech plus this much silence a partial decode takes a fraction of the time and
words show sooner, at about the same WER (BENCHMARKS.md, "The partial decode offline",
benchmarks/partial_decoding.py). Chosen on the tuning set; with much less silence the model
drops the last words more often."""
TOKENS_PER_SECOND = 12
"""A bound on the decoded tokens per second of speech (speech is about 4): a decode that
loops on a phrase stops there instead of at Whisper's 448."""
VOCABULARY_TOKENS = 448 // 2 - 1 - 24
"""The vocabulary's share of Whisper's prompt (the rest is the previous text's)."""
PROMPT_TOKENS = 24
"""Previous-text tokens given to every decode that has that many (the words already shown
stable, across chunks): the model continues the sentence instead of starting a new one.
CTranslate2 batches only prompts of one length, so a decode has exactly this many or none."""
BUCKET_SECONDS = 1.0
"""Encoder inputs are padded (with silence) up to a multiple of this: pieces of one bucket and
one prompt length share a model call, and a piece reads the same alone as in a batch."""
LEAD_SECONDS = 0.2
"""Audio kept before the first speech VAD found (its onset is a little late)."""
PAUSE_SECONDS = 0.3
"""Silence at the audio's end that makes a pause (`Speech.paused`): the speaker finished a
phrase, so its words are worth reading now."""
PAUSE_LOOK_SECONDS = 1.5
"""The end of the audio looked at for that pause (a second VAD pass, on this much only)."""


def words_of(text: str) -> list[str]:
    return text.split()


@dataclass(frozen=True)
class TimedWord:
    """A decoded word and where it was heard, in seconds from the open chunk's start."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Speech:
    """One decode's input, prepared (VAD) on the partial thread: the speech of a tail of the
    open chunk, where it starts in the chunk, and the words before it as the prompt."""

    audio: np.ndarray = field(repr=False)
    offset_s: float
    """Where `audio` starts, in seconds from the open chunk's start."""
    speech_end_s: float
    """Where the last speech VAD found ends (chunk seconds): no decode when it has not moved."""
    prompt: str = ""
    times: bool = True
    """Word times wanted (an `align` pass): only when the tail is long enough to commit."""
    vocabulary: str = ""
    """The team's words (`scribe.vocabulary.whisper_prompt`), read before the prompt."""
    paused: bool = True
    """The audio ends in a pause (`PAUSE_SECONDS` without speech). The first VAD pass cannot
    tell: it ends a span only after 2 s of silence, and pads it."""
    language: str | None = None
    """The session's language (`DecodeOptions.language`; None: the decoder's own). An
    English-only model reads English whatever is asked."""
    initial_prompt: str = ""
    """The session's own prompt (`DecodeOptions.prompt`), read after the vocabulary and
    before the words already shown, as the chunk lane's `initial_prompt` is."""
    may_commit: Callable[[list[str]], bool] | None = field(default=None, repr=False, compare=False)
    """Given the decoded words: whether the lane can commit any of them (then, and only
    then, `align` reads their times). None: whenever `times`."""


class WhisperPartialDecoder:
    """Greedy decoding of open-chunk tails with the shared local model, on a short window,
    every session due in one batched CTranslate2 call.

    `prepare`: Silero VAD over the tail, so silence costs no decoder pass and never turns
    into "Thank you."; the audio from just before the first speech to the end of the last.
    `decode`: those pieces, each plus `CONTEXT_PADDING_SECONDS` of silence (rounded up to a
    `BUCKET_SECONDS` length), one model call per bucket and prompt length: one encoder pass,
    one greedy `generate` (beam 1: a partial is replaced a second later anyway) and, when a
    piece may be committed, one `align` for word times; the hallucination guard as on the
    chunk lane. Speech too long for one Whisper window goes through
    faster-whisper's own windowed decoding instead (no word times: nothing is committed).
    """

    def __init__(self, model: str, *, compute_type: str = "int8", threads: int = PARTIAL_THREADS,
                 workers: int = 1, language: str = "en", short_window: bool = True,
                 padding_s: float = CONTEXT_PADDING_SECONDS) -> None:
        """`short_window=False` always decodes in Whisper's 30 s windows (for comparison)."""
        from faster_whisper.transcribe import get_suppressed_tokens

        from scribe.transcribers.local import load_model

        self.model = model
        self.short_window = short_window
        self.padding = int(padding_s * SAMPLE_RATE)
        self._whisper = load_model(model, compute_type=compute_type, threads=threads, workers=workers)
        # Always a language: left to the model, a multilingual one would detect it on every
        # decode, a second encoder pass per partial.
        self.multilingual = self._whisper.model.is_multilingual is not False
        self.language = language if self.multilingual else "en"
        self._tokenizers: dict[str, Any] = {}
        self._tokenizer = self._tokenizer_for(self.language)
        self._suppress = list(get_suppressed_tokens(self._tokenizer, [-1]))
        extractor = self._whisper.feature_extractor
        self._window_frames = extractor.nb_max_frames
        self._window_samples = extractor.nb_max_frames * extractor.hop_length
        self.warm_seconds: float | None = None
        """Wall seconds of the warm-up decode (3 s of audio): the lane's first cost estimate."""

    # -- the whole audio, one call (tests, benchmarks, speech past one window) ------------
    def __call__(self, audio: np.ndarray) -> str:
        """The text of `audio` (a whole open chunk), without a prompt."""
        if not self.short_window:
            return self._decode_windows(audio)
        speech = self.prepare(audio)
        return "" if speech is None else " ".join(w.text for w in self.decode([speech])[0])

    # -- the lane's path --------------------------------------------------------------
    def prepare(self, audio: np.ndarray, offset_s: float = 0.0, prompt: str = "", times: bool = True,
                vocabulary: str = "") -> Speech | None:
        """The speech in `audio` (a tail of the open chunk starting at `offset_s`), or None."""
        return prepare_speech(audio, offset_s, prompt, times, vocabulary)

    @staticmethod
    def ends_in_pause(audio: np.ndarray) -> bool:
        """`ends_in_pause`: the VAD look at the audio's end alone (the lane's cheap first check)."""
        return ends_in_pause(audio)

    def decode(self, batch: list[Speech]) -> list[list[TimedWord]]:
        """The words of each piece of speech, timed in chunk seconds (one model pass for all
        of one language whose prompt has the same length; a piece past one window is read on
        its own)."""
        out: list[list[TimedWord]] = [[] for _ in batch]
        short = [i for i, s in enumerate(batch) if self.short_window and s.audio.size + self.padding <= self._window_samples]
        for i in set(range(len(batch))) - set(short):
            out[i] = [TimedWord(w, batch[i].offset_s, batch[i].speech_end_s)
                      for w in words_of(self._decode_windows(batch[i].audio, batch[i].vocabulary,
                                                             self.language_of(batch[i]), batch[i].initial_prompt))]
        # One language per call: `generate` takes a prompt per piece, but `align` one start
        # sequence (language token included) for the whole call.
        groups: dict[tuple[str, int, int], list[int]] = {}
        for i in short:
            key = (self.language_of(batch[i]), len(self._full_prompt(batch[i])), self._bucket(batch[i]))
            groups.setdefault(key, []).append(i)
        for indexes in groups.values():
            for i, words in zip(indexes, self._decode_short([batch[i] for i in indexes])):
                out[i] = words
        return out

    def language_of(self, speech: Speech) -> str:
        """The language a piece is read in: the session's, on a multilingual model."""
        return speech.language if speech.language and self.multilingual else self.language

    def _tokenizer_for(self, language: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        if language not in self._tokenizers:
            self._tokenizers[language] = Tokenizer(self._whisper.hf_tokenizer, self.multilingual,
                                                   task="transcribe", language=language)
        return self._tokenizers[language]

    def _bucket(self, speech: Speech) -> int:
        """The encoder input's length in samples: speech, padding, rounded up to a bucket."""
        step = int(BUCKET_SECONDS * SAMPLE_RATE)
        return min(self._window_samples, -(-(speech.audio.size + self.padding) // step) * step)

    def _prompt_tokens(self, prompt: str) -> list[int]:
        tokens = self._tokenizer.encode(" " + prompt.strip()) if prompt.strip() else []
        return tokens[-PROMPT_TOKENS:] if len(tokens) >= PROMPT_TOKENS else []

    def _decode_short(self, batch: list[Speech]) -> list[list[TimedWord]]:
        """One encoder pass, one greedy generate and one align over `batch` (one bucket, prompts
        of one length)."""
        from faster_whisper.transcribe import get_ctranslate2_storage

        longest = max(self._bucket(s) for s in batch)
        features = np.stack([self._whisper.feature_extractor(
            np.concatenate([s.audio, np.zeros(longest - s.audio.size, np.float32)]))[:, : self._window_frames]
            for s in batch])
        encoded = self._whisper.model.encode(get_ctranslate2_storage(np.ascontiguousarray(features)))
        tokenizer = self._tokenizer_for(self.language_of(batch[0]))
        prompts = [self._full_prompt(s) for s in batch]
        seconds = max(s.audio.size for s in batch) / SAMPLE_RATE
        results = self._whisper.model.generate(
            encoded, prompts, beam_size=1, max_length=min(448, max(map(len, prompts)) + 16 +
                                                       int(TOKENS_PER_SECOND * seconds)),
            return_no_speech_prob=True, suppress_blank=True, suppress_tokens=self._suppress)
        tokens = [[t for t in r.sequences_ids[0] if t < tokenizer.eot] for r in results]
        texts = [tokenizer.decode(t).strip() for t in tokens]
        aligned = (self._whisper.find_alignment(tokenizer, tokens, encoded, features.shape[-1])
                   if any(map(self._wants_times, batch, texts)) else [[] for _ in batch])
        return [self._guarded(s, text, float(r.no_speech_prob), a)
                for s, text, r, a in zip(batch, texts, results, aligned)]

    @staticmethod
    def _wants_times(speech: Speech, text: str) -> bool:
        """Word times cost an `align` pass (13-15 % of a decode): read them only for
        words the lane can commit."""
        return speech.times and (speech.may_commit is None or speech.may_commit(words_of(text)))

    def _full_prompt(self, speech: Speech) -> list[int]:
        """[previous-text marker, the team's words (as faster-whisper places hotwords), the
        session's prompt (its last tokens, in what the vocabulary left of their share), the
        words already shown], then the start of the transcript in the piece's language."""
        tokenizer = self._tokenizer_for(self.language_of(speech))
        words = tokenizer.encode(" " + speech.vocabulary)[:VOCABULARY_TOKENS] if speech.vocabulary else []
        room = VOCABULARY_TOKENS - len(words)
        asked = tokenizer.encode(" " + speech.initial_prompt.strip())[-room:] if speech.initial_prompt.strip() and room else []
        previous = [*words, *asked, *self._prompt_tokens(speech.prompt)]
        head = [tokenizer.sot_prev, *previous] if previous else []
        return [*head, *tokenizer.sot_sequence, tokenizer.no_timestamps]

    def _guarded(self, speech: Speech, text: str, no_speech_prob: float, aligned: list[dict]) -> list[TimedWord]:
        """The hallucination guard on the piece's text; its words timed (punctuation joins
        the word before it, as Whisper's tokenizer splits it off)."""
        if not text:
            return []
        seconds = speech.audio.size / SAMPLE_RATE
        found = Segment(start=0.0, end=seconds, text=text, no_speech_prob=no_speech_prob)
        if not guard_segments([found], speech.audio):
            return []
        if not aligned:
            return [TimedWord(w, math.nan, math.nan) for w in words_of(text)]
        words: list[TimedWord] = []
        for item in aligned:
            piece = str(item["word"])
            start, end = speech.offset_s + float(item["start"]), speech.offset_s + float(item["end"])
            if words and (not piece.startswith(" ") or not re.search(r"\w", piece)):
                last = words[-1]
                words[-1] = TimedWord(last.text + piece.strip(), last.start, last.end)
            elif piece.strip():
                words.append(TimedWord(piece.strip(), start, end))
        return words

    def _decode_windows(self, audio: np.ndarray, vocabulary: str = "", language: str | None = None,
                        initial_prompt: str = "") -> str:
        segments, _info = self._whisper.transcribe(
            audio, language=language or self.language, beam_size=1,
            vad_filter=True, condition_on_previous_text=False,
            **({VOCABULARY_OPTION: vocabulary} if vocabulary else {}),
            **({"initial_prompt": initial_prompt} if initial_prompt.strip() else {}))
        found = [Segment(start=float(s.start), end=float(s.end), text=s.text.strip(),
                         no_speech_prob=float(s.no_speech_prob)) for s in list(segments) if s.text.strip()]
        return " ".join(s.text for s in guard_segments(found, audio))

    def warm(self) -> None:
        """One decode now, so the first session's first partial pays no start-up cost (and the
        lane has a first estimate of what a decode costs)."""
        rng = np.random.default_rng(0)
        noise = (0.01 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32)
        self.prepare(noise)
        started = time.perf_counter()
        self._decode_short([Speech(noise, 0.0, 3.0)])
        self.warm_seconds = time.perf_counter() - started


def prepare_speech(audio: np.ndarray, offset_s: float = 0.0, prompt: str = "", times: bool = True,
                   vocabulary: str = "") -> Speech | None:
    """Silero VAD over a tail of the open chunk starting at `offset_s`: the audio from just
    before its first speech to the end of its last, or None when it holds none."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    spans = get_speech_timestamps(audio, VadOptions())
    if not spans:
        return None
    first = max(0, spans[0]["start"] - int(LEAD_SECONDS * SAMPLE_RATE))
    last = spans[-1]["end"]
    return Speech(audio[first:last].astype(np.float32, copy=False), offset_s + first / SAMPLE_RATE,
                  offset_s + last / SAMPLE_RATE, prompt, times, vocabulary, ends_in_pause(audio))


def ends_in_pause(audio: np.ndarray) -> bool:
    """True when VAD (short silences, no padding) hears no speech in the audio's last
    `PAUSE_SECONDS`."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    end = audio[-int(PAUSE_LOOK_SECONDS * SAMPLE_RATE):]
    spans = get_speech_timestamps(end, VadOptions(min_silence_duration_ms=100, speech_pad_ms=0))
    return not spans or spans[-1]["end"] <= end.size - int(PAUSE_SECONDS * SAMPLE_RATE)
