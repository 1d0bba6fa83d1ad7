"""The load test: N simulated live sessions through the real capture path, queue and DuckDB.

Each session runs on its own thread, as a streamlit-webrtc session does: it
builds 20 ms 48 kHz stereo s16 `av.AudioFrame`s (what a browser's Opus track
decodes to), resamples them with the real `FrameResampler`, cuts them with the
real `Chunker` and hands closed chunks to `Pipeline.submit_nowait`, which
writes audio and rows into a DuckDB in a temporary data folder. Pacing is real
time (`speed=1`), a multiple of it, or as fast as possible (`speed=inf`).

The backend is the `StubTranscriber` (a latency range, like a remote API: its
useful concurrency is I/O-bound) or the real local Whisper model.

The report checks the invariants (every chunk a session closed is stored done,
none twice, the stored chunks tile each session's samples without gaps) and
measures end-to-end latency percentiles from the chunk timestamps (via
`scribe.analytics`), throughput, the queue backlog when the audio ends, RSS
and CPU.

This is the engine of the `python -m scribe bench` command, so it lives in the
library. The measurement scripts in `benchmarks/` build on its public pieces:
`run_bench` (local_capacity.py), and the simulated sessions `speechlike_loop`,
`FrameSource`, `SessionFeed` and `feed_session` (soak.py, ingest_capacity.py).
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Sequence

import av
import numpy as np
import psutil

from scribe import backends
from scribe.audio import SAMPLE_RATE, FrameResampler
from scribe.chunking import Chunk, Chunker, parse_policy, policy_label
from scribe.config import Settings
from scribe.core import DecodeOptions, Transcription
from scribe.errors import ScribeError, SettingsError, TranscriptionError
from scribe.pipeline import Pipeline, PipelineOptions
from scribe.storage import Storage
from scribe.transcribers import Transcriber, make_transcriber
from scribe.transcribers.base import call_transcriber
from scribe.transcribers.stub import StubTranscriber

log = logging.getLogger("scribe.bench")

FRAME_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms, what browsers send over WebRTC
FRAME_SECONDS = FRAME_SAMPLES / FRAME_RATE
LOOP_SECONDS = 30.0

Progress = Callable[[str], None]



@dataclass(frozen=True)
class BenchConfig:
    """One load-test run. `speed` 1.0 is real time; `math.inf` is as fast as possible."""

    sessions: int = 10
    minutes: float = 1.0
    backend: str = backends.STAND_IN
    stub_latency: tuple[float, float] = (1.0, 3.0)
    stub_error_rate: float = 0.0
    concurrency: int | None = None
    """Worker threads; None: the backend's `bench_threads` in the registry (`threads()`)."""
    writers: int = 4
    speed: float = 1.0
    chunk_policy: str = "pause:15"
    whisper_model: str = "tiny.en"
    audio_path: Path | None = None
    data_dir: Path | None = None
    stagger: bool = True
    drain_timeout_s: float = 900.0
    sample_every_s: float = 0.5
    seed: int = 7

    def validate(self) -> None:
        checks = [
            (1 <= self.sessions <= 2000, "--sessions must be between 1 and 2000"),
            (0 < self.minutes <= 24 * 60, "--minutes must be above 0 and at most 1440"),
            (self.backend in backends.benched(), f"--backend must be {' or '.join(backends.benched())}"),
            (0 <= self.stub_latency[0] <= self.stub_latency[1] <= 600,
             "--stub-latency must be LO-HI seconds with 0 <= LO <= HI <= 600"),
            (0 <= self.stub_error_rate < 1, "--stub-error-rate must be in [0, 1)"),
            (self.concurrency is None or 1 <= self.concurrency <= 256, "--concurrency must be between 1 and 256"),
            (1 <= self.writers <= 64, "--writers must be between 1 and 64"),
            (self.speed > 0, "--speed must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)
        parse_policy(self.chunk_policy)

    def threads(self) -> int:
        """The worker threads this run uses."""
        if self.concurrency is not None:
            return self.concurrency
        spec = backends.REGISTRY.get(self.backend)
        return (spec.bench_threads if spec else None) or 2

    @property
    def mode(self) -> str:
        if math.isinf(self.speed):
            return "fast"
        return "realtime" if self.speed == 1 else f"accelerated x{self.speed:g}"


@dataclass
class BenchReport:
    """What a run measured; `to_json()` is every figure but the RSS/backlog timeline."""

    sessions: int
    minutes: float
    backend: str
    model: str
    mode: str
    concurrency: int
    chunk_policy: str
    chunks_expected: int
    chunks_stored: int
    lost: int
    duplicated: int
    failed: int
    audio_gaps: int
    retries: int
    latency_p50_s: float
    latency_p95_s: float
    latency_p99_s: float
    latency_max_s: float
    processing_p50_s: float
    processing_p95_s: float
    queue_wait_p95_s: float
    throughput_chunks_per_min: float
    audio_min_per_wall_min: float
    backlog_end: int
    backlog_end_audio_s: float
    backlog_peak: int
    feed_s: float
    drain_s: float
    wall_s: float
    feed_lag_max_s: float
    peak_rss_mb: float
    mean_rss_mb: float
    rss_growth_mb: float
    cpu_percent: float
    cpu_s_per_audio_min: float
    cores: int
    data_dir: str | None = None
    timeline: list[dict[str, float]] = field(default_factory=list, repr=False)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("timeline")
        return json.dumps({k: _round(v) for k, v in data.items()})


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    return value


# -- source audio ----------------------------------------------------------------
def speechlike_loop(seconds: float = LOOP_SECONDS, seed: int = 7) -> np.ndarray:
    """A 48 kHz stereo s16 loop that chunks like speech: voiced words and pauses.

    Words are 0.2-0.6 s harmonic bursts (f0 110-240 Hz) with a syllable-rate
    envelope, separated by 0.1-0.3 s gaps and, every few words, a 0.6-1.2 s
    pause, over a -60 dBFS noise floor, so the pause-aware chunker finds real
    pauses and the stub sees non-silent chunks.
    """
    rng = np.random.default_rng(seed)
    total = int(seconds * FRAME_RATE)
    out = rng.normal(0, 10 ** (-60 / 20), total)
    pos = 0
    while pos < total:
        length = int(rng.uniform(0.2, 0.6) * FRAME_RATE)
        t = np.arange(min(length, total - pos)) / FRAME_RATE
        f0 = rng.uniform(110, 240)
        voice = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3))
        envelope = np.sin(np.pi * t / max(t[-1], 1e-3)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
        out[pos:pos + t.size] += 0.15 * voice * envelope
        pos += t.size + int(rng.choice([rng.uniform(0.1, 0.3), rng.uniform(0.6, 1.2)], p=[0.8, 0.2])
                            * FRAME_RATE)
    mono = np.clip(out * 32767, -32768, 32767).astype(np.int16)
    return np.repeat(mono[:, None], 2, axis=1)


def file_loop(path: Path) -> np.ndarray:
    """A file decoded to 48 kHz stereo s16 (the bench loops it), e.g. espeak speech for the local model."""
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=FRAME_RATE)
    parts = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(audio=0):
                parts += [f.to_ndarray().reshape(-1, 2) for f in resampler.resample(frame)]
    except (av.error.FFmpegError, OSError) as exc:
        raise ScribeError(f"{path}: cannot read audio for the bench ({exc})") from None
    parts += [f.to_ndarray().reshape(-1, 2) for f in resampler.resample(None)]
    if not parts:
        raise ScribeError(f"{path}: no audio samples")
    return np.concatenate(parts)


class FrameSource:
    """20 ms frames cut from a shared loop, each session starting at its own offset."""

    def __init__(self, loop: np.ndarray, offset: int) -> None:
        self._loop = loop
        self._offset = offset

    def frame(self, n: int) -> av.AudioFrame:
        start = (self._offset + n * FRAME_SAMPLES) % (len(self._loop) - FRAME_SAMPLES)
        pcm = np.ascontiguousarray(self._loop[start:start + FRAME_SAMPLES]).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        frame.sample_rate = FRAME_RATE
        frame.pts = n * FRAME_SAMPLES
        frame.time_base = Fraction(1, FRAME_RATE)
        return frame


# -- backends --------------------------------------------------------------------
class FlakyTranscriber:
    """Wraps a backend and raises a retryable error at a given rate (to exercise retries)."""

    def __init__(self, inner: Transcriber, error_rate: float, seed: int = 0) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self._rate = error_rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def transcribe(self, audio: np.ndarray, *, vocabulary: Sequence[str] = (),
                   options: DecodeOptions | None = None) -> Transcription:
        """Runs on a pipeline worker thread."""
        with self._lock:
            fail = self._random.random() < self._rate
        if fail:
            raise TranscriptionError("simulated 503 from the bench", retryable=True)
        return call_transcriber(self.inner, audio, vocabulary, options)

    def close(self) -> None:
        self.inner.close()


def make_backend(config: BenchConfig) -> Transcriber:
    """The stand-in with the run's latency and seed, or the backend built as the app builds it."""
    if config.backend == backends.STAND_IN:
        backend: Transcriber = StubTranscriber(config.stub_latency, seed=config.seed)
    else:
        settings = Settings.from_env({}, backend=config.backend, whisper_model=config.whisper_model,
                                     max_concurrency=config.threads())
        backend = make_transcriber(settings)
    if config.stub_error_rate > 0:
        backend = FlakyTranscriber(backend, config.stub_error_rate, seed=config.seed)
    return backend


# -- one simulated session ---------------------------------------------------------
@dataclass
class SessionFeed:
    """A session's feeder thread state; written by that thread, read after join."""

    session_id: str
    source: FrameSource
    start_delay_s: float
    chunks: list[tuple[int, int, int]] = field(default_factory=list)  # (seq, start, end)
    samples: int = 0
    lag_max_s: float = 0.0
    error: BaseException | None = None


def feed_session(feed: SessionFeed, *, frames: int, speed: float, policy_spec: str,
                 pipeline: Pipeline, t0: float, progress: list[int]) -> None:
    """Runs on the session's own thread (like a WebRTC processor thread): frame -> resampler
    -> chunker -> submit_nowait, never waiting on disk, DuckDB or the backend."""
    try:
        resampler = FrameResampler()
        chunker = Chunker(feed.session_id, parse_policy(policy_spec))
        start = t0 + feed.start_delay_s
        for n in range(frames):
            if not math.isinf(speed):
                feed.lag_max_s = max(feed.lag_max_s, _pace(start + n * FRAME_SECONDS / speed))
            _submit(feed, chunker.push(resampler.push(feed.source.frame(n))), pipeline, speed)
            progress[0] += 1  # racy by design: only for the progress line
        _submit(feed, chunker.push(resampler.flush()) + chunker.finish(), pipeline, speed)
        feed.samples = chunker.samples_in
    except BaseException as exc:  # surfaced by run_bench after join
        feed.error = exc


def _pace(due: float) -> float:
    """Sleep until `due` (monotonic); return how late we already were."""
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
        return 0.0
    return -delay


def _submit(feed: SessionFeed, chunks: list[Chunk], pipeline: Pipeline, speed: float = 1.0) -> None:
    # A feeder running as fast as it can has no clock to keep: it waits for the writers
    # (backpressure) instead of filling RAM or the disk with spilled chunks.
    for chunk in chunks:
        feed.chunks.append((chunk.seq, chunk.start_sample, chunk.end_sample))
        pipeline.submit_nowait(chunk, wait_for_room=math.isinf(speed))


# -- sampling RSS, CPU and the queue ----------------------------------------------
class Sampler:
    """A daemon thread sampling RSS and queue depth every `every` seconds."""

    def __init__(self, pipeline: Pipeline, every: float) -> None:
        self.pipeline = pipeline
        self.every = every
        self.samples: list[dict[str, float]] = []
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._t0 = time.monotonic()

    def start(self) -> "Sampler":
        self.sample()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def sample(self) -> dict[str, float]:
        stats = self.pipeline.stats()
        row = {"t": time.monotonic() - self._t0, "rss_mb": self._process.memory_info().rss / 2**20,
               "backlog": stats.queued + stats.in_flight + stats.intake,
               "backlog_audio_s": stats.audio_seconds_waiting, "done": stats.processed}
        self.samples.append(row)
        return row

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()


# -- the run ---------------------------------------------------------------------
def run_bench(config: BenchConfig, progress: Progress | None = None) -> BenchReport:
    """Run one load test and return its report (the data folder is removed unless given)."""
    config.validate()
    data_dir = config.data_dir or Path(tempfile.mkdtemp(prefix="scribe-bench-"))
    storage = Storage(data_dir / "scribe.duckdb")
    try:
        return _run(config, storage, data_dir, progress or (lambda _m: None))
    finally:
        storage.close()
        if config.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


def _run(config: BenchConfig, storage: Storage, data_dir: Path, progress: Progress) -> BenchReport:
    backend = make_backend(config)
    options = PipelineOptions(max_concurrency=config.threads(), writer_threads=config.writers)
    pipeline = Pipeline(storage, backend, audio_dir=data_dir / "audio", options=options).start()
    feeds = _make_sessions(config, storage, backend)
    process = psutil.Process()
    cpu0, t0 = _cpu_seconds(process), time.monotonic()
    sampler = Sampler(pipeline, config.sample_every_s).start()
    try:
        feed_end = _feed_all(config, feeds, pipeline, progress, sampler)
        at_end = sampler.sample()
        pipeline.flush_intake(config.drain_timeout_s)
        for feed in feeds:
            pipeline.finish_session(feed.session_id, "stopped")
        if not pipeline.wait_idle(config.drain_timeout_s):
            progress(f"queue not drained after {config.drain_timeout_s:.0f} s; reporting as is")
    finally:
        sampler.stop()
        pipeline.stop()
    wall = time.monotonic() - t0
    cpu = _cpu_seconds(process) - cpu0
    return _report(config, storage, backend, feeds, sampler.samples, at_end,
                   feed_s=feed_end - t0, wall_s=wall, cpu_s=cpu,
                   data_dir=str(data_dir) if config.data_dir else None)


def _make_sessions(config: BenchConfig, storage: Storage, backend: Transcriber) -> list[SessionFeed]:
    loop = file_loop(config.audio_path) if config.audio_path else speechlike_loop(seed=config.seed)
    rng = random.Random(config.seed)
    policy = parse_policy(config.chunk_policy)
    # Live sessions do not all start on the same 20 ms tick: spread the starts
    # over one chunk length so chunks close spread out, as they would in use.
    spread = policy.seconds / config.speed if config.stagger and not math.isinf(config.speed) else 0.0
    feeds = []
    for i in range(config.sessions):
        row = storage.create_session(title=f"bench {i + 1}/{config.sessions}", source="bench",
                                     backend=backend.name, model=backend.model,
                                     chunk_seconds=policy.seconds, chunk_policy=policy_label(policy))
        feeds.append(SessionFeed(row.id, FrameSource(loop, rng.randrange(len(loop))),
                                 start_delay_s=rng.uniform(0, spread)))
    return feeds


def _feed_all(config: BenchConfig, feeds: list[SessionFeed], pipeline: Pipeline,
              progress: Progress, sampler: Sampler) -> float:
    frames = int(round(config.minutes * 60 / FRAME_SECONDS))
    counter = [0]
    t0 = time.monotonic()
    threads = [threading.Thread(target=feed_session, name=f"bench-session-{i}", daemon=True,
                                kwargs=dict(feed=feed, frames=frames, speed=config.speed,
                                            policy_spec=config.chunk_policy, pipeline=pipeline,
                                            t0=t0, progress=counter))
               for i, feed in enumerate(feeds)]
    for thread in threads:
        thread.start()
    total = frames * len(feeds)
    while alive := [t for t in threads if t.is_alive()]:
        alive[0].join(5.0)
        last = sampler.samples[-1]
        progress(f"fed {min(counter[0] / total, 1):6.1%}  backlog {last['backlog']:.0f} chunks  "
                 f"done {last['done']:.0f}  rss {last['rss_mb']:.0f} MB")
    for feed in feeds:
        if feed.error is not None:
            raise ScribeError(f"session {feed.session_id} feeder failed: {feed.error!r}") from feed.error
    return time.monotonic()


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


# -- the report ------------------------------------------------------------------
def _report(config: BenchConfig, storage: Storage, backend: Transcriber, feeds: list[SessionFeed],
            samples: list[dict[str, float]], at_end: dict[str, float], *, feed_s: float,
            wall_s: float, cpu_s: float, data_dir: str | None) -> BenchReport:
    # pandas (~90 MB) only for the report: the run's RSS is the queue's, not the report's.
    from scribe import analytics

    df = analytics.load_chunks(storage, session_ids=[f.session_id for f in feeds], limit=10**9)
    expected = {(f.session_id, seq) for f in feeds for seq, _s, _e in f.chunks}
    done = df[df["status"] == "done"]
    stored = {(s, int(q)) for s, q in zip(done["session_id"], done["seq"])}
    e2e = analytics.percentiles(df["end_to_end_s"])
    audio_s = sum(f.samples for f in feeds) / SAMPLE_RATE
    rss = [s["rss_mb"] for s in samples]
    return BenchReport(
        sessions=config.sessions, minutes=config.minutes, backend=backend.name, model=backend.model,
        mode=config.mode, concurrency=config.threads(), chunk_policy=config.chunk_policy,
        chunks_expected=len(expected), chunks_stored=len(stored & expected),
        lost=len(expected - stored), duplicated=_duplicates(storage, df, expected),
        failed=int((df["status"] == "failed").sum()), audio_gaps=_audio_gaps(df, feeds),
        retries=int(df["retries"].sum()),
        latency_p50_s=e2e["p50"], latency_p95_s=e2e["p95"], latency_p99_s=e2e["p99"],
        latency_max_s=float(df["end_to_end_s"].max()) if len(done) else float("nan"),
        processing_p50_s=analytics.percentiles(df["processing_s"])["p50"],
        processing_p95_s=analytics.percentiles(df["processing_s"])["p95"],
        queue_wait_p95_s=analytics.percentiles(df["queue_wait_s"])["p95"],
        throughput_chunks_per_min=len(done) / wall_s * 60,
        audio_min_per_wall_min=float(done["audio_s"].sum()) / wall_s,
        backlog_end=int(at_end["backlog"]), backlog_end_audio_s=float(at_end["backlog_audio_s"]),
        backlog_peak=int(max(s["backlog"] for s in samples)),
        feed_s=feed_s, drain_s=wall_s - feed_s, wall_s=wall_s,
        feed_lag_max_s=max((f.lag_max_s for f in feeds), default=0.0),
        peak_rss_mb=max(rss), mean_rss_mb=float(np.mean(rss)), rss_growth_mb=_rss_growth(samples, feed_s),
        cpu_percent=cpu_s / wall_s * 100, cpu_s_per_audio_min=cpu_s / max(audio_s / 60, 1e-9),
        cores=psutil.cpu_count() or 1, data_dir=data_dir, timeline=samples)


def _duplicates(storage: Storage, df, expected: set[tuple[str, int]]) -> int:
    """Chunk rows nobody sent, plus live segment rows stored more than once for a chunk."""
    extra_chunks = sum(1 for s, q in zip(df["session_id"], df["seq"]) if (s, int(q)) not in expected)
    return extra_chunks + storage.repeated_live_segments(sorted({s for s, _q in expected}))


def _audio_gaps(df, feeds: list[SessionFeed]) -> int:
    """Sessions whose stored chunks do not tile exactly the samples the session produced."""
    gaps = 0
    for feed in feeds:
        rows = df[df["session_id"] == feed.session_id].sort_values("seq")
        starts, ends = rows["start_sample"].to_numpy(), rows["end_sample"].to_numpy()
        contiguous = bool(len(rows)) and starts[0] == 0 and bool(np.all(starts[1:] == ends[:-1]))
        if not (contiguous and int(ends[-1]) == feed.samples):
            gaps += 1
    return gaps


def _rss_growth(samples: list[dict[str, float]], feed_s: float) -> float:
    """RSS at the end of feeding minus RSS once warmed up (10-20 % into the feed), in MB.

    The first 10 % is skipped so the model load, first DuckDB pages and the
    queue filling are not counted as growth.
    """
    times = [s["t"] for s in samples]
    rss = [s["rss_mb"] for s in samples]

    def mean_between(lo: float, hi: float) -> float:
        window = [r for t, r in zip(times, rss) if lo <= t <= hi]
        return float(np.mean(window)) if window else float(np.interp((lo + hi) / 2, times, rss))

    return mean_between(0.9 * feed_s, feed_s) - mean_between(0.1 * feed_s, 0.2 * feed_s)


def format_report(report: BenchReport) -> str:
    """A human-readable summary for the terminal."""
    r = report
    verdict = "OK" if r.lost == 0 and r.duplicated == 0 and r.audio_gaps == 0 else "PROBLEM"
    return "\n".join([
        f"bench: {r.sessions} sessions x {r.minutes:g} min, {r.backend} ({r.model}), {r.mode}, "
        f"{r.concurrency} workers, {r.chunk_policy}",
        f"chunks: expected {r.chunks_expected}, stored {r.chunks_stored}, lost {r.lost}, "
        f"duplicated {r.duplicated}, failed {r.failed}, audio gaps {r.audio_gaps}, "
        f"retries {r.retries}  [{verdict}]",
        f"end-to-end latency: p50 {r.latency_p50_s:.2f} s, p95 {r.latency_p95_s:.2f} s, "
        f"p99 {r.latency_p99_s:.2f} s, max {r.latency_max_s:.2f} s "
        f"(processing p50 {r.processing_p50_s:.2f} s, queue wait p95 {r.queue_wait_p95_s:.2f} s)",
        f"throughput: {r.throughput_chunks_per_min:.1f} chunks/min, "
        f"{r.audio_min_per_wall_min:.2f} audio min per wall min",
        f"backlog: {r.backlog_end} chunks ({r.backlog_end_audio_s:.0f} s audio) when the audio ended, "
        f"peak {r.backlog_peak}; drained in {r.drain_s:.1f} s; feeder max lag {r.feed_lag_max_s:.3f} s",
        f"memory: peak {r.peak_rss_mb:.0f} MB, mean {r.mean_rss_mb:.0f} MB, growth {r.rss_growth_mb:+.1f} MB; "
        f"CPU {r.cpu_percent:.0f}% of one core ({r.cores} cores), {r.cpu_s_per_audio_min:.2f} CPU s "
        f"per audio min; wall {r.wall_s:.1f} s",
    ])
