"""Memory of the final pass on a long session: it reads one window at a time.

    python3 benchmarks/final_pass_memory.py [--hours 1] [--window 120]

Stores a session of `--hours` of audio (a quiet tone, 15 s chunks, through the
real pipeline with the stub backend, into a temp folder), then runs the final
pass over it with a backend that only records how much audio each call got.
Reports the peak Python/numpy allocation during the pass (tracemalloc), the
largest call, and, for comparison, what the whole recording would take.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scribe import backends  # noqa: E402
from scribe.audio import SAMPLE_RATE  # noqa: E402
from scribe.chunking import Chunker, FixedPolicy  # noqa: E402
from scribe.core import Segment, Transcription  # noqa: E402
from scribe.final_pass import final_pass_report  # noqa: E402
from scribe.pipeline import Pipeline, PipelineOptions  # noqa: E402
from scribe.storage import Storage  # noqa: E402
from scribe.transcribers.stub import StubTranscriber  # noqa: E402


class Recorder:
    """A backend that hears each window and answers one segment; no model, so only the pass's own memory counts."""

    name, model = backends.STAND_IN, "recorder"

    def __init__(self) -> None:
        self.calls, self.longest = 0, 0

    def transcribe(self, audio: np.ndarray) -> Transcription:
        self.calls += 1
        self.longest = max(self.longest, audio.size)
        return Transcription([Segment(0.0, audio.size / SAMPLE_RATE, "words", confidence=0.9)])


def store_session(storage: Storage, audio_dir: Path, hours: float) -> str:
    session = storage.create_session(title="long", source="cli", backend=backends.STAND_IN, model=backends.STAND_IN,
                                     chunk_seconds=15, chunk_policy="fixed:15")
    pipeline = Pipeline(storage, StubTranscriber(), audio_dir=audio_dir,
                        options=PipelineOptions(max_concurrency=4)).start()
    chunker = Chunker(session.id, FixedPolicy(15.0))
    block = (0.05 * np.sin(2 * np.pi * 220 * np.arange(60 * SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    try:
        for _minute in range(int(hours * 60)):
            for chunk in chunker.push(block):
                pipeline.submit(chunk)
        for chunk in chunker.finish():
            pipeline.submit(chunk)
        storage.end_session(session.id, "stopped")
        pipeline.wait_idle(3600)
    finally:
        pipeline.stop()
    return session.id


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=float, default=1.0)
    p.add_argument("--window", type=float, default=120.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="scribe-final-mem-") as tmp:
        storage = Storage(Path(tmp) / "s.duckdb")
        session_id = store_session(storage, Path(tmp) / "audio", args.hours)
        recorder = Recorder()
        tracemalloc.start()
        started = time.monotonic()
        report = final_pass_report(storage, recorder, session_id, window_seconds=args.window)
        wall = time.monotonic() - started
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        storage.close()
    whole_mb = report.audio_seconds * SAMPLE_RATE * 4 / 1e6
    print(f"session {report.audio_seconds / 3600:.2f} h, {report.windows} windows of at most {args.window:g} s, "
          f"{recorder.calls} backend calls, largest {recorder.longest / SAMPLE_RATE:.1f} s "
          f"({recorder.longest * 4 / 1e6:.1f} MB)")
    print(f"final pass peak allocation {peak / 1e6:.1f} MB (the whole recording as float32 would be "
          f"{whole_mb:.0f} MB); reading + storing took {wall:.1f} s")


if __name__ == "__main__":
    main()
