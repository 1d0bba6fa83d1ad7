"""Word error rate with Whisper's English normalizer, so style differences
("Mr." vs "mister", "25%" vs "twenty-five percent") are not counted as errors."""

from __future__ import annotations

import functools

import jiwer


@functools.lru_cache(maxsize=1)
def _normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    return " ".join(_normalizer()(text).split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER in [0, inf): (substitutions + deletions + insertions) / reference words."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))

