"""Is there speech in this chunk? Silero VAD (bundled with faster-whisper), behind one function.

Used by the pipeline to store silent chunks empty without calling a backend:
no tokens paid for silence, and no "Thank you." hallucinated into it. With remote
workers it runs on the worker, on the audio it already decoded (`scribe.distributed`).
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from scribe.audio import SAMPLE_RATE, rms_dbfs

log = logging.getLogger("scribe.vad")

SILENCE_DBFS = -60.0
"""Quieter than this is silence without asking the model (digital silence, muted mic)."""


def has_speech(audio: np.ndarray, *, threshold: float = 0.5, min_speech_ms: int = 250) -> bool:
    """True if Silero VAD finds at least `min_speech_ms` of speech. Runs on the caller's thread
    (a pipeline worker), ~20 ms per 15 s chunk on one core; thread-safe."""
    if audio.size == 0 or rms_dbfs(audio) < SILENCE_DBFS:
        return False
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(threshold=threshold, min_speech_duration_ms=min_speech_ms)
    spans = get_speech_timestamps(np.ascontiguousarray(audio, dtype=np.float32), options,
                                  sampling_rate=SAMPLE_RATE)
    return bool(spans)


def found_silent(audio: np.ndarray, check: Callable[[np.ndarray], bool] = has_speech) -> bool:
    """True only when `check` ran and found no speech. A check that fails (logged) counts as
    speech: transcribing silence costs less than losing speech."""
    try:
        return not check(audio)
    except Exception:
        log.exception("speech check failed; transcribing the chunk anyway")
        return False
