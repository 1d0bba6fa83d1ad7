"""Backbone figures: chunker+resampler throughput, local RTF and per-chunk latency, CLI peak RSS.

    python benchmarks/bench_backbone.py [--speech-repeat 3] [--hours 1]

Prints a Markdown table; numbers are from this one run (medians where repeated).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from scribe.audio import FrameResampler  # noqa: E402
from scribe.chunking import Chunker, parse_policy  # noqa: E402


def synthetic_frames(pool: int = 50) -> list[av.AudioFrame]:
    """A pool of distinct 20 ms 48 kHz stereo s16 frames (noise bursts), reused round-robin."""
    rng = np.random.default_rng(0)
    frames = []
    for n in range(pool):
        level = 0.2 if n % 10 < 7 else 0.001  # speech-like bursts and pauses
        data = (rng.standard_normal((1, 960 * 2)) * level * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
        frame.sample_rate = 48000
        frames.append(frame)
    return frames


def chunker_throughput(hours: float, policy: str) -> dict:
    frames = synthetic_frames()
    n_frames = int(hours * 3600 * 50)
    resampler, chunker = FrameResampler(), Chunker("bench", parse_policy(policy))
    chunks = 0
    started = time.perf_counter()
    for i in range(n_frames):
        chunks += len(chunker.push(resampler.push(frames[i % len(frames)])))
    chunks += len(chunker.push(resampler.flush())) + len(chunker.finish())
    elapsed = time.perf_counter() - started
    return {"policy": policy, "audio_h": hours, "frames": n_frames, "chunks": chunks, "seconds": elapsed}


def cli_run(wav: Path, db: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "scribe", "transcribe", str(wav), "--db", str(db),
                          "--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall": wall, "peak_rss_mb": peak_mb, "session": json.loads(out.stdout)["session_id"],
            "text": json.loads(out.stdout)["text"]}


def chunk_latencies(db: Path, session_id: str) -> list[tuple[float, float]]:
    from scribe.storage import Storage

    store = Storage(db)
    rows = [(c.finished_at - c.started_at, (c.end_sample - c.start_sample) / 16000)
            for c in store.list_chunks(session_id)]
    store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speech-repeat", type=int, default=3)
    parser.add_argument("--hours", type=float, default=1.0)
    args = parser.parse_args()
    import speech
    from scribe.wer import word_error_rate

    print("| measure | value |\n|---|---|")
    for policy in ("fixed:15", "pause:15"):
        runs = [chunker_throughput(args.hours, policy) for _ in range(3)]
        median = statistics.median(r["seconds"] for r in runs)
        print(f"| chunker+resampler, {args.hours:g} h of 48 kHz stereo 20 ms frames, {policy} "
              f"(median of 3) | {median:.2f} s ({runs[0]['chunks']} chunks) |")
    with tempfile.TemporaryDirectory() as tmp:
        audio, reference = speech.meeting_audio(repeat=args.speech_repeat)
        wav = speech.write_wav(audio, Path(tmp) / "meeting.wav")
        duration = audio.size / 16000
        result = cli_run(wav, Path(tmp) / "db.duckdb")
        chunks = chunk_latencies(Path(tmp) / "db.duckdb", result["session"])
    processing = [p for p, _ in chunks]
    rtf = [p / d for p, d in chunks]
    print(f"| speech | {duration:.0f} s, 3 espeak-ng voices, {len(chunks)} chunks (pause:15) |")
    print(f"| CLI wall time / real-time factor (incl. model load) | {result['wall']:.1f} s / "
          f"{result['wall'] / duration:.3f} |")
    print(f"| per-chunk processing p50 / max | {statistics.median(processing):.2f} s / {max(processing):.2f} s |")
    print(f"| per-chunk real-time factor median | {statistics.median(rtf):.3f} |")
    print(f"| CLI peak RSS | {result['peak_rss_mb']:.0f} MB |")
    print(f"| WER vs reference (tiny.en, pause:15) | {word_error_rate(reference, result['text']) * 100:.1f} % |")


if __name__ == "__main__":
    main()
