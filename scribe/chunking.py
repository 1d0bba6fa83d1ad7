"""The chunker: 16 kHz samples in, closed chunks out. No I/O, no threads.

`Chunker.push(samples)` returns the chunks that closed; `finish()` flushes the
rest. Every sample pushed ends up in exactly one chunk, and chunk boundaries are
exact sample offsets in session time (`start_sample`, `end_sample`), so a
session resumed later continues without gaps or overlaps.

Policies decide where to cut:
- `fixed:N`  exactly every N seconds;
- `pause:N`  aim for N seconds, cut in the quietest 200 ms inside a window
             around N once it is a real pause, and never later than the hard
             maximum (cutting inside a word costs WER; see BENCHMARKS.md);
- `whole`    never cut; one chunk at `finish()` (whole-file reference).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from scribe.audio import SAMPLE_RATE
from scribe.errors import SettingsError

FRAME = SAMPLE_RATE // 100
"""Energy is measured per 10 ms frame; cuts fall on frame boundaries."""


@dataclass
class Chunk:
    """A closed piece of a session's audio, ready for the pipeline."""

    session_id: str
    seq: int
    start_sample: int
    end_sample: int
    pcm: np.ndarray = field(repr=False)
    captured_at: float = 0.0
    """Wall-clock time (epoch seconds) the chunk closed."""

    @property
    def start_ms(self) -> int:
        return self.start_sample * 1000 // SAMPLE_RATE

    @property
    def end_ms(self) -> int:
        return self.end_sample * 1000 // SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return (self.end_sample - self.start_sample) / SAMPLE_RATE


class ChunkPolicy(Protocol):
    """Where to cut a buffer, given its per-frame energies (power, linear)."""

    name: str
    target_frames: int

    def find_cut(self, energy: np.ndarray) -> int | None:
        """Frame index to cut at (exclusive), or None to keep buffering."""


@dataclass(frozen=True)
class FixedPolicy:
    seconds: float
    name: str = "fixed"

    @property
    def target_frames(self) -> int:
        return max(1, round(self.seconds * 100))

    def find_cut(self, energy: np.ndarray) -> int | None:
        return self.target_frames if energy.size >= self.target_frames else None


@dataclass(frozen=True)
class PausePolicy:
    """Cut in a pause near the target length.

    Once the buffer reaches the target, look at [min_ratio*N, buffered] for the
    quietest `window_ms` stretch; cut there if it is a pause (well below the
    speech level or near digital silence). At `max_ratio*N` cut at the quietest
    stretch found, pause or not, so a chunk is never longer than the maximum.
    """

    seconds: float
    min_ratio: float = 0.6
    max_ratio: float = 1.4
    window_ms: int = 200
    pause_below_speech_db: float = 20.0
    silence_dbfs: float = -50.0
    name: str = "pause"

    @property
    def target_frames(self) -> int:
        return max(1, round(self.seconds * 100))

    @property
    def max_frames(self) -> int:
        return max(self.target_frames, round(self.seconds * self.max_ratio * 100))

    def find_cut(self, energy: np.ndarray) -> int | None:
        if energy.size < self.target_frames:
            return None
        hard_stop = energy.size >= self.max_frames
        span = energy[: self.max_frames]
        cut, window_db = self._quietest(span)
        if hard_stop or window_db <= self._pause_threshold_db(span):
            return cut
        return None

    def _quietest(self, energy: np.ndarray) -> tuple[int, float]:
        width = max(1, self.window_ms // 10)
        lo = max(1, int(round(self.seconds * self.min_ratio * 100)))
        if energy.size - lo < width:
            return energy.size, _db(float(energy[-width:].mean()))
        csum = np.concatenate(([0.0], np.cumsum(energy[lo:], dtype=np.float64)))
        means = (csum[width:] - csum[:-width]) / width
        best = int(np.argmin(means))
        # Cut in the middle of the quiet stretch, so both sides keep some pause.
        return lo + best + width // 2, _db(float(means[best]))

    def _pause_threshold_db(self, energy: np.ndarray) -> float:
        # Mean power is within ~2 dB of the speech level for normal talk with
        # pauses, and costs far less than a percentile on every check.
        speech_db = _db(float(energy.mean()))
        return max(self.silence_dbfs, speech_db - self.pause_below_speech_db)


@dataclass(frozen=True)
class WholePolicy:
    """Never cut: the whole recording becomes one chunk at `finish()`."""

    seconds: float = 0.0
    name: str = "whole"
    target_frames: int = 0

    def find_cut(self, energy: np.ndarray) -> int | None:
        return None


def _db(power: float) -> float:
    return 10.0 * np.log10(power + 1e-12)


def make_policy(name: str, seconds: float) -> ChunkPolicy:
    """Build a policy by name (`fixed`, `pause`, `whole`)."""
    if name == "fixed":
        return FixedPolicy(seconds)
    if name == "pause":
        return PausePolicy(seconds)
    if name == "whole":
        return WholePolicy()
    raise SettingsError(f"unknown chunk policy {name!r}: use fixed, pause or whole")


def parse_policy(spec: str, default_seconds: float = 15.0) -> ChunkPolicy:
    """Parse `fixed:15`, `pause:8`, `pause` or `whole`."""
    name, _, secs = spec.strip().lower().partition(":")
    try:
        seconds = float(secs) if secs else default_seconds
    except ValueError:
        raise SettingsError(f"bad policy {spec!r}: expected NAME or NAME:SECONDS") from None
    if name != "whole" and not 0.5 <= seconds <= 600:
        raise SettingsError(f"bad policy {spec!r}: seconds must be between 0.5 and 600")
    return make_policy(name, seconds)


def policy_label(policy: ChunkPolicy) -> str:
    return policy.name if policy.name == "whole" else f"{policy.name}:{policy.seconds:g}"


class Chunker:
    """Groups a stream of 16 kHz samples into chunks by a policy.

    Runs on whichever thread feeds it (the WebRTC processor thread for live
    audio, the caller for files); it never blocks and does no I/O.
    """

    def __init__(
        self,
        session_id: str,
        policy: ChunkPolicy,
        *,
        start_seq: int = 0,
        start_sample: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session_id = session_id
        self.policy = policy
        self.next_seq = start_seq
        self.chunk_start = start_sample
        self._clock = clock
        self._blocks: list[np.ndarray] = []
        self._buffered = 0
        self._energy = np.zeros(4096)  # per-frame power of the buffer, grown by doubling
        self._n_energy = 0
        self._unmeasured = np.zeros(0, dtype=np.float32)
        self._checked_at = 0  # frames measured when the policy was last asked
        self.samples_in = 0

    @property
    def buffered_samples(self) -> int:
        return self._buffered

    @property
    def position(self) -> int:
        """Session time (in samples) just after the last pushed sample."""
        return self.chunk_start + self._buffered

    def push(self, samples: np.ndarray) -> list[Chunk]:
        """Add samples; return the chunks that closed (usually none)."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if samples.size == 0:
            return []
        self._blocks.append(samples)
        self._buffered += samples.size
        self.samples_in += samples.size
        self._measure(samples)
        closed = []
        while (cut := self._find_cut()) is not None:
            closed.append(self._close(cut * FRAME))
        return closed

    def finish(self) -> list[Chunk]:
        """Close whatever is buffered as the last chunk (none if empty)."""
        if self._buffered == 0:
            return []
        return [self._close(self._buffered)]

    def _measure(self, samples: np.ndarray) -> None:
        pending = np.concatenate((self._unmeasured, samples)) if self._unmeasured.size else samples
        whole = pending.size - pending.size % FRAME
        if whole:
            power = np.mean(np.square(pending[:whole].reshape(-1, FRAME), dtype=np.float64), axis=1)
            self._append_energy(power)
        self._unmeasured = pending[whole:].copy()

    def _append_energy(self, power: np.ndarray) -> None:
        needed = self._n_energy + power.size
        if needed > self._energy.size:
            grown = np.zeros(max(needed, 2 * self._energy.size))
            grown[: self._n_energy] = self._energy[: self._n_energy]
            self._energy = grown
        self._energy[self._n_energy:needed] = power
        self._n_energy = needed

    def _find_cut(self) -> int | None:
        target = self.policy.target_frames
        if target == 0 or self._n_energy < target:
            return None
        # Asking the policy every 20 ms is wasted work; every 100 ms is plenty.
        if self._n_energy - self._checked_at < 10 and self._n_energy < getattr(self.policy, "max_frames", target):
            return None
        self._checked_at = self._n_energy
        cut = self.policy.find_cut(self._energy[: self._n_energy])
        return None if cut is None else max(1, min(cut, self._n_energy))

    def _close(self, n_samples: int) -> Chunk:
        pcm = self._take(n_samples)
        chunk = Chunk(
            session_id=self.session_id,
            seq=self.next_seq,
            start_sample=self.chunk_start,
            end_sample=self.chunk_start + n_samples,
            pcm=pcm,
            captured_at=self._clock(),
        )
        self.next_seq += 1
        self.chunk_start += n_samples
        self._drop_energy(n_samples // FRAME)
        return chunk

    def _take(self, n_samples: int) -> np.ndarray:
        buffer = np.concatenate(self._blocks) if len(self._blocks) > 1 else self._blocks[0]
        pcm, rest = buffer[:n_samples].copy(), buffer[n_samples:]
        self._blocks = [rest] if rest.size else []
        self._buffered = rest.size
        return pcm

    def _drop_energy(self, n_frames: int) -> None:
        rest = self._n_energy - n_frames
        self._energy[:rest] = self._energy[n_frames:self._n_energy]
        self._n_energy = rest
        self._checked_at = 0
        if self._buffered == 0:
            self._unmeasured = np.zeros(0, dtype=np.float32)
