"""Soak: live sessions in real time through every fault the failure model names.

N sessions are fed in real time (20 ms frames -> resampler -> chunker ->
`Pipeline.submit_nowait`, as the Record page does) for M minutes. Transcription
goes through Redis to `python -m scribe worker` processes (stub backend with a
latency), exactly as with `SCRIBE_REDIS_URL`. While the sessions run:

- a random worker process is SIGKILLed every `--kill-every` seconds (on average)
  and a new one started;
- Redis is SIGKILLed once (at `--broker-at` of the run, default 20 %) and started
  again after `--broker-down` seconds, losing its queue (no persistence);
- the data folder, on its own small tmpfs, is filled to the last byte once (at
  `--disk-at`, default 35 %) for `--disk-full` seconds, then freed (needs root to
  mount; otherwise skipped and said so).

Then the queue drains and every fed chunk is checked: stored exactly once, done,
with exactly one segment (the stub's answer): `lost` and `duplicated` must be 0.
The soak process's RSS is sampled every 2 s: peak, and growth per hour as the slope
of a straight line through the samples of the steady state (from `--growth-from`,
default 50 % of the run, after the broker and disk faults; worker kills go on), and
through everything after the first 20 % (warm-up) for comparison. An outage
leaves a step (audio held while writes were refused, then freed, which the
allocator does not all hand back), which is not growth.

    .venv/bin/python benchmarks/soak.py --sessions 20 --minutes 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from scribe import backends  # noqa: E402
from scribe.bench import FRAME_SECONDS, FrameSource, SessionFeed, feed_session, speechlike_loop  # noqa: E402
from scribe.chunking import parse_policy, policy_label  # noqa: E402
from scribe.distributed import RemoteTranscriber  # noqa: E402
from scribe.pipeline import Pipeline, PipelineOptions  # noqa: E402
from scribe.runtime import configure_logging  # noqa: E402
from scribe.storage import Storage  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """redis-server on a fixed loopback port, killed and restarted by pid."""

    def __init__(self, workdir: Path) -> None:
        self.port, self.workdir, self.proc = free_port(), workdir, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(self.port),
                                      "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                      "--dir", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


class Workers:
    """`python -m scribe worker` processes; a supervisor thread restarts any that exit."""

    def __init__(self, url: str, count: int, threads: int, latency: str, log_path: Path) -> None:
        self.url, self.count, self.threads, self.latency = url, count, threads, latency
        self.log = open(log_path, "a")
        self.procs: list[subprocess.Popen] = []
        self.kills = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _spawn(self) -> subprocess.Popen:
        env = {**os.environ, "SCRIBE_BACKEND": backends.STAND_IN, "SCRIBE_STUB_LATENCY": self.latency,
               "HF_HUB_OFFLINE": "1"}
        return subprocess.Popen([sys.executable, "-m", "scribe", "worker", "--redis", self.url,
                                 "--threads", str(self.threads)], cwd=ROOT, env=env,
                                stdout=self.log, stderr=self.log)

    def start(self) -> "Workers":
        self.procs = [self._spawn() for _ in range(self.count)]
        threading.Thread(target=self._supervise, name="soak-supervisor", daemon=True).start()
        return self

    def _supervise(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                self.procs = [p if p.poll() is None else self._spawn() for p in self.procs]

    def kill_one(self, rng: random.Random) -> None:
        with self._lock:
            victim = rng.choice(self.procs)
            if victim.poll() is None:
                victim.send_signal(signal.SIGKILL)
                self.kills += 1

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in self.procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.log.close()


class SmallDisk:
    """The data folder on its own tmpfs (root only), so it can really be filled."""

    def __init__(self, base: Path, size_mb: int) -> None:
        self.path = base / "disk"
        self.path.mkdir()
        self.mounted = os.geteuid() == 0 and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(self.path)],
            capture_output=True).returncode == 0

    def fill_for(self, seconds: float) -> None:
        filler = self.path / f"filler-{uuid.uuid4().hex}"
        try:
            # Unbuffered: a buffered file still holds its last block when the disk is full, and
            # its close then raises ENOSPC out of the fault instead of holding the disk full.
            with open(filler, "wb", buffering=0) as handle:
                block = b"\0" * (1 << 20)
                try:
                    while True:
                        handle.write(block)
                except OSError:
                    pass
            time.sleep(seconds)
        finally:
            filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)


class RssSampler:
    def __init__(self, every: float = 2.0) -> None:
        self.samples: list[tuple[float, float]] = []
        self._process, self._every = psutil.Process(), every
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        threading.Thread(target=self._run, name="soak-rss", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.samples.append((time.monotonic() - self._t0, self._process.memory_info().rss / 2**20))

    def stop(self) -> None:
        self._stop.set()

    def growth_mb_per_hour(self, until_s: float, start_fraction: float = 0.2) -> float:
        return _slope_per_hour([(t, r) for t, r in self.samples if start_fraction * until_s <= t <= until_s])


def _slope_per_hour(points: list[tuple[float, float]]) -> float:
    if len(points) < 3:
        return float("nan")
    t, v = np.array(points).T
    return float(np.polyfit(t, v, 1)[0] * 3600)


class Census:
    """`--census`: what grows. Every `every` s: RSS, Python allocations (tracemalloc), DuckDB's own
    accounting (`duckdb_memory()`) and the count of objects the garbage collector tracks; a
    tracemalloc snapshot at the start of the steady state and one at the end of feeding, so the
    lines whose allocations grew in between can be listed."""

    def __init__(self, storage: Storage, steady_from_s: float, every: float = 30.0) -> None:
        import tracemalloc

        tracemalloc.start(1)
        self._tracemalloc, self._storage = tracemalloc, storage
        self.samples: list[dict[str, float]] = []
        self._steady_from_s, self._every = steady_from_s, every
        self._first = self._last = None
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        threading.Thread(target=self._run, name="soak-census", daemon=True).start()

    def _run(self) -> None:
        import gc

        while not self._stop.wait(self._every):
            t = time.monotonic() - self._t0
            duckdb_mb = self._storage.cursor().execute(
                "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchone()[0] / 2**20
            self.samples.append({"t": t, "rss_mb": psutil.Process().memory_info().rss / 2**20,
                                 "python_mb": self._tracemalloc.get_traced_memory()[0] / 2**20,
                                 "duckdb_mb": duckdb_mb, "gc_objects": len(gc.get_objects())})
            if self._first is None and t >= self._steady_from_s:
                self._first = self._tracemalloc.take_snapshot()

    def finish(self, until_s: float) -> dict:
        self._stop.set()
        last = self._tracemalloc.take_snapshot()
        steady = [x for x in self.samples if self._steady_from_s <= x["t"] <= until_s]
        grew = [] if self._first is None else last.compare_to(self._first, "lineno")[:12]
        self._tracemalloc.stop()
        return {
            "python_growth_mb_per_hour": round(_slope_per_hour([(x["t"], x["python_mb"]) for x in steady]), 1),
            "duckdb_growth_mb_per_hour": round(_slope_per_hour([(x["t"], x["duckdb_mb"]) for x in steady]), 1),
            "gc_objects_growth_per_hour": round(_slope_per_hour([(x["t"], x["gc_objects"]) for x in steady])),
            "python_growth_lines": [f"{d.size_diff / 2**10:+.0f} KiB {d.count_diff:+d} blocks "
                                    f"{d.traceback[0].filename}:{d.traceback[0].lineno}" for d in grew],
            "samples": self.samples,
        }


def run(args: argparse.Namespace) -> dict:
    base = Path(tempfile.mkdtemp(prefix="scribe-soak-"))
    disk = SmallDisk(base, args.disk_mb)
    redis = Redis(base)
    redis.start()
    workers = Workers(redis.url, args.workers, args.worker_threads, args.latency, base / "workers.log").start()
    storage = Storage(disk.path / "data" / "scribe.duckdb")
    remote = RemoteTranscriber(redis.url, backend=backends.STAND_IN, model=backends.STAND_IN, timeout=args.remote_timeout,
                               broker_wait=600.0)
    pipeline = Pipeline(storage, remote, audio_dir=disk.path / "data" / "audio",
                        options=PipelineOptions(max_concurrency=args.workers * args.worker_threads,
                                                writer_threads=4)).start()
    rng = random.Random(args.seed)
    policy = parse_policy(args.policy)
    loop = speechlike_loop(seed=args.seed)
    feeds = [SessionFeed(storage.create_session(title=f"soak {i}", source="bench", backend=backends.STAND_IN, model=backends.STAND_IN,
                                                chunk_seconds=policy.seconds, chunk_policy=policy_label(policy)).id,
                         FrameSource(loop, rng.randrange(len(loop))), start_delay_s=rng.uniform(0, policy.seconds))
             for i in range(args.sessions)]
    sampler = RssSampler()
    census = Census(storage, args.growth_from * args.minutes * 60, args.census) if args.census else None
    faults: list[str] = []
    frames = int(round(args.minutes * 60 / FRAME_SECONDS))
    t0 = time.monotonic()
    threads = [threading.Thread(target=feed_session, daemon=True, name=f"soak-session-{i}",
                                kwargs=dict(feed=f, frames=frames, speed=1.0, policy_spec=args.policy,
                                            pipeline=pipeline, t0=t0, progress=[0]))
               for i, f in enumerate(feeds)]
    for thread in threads:
        thread.start()
    try:
        _inject_faults(args, threads, t0, rng, workers, redis, disk, faults, pipeline)
        feed_s = time.monotonic() - t0
        found = census.finish(feed_s) if census is not None else {}
        for feed in feeds:
            if feed.error is not None:
                raise RuntimeError(f"feeder failed: {feed.error!r}")
            pipeline.finish_session_after_intake(feed.session_id, "stopped")
        drained = pipeline.wait_idle(args.drain_timeout)
        result = _check(storage, feeds)
    finally:
        sampler.stop()
        pipeline.stop()
        remote.close()
        workers.stop()
        redis.kill()
    stats = pipeline.stats()
    result.update({
        "sessions": args.sessions, "minutes": args.minutes, "drained": drained,
        "faults": faults, "worker_kills": workers.kills, "storage_faults": stats.storage_faults,
        "job_errors": stats.job_errors, "retried": stats.retried, "intake_spilled": stats.intake_spilled,
        "peak_rss_mb": round(max(r for _, r in sampler.samples), 1),
        "rss_growth_mb_per_hour": round(sampler.growth_mb_per_hour(feed_s, args.growth_from), 1),
        "rss_growth_after_warmup_mb_per_hour": round(sampler.growth_mb_per_hour(feed_s), 1),
        "wall_s": round(time.monotonic() - t0, 1), "load_average": os.getloadavg(), **found,
    })
    storage.close()
    disk.unmount()
    shutil.rmtree(base, ignore_errors=True)
    return result


def _inject_faults(args, threads, t0, rng, workers, redis, disk, faults, pipeline) -> None:
    """Runs on the main thread while the feeders run."""
    total = args.minutes * 60
    broker_at, disk_at = args.broker_at * total, args.disk_at * total
    next_kill = rng.expovariate(1 / args.kill_every)
    broker_done = disk_done = False
    while any(t.is_alive() for t in threads):
        now = time.monotonic() - t0
        if now >= next_kill:
            workers.kill_one(rng)
            faults.append(f"{now:.0f}s worker SIGKILL")
            next_kill = now + rng.expovariate(1 / args.kill_every)
        if not broker_done and now >= broker_at:
            redis.kill()
            faults.append(f"{now:.0f}s Redis SIGKILL, down {args.broker_down:g}s")
            time.sleep(args.broker_down)
            redis.start()
            broker_done = True
        if not disk_done and now >= disk_at:
            if disk.mounted:
                faults.append(f"{now:.0f}s data disk full for {args.disk_full:g}s")
                disk.fill_for(args.disk_full)
            else:
                faults.append("disk full skipped (cannot mount a tmpfs without root)")
            disk_done = True
        if int(now) % 30 == 0:
            stats = pipeline.stats()
            print(f"{now:6.0f}s  queued {stats.queued:4d}  in flight {stats.in_flight:3d}  "
                  f"done {stats.processed:6d}  storage {'ok' if stats.storage_ok else 'DOWN'}  "
                  f"spilled {stats.intake_spilled}", file=sys.stderr, flush=True)
        time.sleep(1.0 - (time.monotonic() - t0) % 1.0)


def _check(storage: Storage, feeds: list[SessionFeed]) -> dict:
    """Every fed chunk stored once, done, with exactly its one segment."""
    fed = lost = duplicated = 0
    for feed in feeds:
        rows = {c.seq: c for c in storage.list_chunks(feed.session_id)}
        per_chunk: dict[int, int] = {}
        for seg in storage.list_segments(feed.session_id):
            per_chunk[seg.seq] = per_chunk.get(seg.seq, 0) + 1
        for seq, start, end in feed.chunks:
            fed += 1
            row = rows.get(seq)
            if row is None or row.status != "done" or (row.start_sample, row.end_sample) != (start, end):
                lost += 1
            elif per_chunk.get(seq, 0) != 1:
                duplicated += per_chunk.get(seq, 0) > 1
                lost += per_chunk.get(seq, 0) == 0
        duplicated += storage.repeated_live_segments([feed.session_id])
    return {"chunks_fed": fed, "lost": lost, "duplicated": duplicated}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--policy", default="pause:15")
    parser.add_argument("--workers", type=int, default=3, help="worker processes")
    parser.add_argument("--worker-threads", type=int, default=4)
    parser.add_argument("--latency", default="0.3-0.8", help="stub seconds per chunk in the workers")
    parser.add_argument("--kill-every", type=float, default=60.0, help="mean seconds between worker kills")
    parser.add_argument("--broker-down", type=float, default=10.0)
    parser.add_argument("--broker-at", type=float, default=0.2, help="fraction of the run")
    parser.add_argument("--disk-at", type=float, default=0.35, help="fraction of the run")
    parser.add_argument("--growth-from", type=float, default=0.5,
                        help="fraction of the run where the steady-state RSS slope starts")
    parser.add_argument("--disk-full", type=float, default=20.0)
    parser.add_argument("--disk-mb", type=int, default=512)
    parser.add_argument("--remote-timeout", type=float, default=15.0)
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--census", type=float, default=0.0, metavar="SECONDS",
                        help="every SECONDS, sample what grows (tracemalloc, DuckDB, GC objects); 0: off")
    args = parser.parse_args()
    configure_logging("ERROR")
    result = run(args)
    print(json.dumps(result, indent=2))
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 and result["drained"] else 1


if __name__ == "__main__":
    sys.exit(main())
