"""The partial lane's decoding, offline: how soon and how right its words are, and what
they cost in CPU.

    HF_HUB_OFFLINE=1 python3 benchmarks/partial_decoding.py [--model base] [--mode tail --mode whole]
        [--sessions 1 --sessions 4] [--commit-after 3.0] [--noise -35 ...] [--root CHECKOUT]

Without the app or a browser: espeak-ng speech is cut into chunks at the pauses nearest
12-15 s and fed, a step of `--interval` seconds of audio at a time, as the lane gets it:
- `whole`: every step decodes the whole open chunk so far (`decoder(audio)`) through
  LocalAgreement-2: the lane before tails. With `--root` pointing at an older checkout
  (e.g. a worktree of the commit before), its `WhisperPartialDecoder` is the one measured:
  the before figures.
- `tail`: the lane's own state (`ChunkText`) and its `hear` (VAD, the gate, one batched
  decode): only the tail after the committed words is decoded, with them as the prompt, no
  decode when VAD finds no new speech, and with `--sessions N` the N sessions' tails of each
  step in one batched model call (the sessions play the set's turns rotated, so each says
  something different). `--root` works here too, for a checkout whose lane has `hear`.
For every spoken word (the reference text, times as in live_latency.py), its latency is the
first step whose shown text has it (aligned, runs of 2+ words), counted from the word's end:
audio still to come before that step plus the step's own decode time. No page, network or
contention is counted, so these are lower bounds for benchmarks/live_latency.py.

Two sets: `tune` (tests/speech.py's meeting turns; padding and commit length were chosen
on it) and `eval` (live_latency.py's evaluation turns, used for nothing else), each clean
and with every `--noise` level (white noise, dBFS). Reported per set: CPU seconds per
second of audio per session (the process's CPU time over the decodes, all threads), decode
seconds p50/p95 (one step of all sessions), words shown (of all, summed over sessions),
latency p50/p95, and the WER of each chunk's last shown text against the reference.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _paths(root: Path) -> None:
    sys.path[:0] = [str(root), str(ROOT / "tests"), str(ROOT / "benchmarks")]


_paths(Path(next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--root=")), ROOT)))

import numpy as np  # noqa: E402

import speech  # noqa: E402
from live_latency import EVAL_TURNS, Word, reference_words, seen_times  # noqa: E402
from scribe.audio import SAMPLE_RATE, decode_file  # noqa: E402
from scribe.partials import LocalAgreement  # noqa: E402
try:
    from scribe.transcribers.partial_whisper import WhisperPartialDecoder, words_of
except ImportError:  # an older checkout (--root): the decoder lived in scribe.partials
    from scribe.partials import WhisperPartialDecoder, words_of  # type: ignore[attr-defined,no-redef]
from scribe.wer import normalize, word_error_rate  # noqa: E402

READER = Path("/usr/share/pocketsphinx/test/data/librivox")
"""Debian's pocketsphinx-testdata: five LibriVox sentences read by one person (scripts/setup.sh --system)."""


def espeak_set(turns: list[str]) -> Callable[[int], tuple[np.ndarray, str]]:
    """Session k: the turns rotated by 3k (each session says something else), 0.9 s between turns."""
    return lambda k: speech.meeting_audio(rotated(turns, 3 * k), gap_s=0.9)


def reader(k: int) -> tuple[np.ndarray, str]:
    """The LibriVox reader's five sentences (rotated by k), 0.6 s apart, and their text."""
    lines = (READER / "transcription").read_text().splitlines()
    said = {m.group(2): m.group(1) for m in (re.match(r"<s> (.*) </s> \((.*)\)", line) for line in lines) if m}
    names = rotated(sorted(said), k % len(said))
    gap = np.zeros(int(0.6 * SAMPLE_RATE), np.float32)
    audio = np.concatenate([piece for n in names for piece in (decode_file(READER / f"{n}.wav"), gap)])
    return audio, " ".join(said[n] for n in names)


def phone_call(k: int) -> tuple[np.ndarray, str]:
    """24 s of a real two-person telephone call (Debian's `transcriber` examples, unpacked by
    benchmarks/real_voices.py), both channels mixed, and its transcript in turn order (the
    same call for every session)."""
    import real_voices

    root = real_voices.unpacked()
    trs = (root / real_voices.TR / "know.trs").read_text(encoding="latin-1")
    body = re.sub(r"<[^>]*>|\{[^}]*\}|\(\(|\)\)", " ", trs.split("<Episode>", 1)[1])
    return real_voices._sox(root / real_voices.TR / "know.sph", "remix", "1,2"), " ".join(body.split())


SETS: dict[str, Callable[[int], tuple[np.ndarray, str]]] = {
    "tune": espeak_set(speech.MEETING_TURNS[:10]), "reader": reader,
    "eval": espeak_set(EVAL_TURNS), "phone": phone_call}
"""`tune` and `reader` (a real voice) to choose settings on; `eval` and `phone` (real voices)
only to check the choice."""
Shown = list[tuple[float, list[str]]]


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


def simulate_whole(decoder, audio: np.ndarray, cuts: list[int], interval_s: float) -> tuple[Shown, list[float], list[str]]:
    """The whole open chunk every step: (when each decode's text was ready in audio seconds,
    its shown words), decode seconds, and each chunk's last shown text."""
    step = int(interval_s * SAMPLE_RATE)
    shown: Shown = []
    seconds, last = [], []
    for start, end in zip(cuts, cuts[1:]):
        agreement, words = LocalAgreement(2), []
        for until in _steps(start, end, step):
            began = time.perf_counter()
            text = decoder(audio[start:until])
            seconds.append(time.perf_counter() - began)
            stable, tail = agreement.update(words_of(text))
            words = stable + tail
            shown.append((until / SAMPLE_RATE + seconds[-1], normalize(" ".join(words)).split()))
        last.append(" ".join(words))
    return shown, seconds, last


def _steps(start: int, end: int, step: int) -> list[int]:
    """Where the lane is offered the chunk: every `step` of audio, and at its close."""
    points = list(range(start + step, end, step))
    return points + [end]


def simulate_tail(decoder, sessions: list[tuple[np.ndarray, list[int]]], interval_s: float,
                  commit_after_s: float, wait_s: float) -> tuple[list[Shown], list[float], list[list[str]]]:
    """The lane's way, N sessions in lockstep (one batched decode per step): per session its
    shown words over time and each chunk's last text; and the seconds of each step."""
    from scribe.partials import ChunkText, Tail, hear

    step = int(interval_s * SAMPLE_RATE)
    n = len(sessions)
    shown: list[Shown] = [[] for _ in range(n)]
    last: list[list[str]] = [[] for _ in range(n)]
    state = [{"chunk": 0, "text": None, "context": ""} for _ in range(n)]
    plans = [[(s, e, u) for s, e in zip(cuts, cuts[1:]) for u in _steps(s, e, step)] for _, cuts in sessions]
    seconds = []
    for k in range(max(map(len, plans))):
        began = time.perf_counter()
        due, tails = [], []
        for i, (audio, _cuts) in enumerate(sessions):
            if k >= len(plans[i]):
                continue
            start, end, until = plans[i][k]
            st = state[i]
            if st["text"] is None or st["start"] != start:
                if st["text"] is not None:
                    last[i].append(" ".join(st["text"].words()))
                    st["context"] = " ".join(st["text"].words())
                st["text"], st["start"] = ChunkText(st["context"], commit_after_s=commit_after_s, wait_s=wait_s), start
            chunk: ChunkText = st["text"]
            open_audio = audio[start:until]
            tail, offset = chunk.tail_audio(open_audio)
            end_s = open_audio.size / SAMPLE_RATE
            due.append((chunk, end_s))
            tails.append(Tail(tail, offset, chunk.prompt(), chunk.wants_times(end_s), gate=chunk.gate()))
        heard = hear(decoder, tails)  # the lane's path: VAD, the gate, one batched decode
        seconds.append(time.perf_counter() - began)
        for (chunk, end_s), found in zip(due, heard):
            if found is not None and found.quiet is None:
                chunk.accept(found.words, end_s, found.speech_end_s)
            elif found is not None:
                chunk.passed(found.quiet, end_s)
        for i in range(n):
            if k < len(plans[i]):
                until = plans[i][k][2]
                words = state[i]["text"].words()
                shown[i].append((until / SAMPLE_RATE + seconds[-1], normalize(" ".join(words)).split()))
    for i in range(n):
        last[i].append(" ".join(state[i]["text"].words()))
    return shown, seconds, last


def word_latencies(reference: list[Word], shown: Shown) -> list[float]:
    """Seconds from each shown word's end to the first decode showing it (as live_latency)."""
    return [max(0.0, at - w.end_s) for at, w in zip(seen_times(reference, shown), reference) if at is not None]


def rotated(turns: list[str], k: int) -> list[str]:
    return turns[k:] + turns[:k]


def run_set(decoder, mode: str, make: Callable[[int], tuple[np.ndarray, str]], noise: float | None, sessions: int,
            interval_s: float, commit_after_s: float, wait_s: float) -> str:
    prepared = []
    for k in range(sessions):
        clean, text = make(k)
        audio = clean if noise is None else speech.add_noise(clean, noise)
        prepared.append((audio, pause_cuts(clean), text, reference_words(clean, text)))
    cpu = time.process_time()
    if mode == "tail":
        shown, seconds, last = simulate_tail(decoder, [(a, c) for a, c, _, _ in prepared], interval_s, commit_after_s,
                                             wait_s)
    else:
        shown, seconds, last = [], [], []
        for audio, cuts, _, _ in prepared:
            s, sec, la = simulate_whole(decoder, audio, cuts, interval_s)
            shown.append(s)
            seconds += sec
            last.append(la)
    cpu = time.process_time() - cpu
    audio_s = sum(a.size for a, *_ in prepared) / SAMPLE_RATE
    lat, n_words, wers = [], 0, []
    for (audio, cuts, text, reference), s, la in zip(prepared, shown, last):
        lat += word_latencies(reference, s)
        n_words += len(reference)
        wers.append(word_error_rate(text, " ".join(la)))
    return (f"{cpu / audio_s:>8.3f}{np.median(seconds):>8.2f} / {np.percentile(seconds, 95):.2f}"
            f"{len(lat):>6}/{n_words}{np.median(lat):>8.2f} / {np.percentile(lat, 95):.2f}{np.mean(wers):>7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds of new audio between decodes")
    parser.add_argument("--noise", type=float, action="append", default=[], help="dBFS, repeatable")
    parser.add_argument("--mode", choices=("tail", "whole"), action="append", help="default: both")
    parser.add_argument("--sessions", type=int, action="append", help="simultaneous sessions (tail: batched)")
    parser.add_argument("--commit-after", type=float, action="append", help="tail length that commits (s)")
    parser.add_argument("--wait", type=float, action="append",
                        help="tail: seconds of running speech a decode may wait for (0: decode every step)")
    parser.add_argument("--set", choices=tuple(SETS), action="append", help="default: both")
    parser.add_argument("--padding", type=float, help="seconds of silence after the speech (default: the app's)")
    parser.add_argument("--compute-type", help="CTranslate2 compute type (default: the decoder's)")
    parser.add_argument("--threads", type=int, help="CTranslate2 threads per call (default: the decoder's)")
    parser.add_argument("--root", type=Path, help="import scribe from this checkout (before figures; whole only; "
                        "give it as --root=PATH)")
    args = parser.parse_args()
    options = {"padding_s": args.padding, "compute_type": args.compute_type, "threads": args.threads}
    decoder = WhisperPartialDecoder(args.model, **{k: v for k, v in options.items() if v is not None})
    decoder.warm()
    print(f"{args.model} {args.compute_type or ''}, a step every {args.interval:g} s of audio, "
          f"padding {args.padding}, load average {os.getloadavg()[0]:.2f}"
          f"{f', scribe from {args.root}' if args.root else ''}")
    print(f"{'set':<6}{'noise':>7}  {'mode':<14}{'n':>3}{'CPU/s':>8}{'step p50/p95':>14}{'shown':>11}"
          f"{'latency p50/p95':>17}{'WER':>7}")
    import scribe.partials

    default_commit = getattr(scribe.partials, "COMMIT_AFTER_SECONDS", 0.0)  # absent before tails
    default_wait = getattr(scribe.partials, "WAIT_SECONDS", 0.0)
    for name in args.set or list(SETS):
        for noise in [None, *args.noise]:
            for mode in args.mode or ["whole", "tail"]:
                for sessions in args.sessions or [1]:
                    for commit, wait in itertools.product(
                            (args.commit_after or [default_commit]) if mode == "tail" else [0.0],
                            (args.wait or [default_wait]) if mode == "tail" else [0.0]):
                        label = f"tail {commit:g}s w{wait:g}" if mode == "tail" else "whole"
                        row = run_set(decoder, mode, SETS[name], noise, sessions, args.interval, commit, wait)
                        print(f"{name:<6}{'clean' if noise is None else f'{noise:g}':>7}  {label:<14}{sessions:>3}{row}",
                              flush=True)


if __name__ == "__main__":
    main()
