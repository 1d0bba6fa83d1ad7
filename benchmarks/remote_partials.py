"""What the partial lane costs the app process when its decodes run on a worker.

    HF_HUB_OFFLINE=1 python3 benchmarks/remote_partials.py [--sessions 4] [--seconds 60]
        [--partial-model tiny.en]

Without the app's pages, WebRTC or chunk lane: a redis-server on loopback, one
`python -m scribe worker --lanes partials` (`--partial-model`), and in this process the
app's lane (`PartialLane` with `RemotePartialDecoder`, default interval and wait) fed as the
capture feeds it: `--sessions` sessions of espeak-ng meeting speech (each its own turns),
0.2 s of audio at a time in real time, a chunk closing every 15 s. Reports this process's
CPU seconds per second of audio per session (the lane's share of an app's CPU per live
session, the feeding loop included), the requests the lane served (decoded / quiet), the decodes'
lag p50/p95 (audio arrived -> words ready) and the worker's CPU per audio second. The first 5 s are not counted (the first ticks load
what they load). The partial lane is never paused here: no chunk lane waits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import psutil  # noqa: E402

import speech  # noqa: E402
from redis_server import free_port, start_redis  # noqa: E402
from scribe.audio import SAMPLE_RATE  # noqa: E402
from scribe.distributed import RemotePartialDecoder  # noqa: E402
from scribe.partials import PartialLane  # noqa: E402

STEP_S = 0.2
CHUNK_S = 15.0
WARM_S = 5.0


def session_audio(k: int, seconds: float) -> np.ndarray:
    """Speech for session k (its own turns first), looped to `seconds`."""
    turns = speech.MEETING_TURNS[k:] + speech.MEETING_TURNS[:k]
    audio, _ = speech.meeting_audio(turns, gap_s=0.9)
    return np.resize(audio, int(seconds * SAMPLE_RATE)).astype(np.float32)


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def feed(lane: PartialLane, audios: list[np.ndarray], seconds: float, app: psutil.Process) -> float:
    """Offer every session's open chunk in real time; this process's CPU seconds after the warm-up."""
    step, chunk = int(STEP_S * SAMPLE_RATE), int(CHUNK_S * SAMPLE_RATE)
    started, counted = time.monotonic(), None
    for n in range(1, int(seconds / STEP_S) + 1):
        if counted is None and n * STEP_S >= WARM_S:
            counted = cpu_s(app)
        end = n * step
        seq, start = divmod(end - 1, chunk)
        for k, audio in enumerate(audios):
            sid = f"s{k}"
            if start + 1 == step and seq > 0:
                lane.chunk_closed(sid, seq - 1)
            if lane.due(sid, seq, start + 1):
                lane.offer(sid, seq, seq * chunk, audio[seq * chunk:end])
        time.sleep(max(0.0, started + n * STEP_S - time.monotonic()))
    return cpu_s(app) - (counted or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--partial-model", default="tiny.en")
    args = parser.parse_args()
    audios = [session_audio(k, args.seconds) for k in range(args.sessions)]
    work = Path(tempfile.mkdtemp(prefix="scribe-remote-partials-"))
    port = free_port()
    redis = start_redis(work, port)
    url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "SCRIBE_PARTIAL_MODEL": args.partial_model, "HF_HUB_OFFLINE": "1"}
    worker = subprocess.Popen([sys.executable, "-m", "scribe", "worker", "--redis", url, "--lanes", "partials"],
                              cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    lane = None
    try:
        while "worker ready" not in (line := worker.stderr.readline()):
            if not line:
                raise SystemExit("the worker did not start")
        worker_before = cpu_s(psutil.Process(worker.pid))
        lane = PartialLane(RemotePartialDecoder(url, max_age_s=2.0)).start()
        app_cpu = feed(lane, audios, args.seconds, psutil.Process())
        worker_cpu = cpu_s(psutil.Process(worker.pid)) - worker_before
        stats = [lane.stats(f"s{k}") for k in range(args.sessions)]
    finally:
        if lane is not None:
            lane.stop()
        worker.terminate()
        worker.wait(20)
        redis.terminate()
        redis.wait(10)
    audio_s = (args.seconds - WARM_S) * args.sessions
    lags = [lag for s in stats if s for lag in s.lags]
    print(json.dumps({
        "sessions": args.sessions, "seconds": args.seconds, "partial_model": args.partial_model,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "app_cpu_s_per_audio_s": round(app_cpu / audio_s, 4),
        "worker_cpu_s_per_audio_s": round(worker_cpu / (args.seconds * args.sessions), 3),
        "offered": sum(s.offered for s in stats if s), "decoded": sum(s.decodes for s in stats if s),
        "quiet": sum(s.quiet for s in stats if s),
        **{f"lag_p{q}_s": round(float(np.percentile(lags, q)), 2) for q in (50, 95) if lags}}))


if __name__ == "__main__":
    main()
