"""How long one chunk's decode takes in a process of its own (no partial lane, page or
browser beside it): the chunk lane's Whisper call on a 15 s espeak-ng chunk, with word
times on and off, and Whisper's encoder reading the chunk plus 2 s (the app's default) or a
30 s window, each measured three times after a warm-up call.

    HF_HUB_OFFLINE=1 python3 benchmarks/chunk_decode_time.py [--model base] [--root DIR]

`--root` runs another checkout's `scribe` (e.g. `git archive REV scribe tests | tar -x -C DIR`);
there `word_times` and `short_window` are only passed when its transcriber takes them.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose scribe/ is timed")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path[:0] = [str(args.root), str(ROOT / "tests")]
    import speech

    from scribe.transcribers.local import LocalWhisperTranscriber

    audio, _ = speech.meeting_audio(speech.MEETING_TURNS[:4], gap_s=0.9)
    chunk = audio[:15 * 16_000]
    takes = inspect.signature(LocalWhisperTranscriber).parameters
    for word_times in ((False, True) if "word_times" in takes else (None,)):
        for short_window in ((False, True) if "short_window" in takes else (None,)):
            kwargs = {name: value for name, value in (("word_times", word_times), ("short_window", short_window))
                      if value is not None}
            transcriber = LocalWhisperTranscriber(args.model, **kwargs)
            transcriber.transcribe(chunk)  # warm-up
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(args.repeat):
                transcriber.transcribe(chunk)
            print(f"{args.model} word_times={word_times} short_window={short_window}: "
                  f"wall {(time.perf_counter() - wall) / args.repeat:.2f} s, "
                  f"CPU {(time.process_time() - cpu) / args.repeat:.2f} s per 15 s chunk", flush=True)


if __name__ == "__main__":
    main()
