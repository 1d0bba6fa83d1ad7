"""Audio context for noisy chunks: the previous chunk's last seconds, heard before the chunk.

In noise the model does better when it hears some of what came before (measured:
BENCHMARKS.md); in quiet rooms the same context cost accuracy, so only a chunk whose
noise floor is above `floor_dbfs` gets it, and never the first chunk of a session.
Only sessions whose policy cuts in pauses get it: where a cut splits a word, that
word would come back from both chunks (BENCHMARKS.md, "Chunking policies and WER", has
the figures). The segments heard in the context belong to the previous chunk and
are dropped again (`keep_own_segments`).

The pipeline asks the policy once per job (`audio_before`), on its worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scribe.audio import SAMPLE_RATE, read_flac
from scribe.chunking import parse_policy
from scribe.core import ChunkRow, Segment
from scribe.errors import ScribeError, SettingsError

if TYPE_CHECKING:
    from scribe.storage import Storage

NO_AUDIO = np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class NoisyContext:
    """How much of the previous chunk a noisy chunk is heard with (SCRIBE_NOISY_CONTEXT_SECONDS)."""

    seconds: float
    """Context length; 0 turns the policy off."""
    floor_dbfs: float = -50.0
    """A chunk is noisy when its noise floor (`noise_floor_dbfs`) is at least this."""

    def audio_before(self, storage: Storage, row: ChunkRow, audio: np.ndarray) -> np.ndarray:
        """The previous chunk's last `seconds` when this chunk gets context, else empty."""
        if self.seconds <= 0 or row.seq == 0 or noise_floor_dbfs(audio) < self.floor_dbfs:
            return NO_AUDIO
        if not _cuts_in_pauses(storage, row.session_id):
            return NO_AUDIO
        try:
            previous = read_flac(Path(storage.get_chunk(row.session_id, row.seq - 1).audio_path))
        except ScribeError:  # no previous chunk (a resumed gap) or its audio is gone
            return NO_AUDIO
        return previous[-int(self.seconds * SAMPLE_RATE):]


def _cuts_in_pauses(storage: Storage, session_id: str) -> bool:
    session = storage.find_session(session_id)
    try:
        return session is not None and parse_policy(session.chunk_policy).cuts_in_pauses
    except SettingsError:  # a label this version does not know
        return False


def noise_floor_dbfs(audio: np.ndarray) -> float:
    """Level of the quietest 10 % of 10 ms frames: a room's noise, not its speech."""
    frames = audio[: audio.size - audio.size % 160].reshape(-1, 160)
    if frames.size == 0:
        return -120.0
    power = np.mean(np.square(frames, dtype=np.float64), axis=1)
    return float(10.0 * np.log10(np.percentile(power, 10) + 1e-12))


def keep_own_segments(segments: list[Segment], offset_s: float) -> list[Segment]:
    """Segments heard with `offset_s` of context before the chunk: keep those centred in
    the chunk itself (the previous chunk already has the others), in chunk time."""
    kept = []
    for seg in segments:
        if (seg.start + seg.end) / 2 < offset_s:
            continue
        seg.shift(-offset_s)
        kept.append(seg)
    return kept
