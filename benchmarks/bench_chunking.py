"""Chunking policies x clean/noisy multi-voice speech: WER, chunks, latency.

    HF_HUB_OFFLINE=1 python3 benchmarks/bench_chunking.py \
        [--repeat 2] [--noise -32] [--policy whole --policy pause:15 ...] [--markdown]

Synthesises tests/speech.py's three-voice meeting (espeak-ng) `--repeat` times
over, clean and with white noise at `--noise` dBFS, caches it under
/tmp/scribe-bench/ (synthesis is slow on a shared CPU), and runs every policy
through the real pipeline with the local backend (scribe.lab.run_eval). Prints
one row per (condition, policy); `--markdown` prints the table for the notes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import speech  # noqa: E402

from scribe import backends, lab  # noqa: E402
from scribe.config import Settings  # noqa: E402
from scribe.transcribers import make_transcriber  # noqa: E402

CACHE = Path("/tmp/scribe-bench")
POLICIES = ["whole", "fixed:15", "quiet:15", "pause:15", "pause:10", "pause:20"]


def meeting(repeat: int, noise: float | None, seed: int = 0) -> tuple[Path, str]:
    """The cached WAV and reference for one condition (`seed` picks the noise)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tag = f"meeting-r{repeat}-{'clean' if noise is None else f'n{-noise:g}'}{f'-s{seed}' if seed else ''}"
    wav, txt = CACHE / f"{tag}.wav", CACHE / f"{tag}.txt"
    if not wav.is_file():
        audio, reference = speech.meeting_audio(repeat=repeat, noise_dbfs=noise, seed=seed)
        speech.write_wav(audio, wav)
        txt.write_text(reference)
    return wav, txt.read_text()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--noise", type=float, action="append", help="noise dBFS (repeatable); default -32")
    p.add_argument("--policy", action="append", dest="policies")
    p.add_argument("--seed", type=int, action="append", dest="seeds",
                   help="noise seed (repeatable); default 0")
    p.add_argument("--skip-clean", action="store_true", help="only the noisy conditions")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--context", type=float, default=Settings.from_env({}).noisy_context_seconds,
                   help="seconds of the previous chunk heard before a noisy chunk "
                        "(default: the app's SCRIBE_NOISY_CONTEXT_SECONDS default)")
    args = p.parse_args()
    transcriber = make_transcriber(Settings.from_env({}, backend=backends.DEFAULT))
    seeds = args.seeds or [0]
    conditions = ([] if args.skip_clean else [(None, 0)]) + \
        [(noise, seed) for noise in (args.noise or [-32.0]) for seed in seeds]
    rows = []
    for noise, seed in conditions:
        path, reference = meeting(args.repeat, noise, seed)
        label = "clean" if noise is None else f"noise {noise:g} dBFS" + (f" seed {seed}" if args.seeds else "")
        for spec in args.policies or POLICIES:
            started = time.monotonic()
            run = lab.run_eval(path, reference, [spec], transcriber=transcriber,
                               context_seconds=args.context)[0]
            rows.append((label, run, time.monotonic() - started))
            print(f"{label:<16} {run.policy:<10} WER {run.wer * 100:5.1f} %  chunks {run.chunks:3d}  "
                  f"mean {run.mean_chunk_s:5.1f} s  latency {run.latency_s:6.1f} s  "
                  f"lost {run.words_lost:3d} dup {run.words_duplicated:3d}  wall {rows[-1][2]:5.1f} s",
                  file=sys.stderr, flush=True)
    if args.markdown:
        print(_markdown(rows, args.repeat))


def _markdown(rows, repeat: int) -> str:
    seconds = rows[0][1].audio_seconds if rows else 0
    lines = [f"Audio: {seconds:.0f} s three-voice espeak-ng meeting (repeat={repeat}), tiny.en int8, "
             "hallucination guard on.", "",
             "| condition | policy | WER % | chunks | mean chunk s | listener latency s | words lost | words dup |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for label, r, _wall in rows:
        lines.append(f"| {label} | {r.policy} | {r.wer * 100:.1f} | {r.chunks} | {r.mean_chunk_s:.1f} | "
                     f"{r.latency_s:.1f} | {r.words_lost} | {r.words_duplicated} |")
    return "\n".join(lines)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
