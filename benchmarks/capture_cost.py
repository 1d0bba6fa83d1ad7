"""CPU cost of the live frame path (resample + chunk + hand-off) per second of audio.

    python3 benchmarks/capture_cost.py [--seconds 300] [--policy pause:15]

Feeds aiortc-shaped frames (20 ms, s16 stereo, 48 kHz) through LiveCapture.take in
batches of 3, with a hand-off that only collects chunks (no disk, no DB), and prints
the process CPU time per audio second. This is the work each live session adds to
its processor thread; aiortc's own receive/decode cost comes on top.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scribe import backends  # noqa: E402
from scribe.capture import LiveCapture  # noqa: E402
from scribe.chunking import parse_policy  # noqa: E402
from scribe.core import SessionRow  # noqa: E402


class HandOff:
    def __init__(self) -> None:
        self.chunks = 0

    def submit_nowait(self, chunk) -> None:
        self.chunks += 1

    def call_after_intake(self, step) -> None:
        pass


def make_frames(seconds: float) -> list[av.AudioFrame]:
    rng = np.random.default_rng(0)
    n = int(seconds * 50)
    pcm = (rng.standard_normal(n * 960) * 3000).astype(np.int16)
    frames = []
    for i in range(n):
        frame = av.AudioFrame.from_ndarray(np.repeat(pcm[i * 960:(i + 1) * 960], 2).reshape(1, -1),
                                           format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48_000, i * 960
        frames.append(frame)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--policy", default="pause:15")
    args = parser.parse_args()
    frames = make_frames(args.seconds)
    session = SessionRow("bench", "bench", "mic", "recording", backends.STAND_IN, backends.STAND_IN, 15.0, args.policy, 0.0)
    handoff = HandOff()
    capture = LiveCapture(session, storage=None, pipeline=handoff,  # type: ignore[arg-type]
                          policy=parse_policy(args.policy))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(0, len(frames), 3):
        capture.take(frames[i:i + 3])
    capture.end("bench")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"| {args.policy} | {args.seconds:.0f} s | {handoff.chunks} | "
          f"{cpu / args.seconds * 1000:.2f} ms | {wall / args.seconds * 1000:.2f} ms |")


if __name__ == "__main__":
    main()
