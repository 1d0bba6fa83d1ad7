"""What a partial decode costs, and what it costs a chunk decoded beside it.

    HF_HUB_OFFLINE=1 python3 benchmarks/partial_cost.py [--chunk-model base] [--partial-model base] [--repeat 3]

Without the app, on espeak-ng speech (tests/speech.py's meeting turns):
1. the partial decoder the app uses (`WhisperPartialDecoder`, `--partial-model`, default
   the app's; greedy on a short window, one CTranslate2 thread, Silero VAD) on the first
   2, 5, 10, 15 and 20 s of the audio: median wall seconds per decode;
2. the chunk lane's model (`--chunk-model`, 13 s of the audio, beam 5, VAD) with 2 and
   with 1 CTranslate2 threads: median wall seconds alone, and beside a loop of partial
   decodes (8 s of audio) on a thread at the partial lane's nice +10, with that loop's
   median decode time.
Medians of `--repeat` runs each; the machine should be otherwise idle.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

import speech  # noqa: E402
from scribe.audio import SAMPLE_RATE  # noqa: E402
from scribe.config import DEFAULT_PARTIAL_MODEL  # noqa: E402
from scribe.partials import lower_priority  # noqa: E402
from scribe.transcribers.partial_whisper import WhisperPartialDecoder  # noqa: E402
from scribe.transcribers.local import load_model  # noqa: E402


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def median_of(call, repeat: int) -> float:
    return statistics.median(timed(call) for _ in range(repeat))


def partial_by_length(decoder: WhisperPartialDecoder, audio: np.ndarray, repeat: int) -> None:
    for seconds in (2, 5, 10, 15, 20):
        piece = audio[: seconds * SAMPLE_RATE]
        print(f"partial decode, {seconds:>2} s of audio: {median_of(lambda: decoder(piece), repeat):.2f} s",
              flush=True)


def chunk_beside_partials(model_name: str, threads: int, decoder: WhisperPartialDecoder,
                          audio: np.ndarray, repeat: int) -> None:
    model = load_model(model_name, threads=threads)
    chunk = audio[: 13 * SAMPLE_RATE]

    def decode_chunk() -> None:
        segments, _ = model.transcribe(chunk, language="en", vad_filter=True, condition_on_previous_text=False)
        list(segments)

    decode_chunk()  # warm
    alone = median_of(decode_chunk, repeat)
    stop, partial_times = threading.Event(), []

    def partial_loop() -> None:
        lower_priority()
        while not stop.is_set():
            partial_times.append(timed(lambda: decoder(audio[: 8 * SAMPLE_RATE])))

    loop = threading.Thread(target=partial_loop)
    loop.start()
    time.sleep(0.3)
    try:
        beside = median_of(decode_chunk, repeat)
    finally:
        stop.set()
        loop.join()
    print(f"{model_name} on 13 s, {threads} thread(s): {alone:.2f} s alone, {beside:.2f} s beside partials "
          f"(+{100 * (beside / alone - 1):.0f} %); partial decodes meanwhile {statistics.median(partial_times):.2f} s",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk-model", default="base")
    parser.add_argument("--partial-model", default=DEFAULT_PARTIAL_MODEL)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    audio, _text = speech.meeting_audio(speech.MEETING_TURNS[:6], gap_s=0.8)
    decoder = WhisperPartialDecoder(args.partial_model)
    decoder.warm()
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    partial_by_length(decoder, audio, args.repeat)
    for threads in (2, 1):
        chunk_beside_partials(args.chunk_model, threads, decoder, audio, args.repeat)


if __name__ == "__main__":
    main()
