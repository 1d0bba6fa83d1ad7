"""The partial lane's decoding, offline: how soon and how right its words are.

    HF_HUB_OFFLINE=1 python3 benchmarks/partial_decoding.py [--interval 1.0] [--noise -35 ...]

Without the app or a browser: espeak-ng speech is cut into chunks at the pauses nearest
12-15 s, and each chunk's audio so far is decoded every `--interval` seconds of audio,
as the partial lane does, through LocalAgreement-2. For every spoken word (the reference
text, times as in live_latency.py), its latency is the first decode whose shown text has
it (aligned, runs of 2+ words), counted from the word's end: audio still to come before
that decode plus the decode's own time. No page, network or CPU contention is counted,
so these are lower bounds for benchmarks/live_latency.py.

Two decoders of the same model (`WhisperPartialDecoder`): `short` (the app's: the speech
plus a little silence through the encoder) and `window` (faster-whisper's 30 s windows).
Two sets: `tune` (tests/speech.py's meeting turns, which the short window's padding was
chosen on) and `eval` (live_latency.py's evaluation turns, used for nothing else), each
clean and with every `--noise` level (white noise, dBFS). Reported: decode seconds
p50/p95, words shown (of all), latency p50/p95, and the WER of each chunk's last
hypothesis against the reference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

import speech  # noqa: E402
from live_latency import EVAL_TURNS, Word, reference_words, seen_times  # noqa: E402
from scribe.audio import SAMPLE_RATE  # noqa: E402
from scribe.partials import LocalAgreement, WhisperPartialDecoder, words_of  # noqa: E402
from scribe.wer import normalize, word_error_rate  # noqa: E402

SETS = {"tune": speech.MEETING_TURNS[:10], "eval": EVAL_TURNS}


def pause_cuts(clean: np.ndarray, target_s: float = 12.0) -> list[int]:
    """Chunk bounds: the middle of the first pause (>= 0.4 s of silence) after `target_s`
    of chunk, found on the clean audio (the noisy copy is cut at the same places)."""
    silent = np.convolve(np.abs(clean) > 1e-3, np.ones(1600), "same") == 0
    edges = np.flatnonzero(np.diff(silent.astype(int)))
    cuts = [0]
    for start, end in zip(edges[::2], edges[1::2]):
        if end - start > 0.4 * SAMPLE_RATE and start - cuts[-1] > target_s * SAMPLE_RATE:
            cuts.append(int(start + end) // 2)
    return cuts + [clean.size]


def simulate(decoder: WhisperPartialDecoder, audio: np.ndarray, cuts: list[int],
             interval_s: float) -> tuple[list[tuple[float, list[str]]], list[float], list[str]]:
    """(when each decode's text was ready in audio seconds, its shown words), decode
    seconds, and each chunk's last hypothesis."""
    step = int(interval_s * SAMPLE_RATE)
    shown, seconds, last = [], [], []
    for start, end in zip(cuts, cuts[1:]):
        agreement, text = LocalAgreement(2), ""
        for until in range(start + step, end + 1, step):
            began = time.perf_counter()
            text = decoder(audio[start:until])
            seconds.append(time.perf_counter() - began)
            stable, tail = agreement.update(words_of(text))
            shown.append((until / SAMPLE_RATE + seconds[-1], normalize(" ".join(stable + tail)).split()))
        last.append(text)
    return shown, seconds, last


def word_latencies(reference: list[Word], shown: list[tuple[float, list[str]]]) -> list[float]:
    """Seconds from each shown word's end to the first decode showing it (as live_latency)."""
    return [max(0.0, at - w.end_s) for at, w in zip(seen_times(reference, shown), reference) if at is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds of new audio between decodes")
    parser.add_argument("--noise", type=float, action="append", default=[], help="dBFS, repeatable")
    parser.add_argument("--decoder", choices=("short", "window"), action="append", help="default: both")
    args = parser.parse_args()
    decoders = {label: WhisperPartialDecoder(args.model, short_window=label == "short")
                for label in args.decoder or ["short", "window"]}
    for decoder in decoders.values():
        decoder.warm()
    print(f"{args.model}, a decode every {args.interval:g} s of audio")
    print(f"{'set':<6}{'noise':>7}  {'decoder':<8}{'decode p50/p95':>16}{'shown':>9}{'latency p50/p95':>17}{'WER':>7}")
    for name, turns in SETS.items():
        clean, text = speech.meeting_audio(turns, gap_s=0.9)
        cuts = pause_cuts(clean)
        reference = reference_words(clean, text)
        for noise in [None, *args.noise]:
            audio = clean if noise is None else speech.add_noise(clean, noise)
            for label, decoder in decoders.items():
                shown, seconds, last = simulate(decoder, audio, cuts, args.interval)
                lat = word_latencies(reference, shown)
                print(f"{name:<6}{'clean' if noise is None else f'{noise:g}':>7}  {label:<8}"
                      f"{np.median(seconds):>8.2f} / {np.percentile(seconds, 95):.2f}"
                      f"{len(lat):>5}/{len(reference)}"
                      f"{np.median(lat):>9.2f} / {np.percentile(lat, 95):.2f}"
                      f"{word_error_rate(text, ' '.join(last)):>7.3f}", flush=True)


if __name__ == "__main__":
    main()
