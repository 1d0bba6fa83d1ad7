"""Hallucination guard: flag or drop segments that look invented.

Whisper-style models write plausible text on audio with no speech in it:
"Thanks for watching", "you", a phrase looped ten times. The guard looks at
each backend segment together with the audio it claims to cover and

- drops it when it is clearly invented: a stock phrase or a no-speech
  segment over quiet audio, a loop the model itself doubts, or punctuation
  without a single word;
- otherwise keeps it and adds flags the pages show (`no_speech`,
  `repetition`, `stock_phrase`, `low_confidence`).

It runs in the pipeline (every backend, every chunk) and in the final pass, on
the worker thread that produced the segments. It never raises on odd input.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from scribe.audio import SAMPLE_RATE, rms_dbfs
from scribe.core import Segment

STOCK_PHRASES = (
    "thanks for watching", "thank you for watching", "thank you so much for watching",
    "please subscribe", "like and subscribe", "subscribe to my channel", "see you next time",
    "see you in the next video", "subtitles by", "transcribed by", "thank you", "thanks", "you",
    "bye", "music", "applause", "silence",
)
"""Texts Whisper models are known to produce on silence or noise (from its
training on subtitled videos). Only suspicious when the audio is quiet or the
model itself thinks there is no speech."""

_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class GuardOptions:
    """Thresholds, with the reasoning for each default."""

    no_speech_prob: float = 0.6
    """Whisper's own silence rule: no_speech_prob above this and low confidence."""
    low_confidence: float = 0.37
    """exp(-1): Whisper's avg_logprob threshold of -1.0 as a probability."""
    quiet_dbfs: float = -45.0
    """Audio under this RMS level holds no speech a meeting mic would pick up."""
    max_repeats: int = 4
    """An n-gram (n = 1..4) repeated this many times in a row is a decoding loop."""
    compression_ratio: float = 2.4
    """Whisper's gzip ratio threshold: text this compressible is repetitive."""
    sure_no_speech: float = 0.9
    """A no_speech_prob this high means no speech whatever the confidence (tiny.en
    writes "." at 0.45 confidence and 0.96 no-speech probability on faint noise)."""


SegmentFilter = Callable[[list[Segment], np.ndarray], list[Segment]]
"""A check on a backend's output, run on the caller's thread after each call: (segments, the
audio they were heard in) -> the segments kept. `guard_segments` is the one the app uses."""


def guard_segments(segments: Sequence[Segment], audio: np.ndarray | None = None,
                   options: GuardOptions = GuardOptions()) -> list[Segment]:
    """The segments to keep, each with its flags; clearly invented ones are left out.

    `audio` is the chunk the segments' times are relative to (16 kHz); without
    it the quiet-audio rules are skipped.
    """
    kept = []
    for seg in segments:
        flags = segment_flags(seg, audio, options)
        if _is_invented(flags):
            continue
        extra = [f for f in flags if f not in seg.flags and f != "quiet"]
        kept.append(replace(seg, flags=[*seg.flags, *extra]) if extra else seg)
    return kept


def segment_flags(seg: Segment, audio: np.ndarray | None, options: GuardOptions = GuardOptions()) -> list[str]:
    """Every doubt about one segment (`quiet` is internal: the audio under it is quiet)."""
    words = _words(seg.text)
    flags = []
    confident = seg.confidence is None or seg.confidence >= options.low_confidence
    nsp = seg.no_speech_prob
    if nsp is not None and nsp > options.no_speech_prob and (not confident or nsp >= options.sure_no_speech):
        flags.append("no_speech")
    if not words:
        flags.append("no_words")
    if seg.confidence is not None and seg.confidence < options.low_confidence:
        flags.append("low_confidence")
    if is_repetitive(words, options):
        flags.append("repetition")
    if " ".join(words) in STOCK_PHRASES:
        flags.append("stock_phrase")
    if audio is not None and _quiet(seg, audio, options.quiet_dbfs):
        flags.append("quiet")
    return flags


def _is_invented(flags: list[str]) -> bool:
    quiet = "quiet" in flags
    return "no_words" in flags or (quiet and ("stock_phrase" in flags or "no_speech" in flags)) or \
        ("repetition" in flags and ("no_speech" in flags or quiet))


def is_repetitive(words: list[str], options: GuardOptions = GuardOptions()) -> bool:
    """A decoding loop: an n-gram repeated `max_repeats` times in a row, or very compressible text."""
    for n in range(1, 5):
        if _max_run(words, n) >= options.max_repeats:
            return True
    text = " ".join(words).encode()
    return len(text) > 60 and len(text) / len(zlib.compress(text)) > options.compression_ratio


def _max_run(words: list[str], n: int) -> int:
    """The longest run of one n-gram repeated back to back."""
    best = 0
    for offset in range(n):
        grams = [tuple(words[i:i + n]) for i in range(offset, len(words) - n + 1, n)]
        run = 1
        for prev, cur in zip(grams, grams[1:]):
            run = run + 1 if cur == prev else 1
            best = max(best, run)
        best = max(best, 1 if grams else 0)
    return best


def _quiet(seg: Segment, audio: np.ndarray, quiet_dbfs: float) -> bool:
    lo = max(0, int(seg.start * SAMPLE_RATE))
    hi = min(audio.size, max(lo + 1, int(seg.end * SAMPLE_RATE)))
    piece = audio[lo:hi] if hi > lo else audio
    return piece.size == 0 or rms_dbfs(piece) < quiet_dbfs


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())
