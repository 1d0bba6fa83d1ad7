"""VAD cost per chunk, and the queue against a flaky, rate-limited Gemini.

    HF_HUB_OFFLINE=1 python3 benchmarks/gemini_resilience.py [--chunks 40] [--fail 0.3]

The Gemini side is the fake REST server from tests/fake_gemini.py driven through the real
google-genai SDK, so the figures measure Scribe's queue, not Google's latency.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import fake_gemini as fg  # noqa: E402
import speech  # noqa: E402
from scribe import backends  # noqa: E402
from scribe import gemini_client as gc  # noqa: E402
from scribe.chunking import Chunk  # noqa: E402
from scribe.pipeline import Pipeline, PipelineHooks, PipelineOptions  # noqa: E402
from scribe.ratelimit import RateLimit  # noqa: E402
from scribe.storage import Storage  # noqa: E402
from scribe.transcribers.gemini import GeminiTranscriber  # noqa: E402
from scribe.vad import has_speech  # noqa: E402

SR = 16_000


def vad_table(repeats: int = 20) -> None:
    words, _ = speech.meeting_audio(speech.MEETING_TURNS[:4])
    cases = {"speech (espeak)": words[:15 * SR],
             "noise -40 dBFS": np.random.default_rng(0).normal(0, 0.01, 15 * SR).astype(np.float32),
             "digital silence": np.zeros(15 * SR, np.float32)}
    has_speech(cases["speech (espeak)"])  # load the model once
    print("| 15 s chunk | has_speech | median ms | p95 ms |\n|---|---|---|---|")
    for name, audio in cases.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            found = has_speech(audio)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        print(f"| {name} | {found} | {statistics.median(times):.1f} | {times[int(0.95 * (len(times) - 1))]:.1f} |")


def flaky_run(n_chunks: int, fail: float, limit: int, window: float) -> None:
    fake = fg.FakeGemini().start()
    order: dict[str, int] = {}
    bad = [fg.rate_limited(0.2), fg.server_error(500), fg.server_error(503), fg.malformed(), fg.empty_candidates()]

    def respond(request):
        n = order.setdefault(request.fingerprint, len(order))
        # exactly a `fail` share of chunks fail their first call, cycling through transient errors
        return bad[n % len(bad)] if request.attempt == 1 and int((n + 1) * fail) > int(n * fail) else None

    fake.responder = respond
    with tempfile.TemporaryDirectory() as tmp:
        storage = Storage(Path(tmp) / "b.duckdb")
        client = gc.client_for(fg.DEFAULT_KEY, base_url=fake.base_url, timeout_s=2)
        options = PipelineOptions(max_concurrency=4, retry_base_seconds=0.05, retry_max_seconds=1.0)
        pipeline = Pipeline(storage, GeminiTranscriber(client, "gemini-2.5-flash"), audio_dir=Path(tmp) / "a",
                            options=options,
                            hooks=PipelineHooks(before_call=RateLimit(limit, per_seconds=window,
                                                                      margin_seconds=0.5))).start()
        sid = storage.create_session(title="b", source="cli", backend=backends.GEMINI, model="m", chunk_seconds=5,
                                     chunk_policy="fixed:5", status="stopped").id
        t = np.arange(5 * SR) / SR
        started = time.monotonic()
        for seq in range(n_chunks):
            pcm = (0.3 * np.sin(2 * np.pi * (200 + 13 * seq) * t)).astype(np.float32)
            pipeline.submit(Chunk(sid, seq, seq * 5 * SR, (seq + 1) * 5 * SR, pcm, time.time()))
        pipeline.wait_idle(600)
        wall = time.monotonic() - started
        counts, chunks = storage.chunk_counts(sid), storage.list_chunks(sid)
        pipeline.stop()
        storage.close()
    fake.stop()
    calls = len(fake.requests)
    failed = sum(r.answer != "ok" for r in fake.requests)
    print(f"| chunks | calls | failed calls | done | failed chunks | max attempts | limit | max arrivals "
          f"in any {window:g} s | wall s | lower bound s |\n|---|---|---|---|---|---|---|---|---|---|")
    bound = (calls - 1) // limit * (window + 0.5)
    print(f"| {n_chunks} | {calls} | {failed} ({failed / calls:.0%}) | {counts['done']} | {counts['failed']} | "
          f"{max(c.attempts for c in chunks)} | {limit}/{window:g} s | {fake.max_in_window(window)} | "
          f"{wall:.1f} | {bound:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--fail", type=float, default=0.3)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--window", type=float, default=2.0)
    args = parser.parse_args()
    vad_table()
    print()
    flaky_run(args.chunks, args.fail, args.limit, args.window)


if __name__ == "__main__":
    main()
