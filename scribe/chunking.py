"""The chunker: 16 kHz samples in, closed chunks out. No I/O, no threads.

`Chunker.push(samples)` returns the chunks that closed; `finish()` flushes the
rest. Every sample pushed ends up in exactly one chunk, and chunk boundaries are
exact sample offsets in session time (`start_sample`, `end_sample`), so a
session resumed later continues without gaps or overlaps.

Policies decide where to cut:
- `fixed:N`  exactly every N seconds;
- `pause:N`  aim for N seconds, cut in the middle of a real pause (>= 300 ms
             below an adaptive level) nearest N, and never later than the hard
             maximum 1.4*N (cutting inside a word costs WER; see BENCHMARKS.md);
- `quiet:N`  cut in the quietest 200 ms after 0.6*N (it can fall inside a word);
             measured worse than `pause`, kept so the lab and `eval` can compare;
- `whole`    never cut; one chunk at `finish()` (whole-file reference).

This module owns the policy names: every other place (settings, CLI flags, the API's
upload form, the lab) takes its list from the constants below.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol

import numpy as np

from scribe.audio import SAMPLE_RATE
from scribe.errors import SettingsError

FRAME = SAMPLE_RATE // 100
"""Energy is measured per 10 ms frame; cuts fall on frame boundaries."""

POLICY_NAMES = ("fixed", "pause", "quiet", "whole")
"""Every policy `make_policy` builds: what `eval --policy` and the lab accept."""
LIVE_POLICY_NAMES = ("fixed", "pause")
"""Policies a setting may name (SCRIBE_CHUNK_POLICY, the sidebar): they cut audio as it
arrives. `whole` never cuts, so it suits a file only; `quiet` is kept for comparison."""
FILE_POLICY_NAMES = ("fixed", "pause", "whole")
"""Policies `transcribe --policy` and the API's upload accept."""
DEFAULT_POLICY = "pause"
DEFAULT_SECONDS = 15.0
POLICY_HELP = {
    "fixed": "fixed:N cuts every N s",
    "pause": "pause:N cuts in a pause near N s (the default)",
    "quiet": "quiet:N cuts in the quietest 200 ms after 0.6 N s (kept for comparison)",
    "whole": "whole is one pass over everything",
}
"""One line per policy for help texts (the lab page, `eval --help`)."""


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
    seconds: float
    """Target chunk length (0 for `whole`)."""
    target_frames: int
    max_frames: int
    """The policy cuts by this many frames at the latest (0: it never cuts)."""
    cuts_in_pauses: ClassVar[bool]
    """True when every cut falls in a pause (so no word is split between two chunks)."""

    def find_cut(self, energy: np.ndarray) -> int | None:
        """Frame index to cut at (exclusive), or None to keep buffering."""


@dataclass(frozen=True)
class FixedPolicy:
    seconds: float
    name: str = "fixed"
    cuts_in_pauses: ClassVar[bool] = False

    @property
    def target_frames(self) -> int:
        return max(1, round(self.seconds * 100))

    @property
    def max_frames(self) -> int:
        return self.target_frames

    def find_cut(self, energy: np.ndarray) -> int | None:
        return self.target_frames if energy.size >= self.target_frames else None


class _CutWindow:
    """Frame counts of a policy that cuts between `min_ratio` and `max_ratio` x its target."""

    seconds: float
    min_ratio: float
    max_ratio: float

    @property
    def target_frames(self) -> int:
        return max(1, round(self.seconds * 100))

    @property
    def min_frames(self) -> int:
        return max(1, round(self.seconds * self.min_ratio * 100))

    @property
    def max_frames(self) -> int:
        return max(self.target_frames, round(self.seconds * self.max_ratio * 100))


@dataclass(frozen=True)
class PausePolicy(_CutWindow):
    """Cut in a real pause near the target length, never past the hard maximum.

    A pause is a run of at least `min_pause_ms` of frames below an adaptive
    level (25 % of the way from the buffer's noise floor to its speech level,
    in dB, and never below `silence_dbfs`), so it works in a quiet room and
    over steady background noise alike. Once the buffer reaches the target,
    cut in a good pause (>= `good_pause_ms`, a turn change or sentence end)
    after `min_ratio*N`, the one nearest the target; with none yet, wait for
    one; at `max_ratio*N` cut in the longest pause seen (or the longest quiet
    run, or the quietest `window_ms`), pause or not.

    The lowest WER of the policies on clean three-voice speech, close to `quiet` in noise
    (BENCHMARKS.md, "Chunking policies and WER"; docs/design/chunking-lab.md).
    """

    seconds: float
    min_ratio: float = 0.6
    max_ratio: float = 1.4
    min_pause_ms: int = 300
    good_pause_ms: int = 600
    window_ms: int = 200
    floor_to_speech: float = 0.25
    silence_dbfs: float = -50.0
    resume_margin_ms: int = 100
    """Cut this long before speech resumes (or in the middle of a shorter pause): the
    pause stays with the chunk it ends, because Whisper drops a chunk's last
    sentence far more often when the audio stops right after it (measured)."""
    name: str = "pause"
    cuts_in_pauses: ClassVar[bool] = True


    def find_cut(self, energy: np.ndarray) -> int | None:
        if energy.size < self.target_frames:
            return None
        span = energy[: self.max_frames]
        # Compare in the power domain (log10 is monotonic): same frames, no log of every frame.
        starts, ends = _runs(span + 1e-12 < 10.0 ** (self.pause_threshold_db(span) / 10.0))
        long_enough = ends - starts >= self.min_pause_ms // 10
        pauses = [((s, e), c) for s, e in zip(starts[long_enough].tolist(), ends[long_enough].tolist())
                  if (c := self._cut_in((s, e), span.size)) is not None]
        hard_stop = energy.size >= self.max_frames
        if pauses:
            # Longer pauses first (a turn change beats a comma plus quiet consonants),
            # all pauses of `good_pause_ms` or more alike; then the one nearest the target.
            (start, end), cut = max(pauses, key=lambda p: (min(p[0][1] - p[0][0], self.good_pause_ms // 10),
                                                            -abs(p[1] - self.target_frames)))
            if hard_stop or end - start >= self.good_pause_ms // 10:
                return cut
            return None  # only short pauses so far: wait for a better one until the maximum
        return self._forced_cut(span, starts, ends) if hard_stop else None

    def pause_threshold_db(self, energy: np.ndarray) -> float:
        """Frames quieter than this count as pause."""
        floor, speech = _db_percentiles(energy, (10, 95))
        return max(self.silence_dbfs, floor + self.floor_to_speech * (speech - floor))

    def _cut_in(self, run: tuple[int, int], buffered: int) -> int | None:
        """Where to cut in a pause, or None if it is too early or not yet usable.

        A finished pause is cut `resume_margin_ms` before speech resumes, or in its
        middle if it is short, so the chunk it closes ends in silence.
        One still going on is usable once it lasts a second (silence, noise,
        a long turn change): cut near the target, keeping the last 250 ms of it
        for the next chunk, so that chunk never starts right at a speech onset.
        """
        start, end = run
        if end < buffered:
            cut = max((start + end) // 2, end - self.resume_margin_ms // 10)
        elif end - start >= 100:
            cut = max(start + 50, min(end - 25, self.target_frames))
        else:
            return None
        cut = max(cut, self.min_frames)
        return cut if cut <= end else None

    def _forced_cut(self, span: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> int:
        """At the hard maximum: the middle of the longest quiet run after the minimum."""
        late = ends > self.min_frames
        if late.any():
            clipped = np.maximum(starts[late], self.min_frames)
            best = int(np.argmax(ends[late] - clipped))  # first of equals, as max() did
            return max((int(clipped[best]) + int(ends[late][best])) // 2, 1)
        return self._quietest(span)

    def _quietest(self, energy: np.ndarray) -> int:
        width = max(1, self.window_ms // 10)
        lo = self.min_frames
        if energy.size - lo < width:
            return energy.size
        csum = np.concatenate(([0.0], np.cumsum(energy, dtype=np.float64)))
        starts = np.arange(lo, energy.size - width + 1)
        means = (csum[starts + width] - csum[starts]) / width
        return int(starts[int(np.argmin(means))] + width // 2)


def _db_array(power: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(power + 1e-12)


def _db_percentiles(power: np.ndarray, percents: tuple[float, ...]) -> list[float]:
    """`np.percentile(_db_array(power), q)` for each q, without taking the log of every
    frame: the dB order is the power order, so only the two neighbours of each rank
    are converted and interpolated (numpy's default linear method)."""
    ranks = [q / 100.0 * (power.size - 1) for q in percents]
    neighbours = sorted({int(np.floor(r)) for r in ranks} | {int(np.ceil(r)) for r in ranks})
    picked = np.partition(power, neighbours)
    out = []
    for rank in ranks:
        lo, hi = int(np.floor(rank)), int(np.ceil(rank))
        db_lo, db_hi = _db_array(picked[[lo, hi]])
        out.append(float(db_lo + (db_hi - db_lo) * (rank - lo)))
    return out


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) frame indices of the runs where `mask` is true."""
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return edges[::2], edges[1::2]


@dataclass(frozen=True)
class QuietestPolicy(_CutWindow):
    """The quietest-window policy (`quiet:N`), kept so the lab and `eval` can compare it
    with `pause`; settings do not offer it (LIVE_POLICY_NAMES).

    Once the buffer reaches the target, cut in the quietest `window_ms`
    stretch after `min_ratio*N` if it is 20 dB under the speech level (or
    digital silence); at `max_ratio*N` cut there anyway. It tends to cut at the
    first silent 200 ms after 0.6*N, a sentence-internal pause as often as not.
    """

    seconds: float
    min_ratio: float = 0.6
    max_ratio: float = 1.4
    window_ms: int = 200
    pause_below_speech_db: float = 20.0
    silence_dbfs: float = -50.0
    name: str = "quiet"
    cuts_in_pauses: ClassVar[bool] = False  # the quietest 200 ms may be inside a word


    def find_cut(self, energy: np.ndarray) -> int | None:
        if energy.size < self.target_frames:
            return None
        span = energy[: self.max_frames]
        width = max(1, self.window_ms // 10)
        lo = self.min_frames
        if span.size - lo < width:
            cut, window_db = span.size, _db(float(span[-width:].mean()))
        else:
            csum = np.concatenate(([0.0], np.cumsum(span, dtype=np.float64)))
            starts = np.arange(lo, span.size - width + 1)
            means = (csum[starts + width] - csum[starts]) / width
            best = int(np.argmin(means))
            cut, window_db = int(starts[best] + width // 2), _db(float(means[best]))
        threshold = max(self.silence_dbfs, _db(float(np.percentile(span, 90))) - self.pause_below_speech_db)
        if energy.size >= self.max_frames or window_db <= threshold:
            return cut
        return None


@dataclass(frozen=True)
class WholePolicy:
    """Never cut: the whole recording becomes one chunk at `finish()`."""

    seconds: float = 0.0
    name: str = "whole"
    cuts_in_pauses: ClassVar[bool] = True  # it never cuts
    target_frames: int = 0
    max_frames: int = 0

    def find_cut(self, energy: np.ndarray) -> int | None:
        return None


def _db(power: float) -> float:
    return 10.0 * np.log10(power + 1e-12)


_BUILDERS: dict[str, Callable[[float], Any]] = {
    "fixed": FixedPolicy, "pause": PausePolicy, "quiet": QuietestPolicy,
    "whole": lambda seconds: WholePolicy(),
}
assert tuple(_BUILDERS) == POLICY_NAMES


def make_policy(name: str, seconds: float) -> ChunkPolicy:
    """Build a policy by name (one of POLICY_NAMES)."""
    if name not in _BUILDERS:
        raise SettingsError(f"unknown chunk policy {name!r}: use {', '.join(POLICY_NAMES[:-1])} "
                            f"or {POLICY_NAMES[-1]}")
    return _BUILDERS[name](seconds)


def parse_policy(spec: str, default_seconds: float = DEFAULT_SECONDS) -> ChunkPolicy:
    """Parse `fixed:15`, `pause:8`, `quiet:15`, `pause` or `whole`."""
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

    def buffered_audio(self) -> np.ndarray:
        """A copy of the open chunk's samples so far (the partial lane decodes it)."""
        return np.concatenate(self._blocks) if self._blocks else np.zeros(0, dtype=np.float32)

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

    def discard(self) -> None:
        """Drop the open chunk's samples (never a chunk); the next one starts where this one did."""
        self._blocks, self._buffered = [], 0
        self._n_energy, self._checked_at = 0, 0
        self._unmeasured = np.zeros(0, dtype=np.float32)

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
        if self._n_energy - self._checked_at < 10 and self._n_energy < self.policy.max_frames:
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
        # Both halves are copies: a view would keep the whole old buffer alive (the chunk's
        # audio twice over) until the next chunk closes, for every session.
        pcm, rest = buffer[:n_samples].copy(), buffer[n_samples:].copy()
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
