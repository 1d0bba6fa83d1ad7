"""What a partial decode costs, and what it costs a chunk decoded beside it.

    HF_HUB_OFFLINE=1 python3 benchmarks/partial_cost.py [--chunk-model base] [--partial-model base] [--repeat 3]
        [--lane-only]

Without the app, on espeak-ng speech (tests/speech.py's meeting turns):
1. the partial decoder the app uses (`WhisperPartialDecoder`, `--partial-model`, default
   the app's; greedy on a short window, one CTranslate2 thread, Silero VAD) on the first
   2, 5, 10, 15 and 20 s of the audio: median wall seconds per decode;
2. the chunk lane's model (`--chunk-model`, 13 s of the audio, beam 5, VAD) with 2 and
   with 1 CTranslate2 threads: median wall seconds alone, and beside a loop of partial
   decodes (8 s of audio) on a thread at the partial lane's nice +10, with that loop's
   median decode time.
3. how the two lanes share the cores with four live sessions: the chunk model (default
   threads, as the app loads it) on 13 s alone, then beside the partial lane's tick for four
   sessions (four 4 s tails in one batched call, back to back: a lane that never rests) with
   the partial thread at nice +10 or at the process's priority, and one or two CTranslate2
   threads per partial call; per setting the chunk decode's median and the ticks' median.
   The settings alternate, `--repeat` rounds, so each meets the same machine.
Medians of `--repeat` runs each; the machine should be otherwise idle. `--lane-only`: only 3.
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


def decoder_at(model: str, nice: int, threads: int) -> WhisperPartialDecoder:
    """A partial decoder whose CTranslate2 worker threads run at `nice` (as the app's lane:
    they inherit the priority of the thread that loads the model, whoever calls it later).
    Each (nice, threads) gets its own instance: "int8" and "int8_float32" are one compute
    type on a CPU, but two entries of the per-process model cache."""
    built: dict[str, WhisperPartialDecoder] = {}

    def load() -> None:
        if nice:
            lower_priority(nice)
        built["decoder"] = WhisperPartialDecoder(model, threads=threads,
                                                 compute_type="int8" if nice else "int8_float32")

    thread = threading.Thread(target=load)
    thread.start()
    thread.join()
    return built["decoder"]


def chunk_beside_lane(model_name: str, partial_model: str, audio: np.ndarray, repeat: int) -> None:
    """The chunk lane's decode alone and beside a four-session partial tick loop, per partial
    nice and thread count (alternating, `repeat` rounds)."""
    model = load_model(model_name)

    def decode_chunk() -> None:
        segments, _ = model.transcribe(audio[: 13 * SAMPLE_RATE], language="en", vad_filter=True,
                                       condition_on_previous_text=False)
        list(segments)

    settings = [("alone", 0, 0), ("nice +10, 1 thread", 10, 1), ("nice 0, 1 thread", 0, 1),
                ("nice +10, 2 threads", 10, 2)]
    decoders = {(nice, threads): decoder_at(partial_model, nice, threads) for _, nice, threads in settings if threads}
    tails = [decoders[10, 1].prepare(audio[int(at * SAMPLE_RATE): int((at + 4) * SAMPLE_RATE)], at)
             for at in (0.0, 5.0, 11.0, 17.0)]
    chunk_s: dict[str, list[float]] = {name: [] for name, _, _ in settings}
    tick_s: dict[str, list[float]] = {name: [] for name, _, _ in settings}
    decode_chunk()  # warm
    for _round in range(repeat):
        for name, nice, threads in settings:
            if not threads:
                chunk_s[name].append(timed(decode_chunk))
                continue
            stop = threading.Event()

            def tick_loop(decoder: WhisperPartialDecoder = decoders[nice, threads],
                          ticks: list[float] = tick_s[name]) -> None:
                while not stop.is_set():
                    ticks.append(timed(lambda: decoder.decode([t for t in tails if t is not None])))

            loop = threading.Thread(target=tick_loop)
            loop.start()
            time.sleep(0.5)
            try:
                chunk_s[name].append(timed(decode_chunk))
            finally:
                stop.set()
                loop.join()
    alone = statistics.median(chunk_s["alone"])
    for name, _, threads in settings:
        chunk = statistics.median(chunk_s[name])
        ticks = f", four-session tick {statistics.median(tick_s[name]):.2f} s" if threads else ""
        print(f"chunk lane {model_name} on 13 s, partial lane {name}: {chunk:.2f} s "
              f"(+{100 * (chunk / alone - 1):.0f} %){ticks}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk-model", default="base")
    parser.add_argument("--partial-model", default=DEFAULT_PARTIAL_MODEL)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lane-only", action="store_true", help="only the two lanes sharing the cores")
    args = parser.parse_args()
    audio, _text = speech.meeting_audio(speech.MEETING_TURNS[:6], gap_s=0.8)
    if args.lane_only:
        print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
        chunk_beside_lane(args.chunk_model, args.partial_model, audio, args.repeat)
        return
    decoder = WhisperPartialDecoder(args.partial_model)
    decoder.warm()
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    partial_by_length(decoder, audio, args.repeat)
    for threads in (2, 1):
        chunk_beside_partials(args.chunk_model, threads, decoder, audio, args.repeat)
    chunk_beside_lane(args.chunk_model, args.partial_model, audio, args.repeat)


if __name__ == "__main__":
    main()
