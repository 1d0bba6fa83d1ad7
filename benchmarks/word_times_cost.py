"""What word times cost the chunk lane: local Whisper with and without `word_timestamps`.

    HF_HUB_OFFLINE=1 python3 benchmarks/word_times_cost.py [--model base] [--runs 3]

The ~70 s three-voice espeak-ng meeting (tests/speech.py) cut in 15 s chunks (what pause:15
mostly gives), each chunk transcribed as the chunk lane does, one CPU thread, alternating the
two settings in each run so load on a shared machine hits both alike. Reports CPU seconds
(process time) per run, the medians and their ratio, and the WER of each setting (word times
change how faster-whisper moves through a chunk, so the text may differ).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]

from scribe.audio import SAMPLE_RATE  # noqa: E402
from scribe.transcribers.local import LocalWhisperTranscriber  # noqa: E402
from scribe.wer import word_error_rate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    import speech

    audio, reference = speech.meeting_audio()
    chunks = [audio[i:i + 15 * SAMPLE_RATE] for i in range(0, audio.size, 15 * SAMPLE_RATE)]
    whisper = LocalWhisperTranscriber(args.model, threads=1)
    cpu: dict[bool, list[float]] = {False: [], True: []}
    text: dict[bool, str] = {}
    for _ in range(args.runs):
        for word_times in (False, True):
            whisper.word_times = word_times
            started = time.process_time()
            text[word_times] = " ".join(s.text for chunk in chunks for s in whisper.transcribe(chunk).segments)
            cpu[word_times].append(time.process_time() - started)
    print(f"{args.model}: {audio.size / SAMPLE_RATE:.1f} s of audio in {len(chunks)} chunks, {args.runs} runs")
    for word_times, runs in cpu.items():
        print(f"  word times {'on ' if word_times else 'off'}: CPU s per run {[round(x, 2) for x in runs]}, "
              f"median {statistics.median(runs):.2f}, WER {word_error_rate(reference, text[word_times]):.3f}")
    print(f"  ratio on/off: {statistics.median(cpu[True]) / statistics.median(cpu[False]):.3f}")


if __name__ == "__main__":
    main()
