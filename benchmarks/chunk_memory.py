"""RSS of one process transcribing chunks of varying length with the chunk lane's model.

    HF_HUB_OFFLINE=1 python3 benchmarks/chunk_memory.py [--chunks 80] [--fixed] [--no-trim]

`LocalWhisperTranscriber("base")` (the app's chunk lane: short encoder window, word times)
transcribes `--chunks` pieces of real and espeak-ng speech, each of a random length between
10 and 21 s (as pause:15 cuts them; `--fixed`: all 15 s), one after another. Prints the
process's RSS every 10 chunks, the slope in MB per 100 chunks after the first third, and the
median CPU seconds per chunk. Each distinct encoder input length is a kernel oneDNN compiles
and keeps (bounded by `scribe.memory`; `ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024` in the
environment restores oneDNN's own bound), and Whisper's freed buffers stay in the heap
unless trimmed as the app trims them (`--no-trim`: never), so this shows whether the chunk
lane's memory depends on how many chunks and lengths it has seen."""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_latency import spoken

from scribe.audio import SAMPLE_RATE
from scribe.memory import return_freed_memory
from scribe.transcribers.local import LocalWhisperTranscriber


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=80)
    parser.add_argument("--fixed", action="store_true", help="every chunk 15 s long")
    parser.add_argument("--no-trim", action="store_true",
                        help="keep freed memory in the heap (the app and workers trim every 30 s)")
    args = parser.parse_args()
    audio = np.concatenate([spoken("human", 0)[0], spoken("espeak", 1)[0]])
    transcriber = LocalWhisperTranscriber("base")
    rng, process, at, rss, cpu = np.random.default_rng(0), psutil.Process(), 0, [], []
    for n in range(1, args.chunks + 1):
        length = 15 * SAMPLE_RATE if args.fixed else int(rng.uniform(10, 21) * SAMPLE_RATE)
        start = at % (audio.size - length)
        at += length
        began = time.process_time()
        transcriber.transcribe(audio[start:start + length])
        cpu.append(time.process_time() - began)
        if not args.no_trim and n % 2 == 0:  # a chunk takes 1-2 s here, about 30 s in a live session of 4
            return_freed_memory()
        gc.collect()
        rss.append(process.memory_info().rss / 2**20)
        if n % 10 == 0:
            print(f"{n} chunks: RSS {rss[-1]:.1f} MB", flush=True)
    x = np.arange(len(rss))
    tail = x >= len(rss) // 3
    slope = float(np.polyfit(x[tail], np.array(rss)[tail], 1)[0]) * 100
    print(f"RSS {rss[0]:.1f} -> {rss[-1]:.1f} MB; slope after the first third {slope:.1f} MB per 100 chunks; "
          f"CPU per chunk median {float(np.median(cpu)):.2f} s")


if __name__ == "__main__":
    main()
