"""Speaker labels on generated multi-voice meetings: frame and turn accuracy, count, CPU.

    HF_HUB_OFFLINE=1 python3 benchmarks/bench_speakers.py [--set eval|tune] \
        [--voices 2 --voices 3 ...] [--seeds 2] [--snr 15] [--markdown]

Each meeting is ~24 turns of espeak-ng speech in N voices (random order, never
the same voice twice in a row, 0.2-1.0 s gaps, each voice at its own level
between -8 and +4 dB, so loudness normalisation matters), clean and with white
noise at `--snr` dB below the speech. The `tune` set (its own voices and
sentences) was used to choose the thresholds; report the `eval` set, whose voices
and sentences the code never saw while tuning.

Per meeting and mode: after stop with the count given and estimated
(scribe.speakers.diarize), and live (15 s chunks against running centroids,
scribe.speakers.assign_online, the count given as the limit):
- frame accuracy: reference speech frames (10 ms, within 30 dB of the turn's
  loudest) labelled with the right speaker under the best one-to-one mapping,
  over the speech frames the system labelled; `missed` is the share it left
  unlabelled (no VAD speech there);
- turn accuracy: turns whose majority label maps to the right speaker;
- CPU seconds per audio second (process time, VAD + mel + encoder + clustering).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import speech  # noqa: E402

from scribe import speakers as sp  # noqa: E402
from scribe.audio import SAMPLE_RATE  # noqa: E402

VOICE_SETS = {
    "tune": ["en-us+m1", "en-us+f2", "en-us+paul", "en-us+klatt", "en-gb-scotland+f4", "en-us+m7"],
    "eval": ["en-us+m8", "en-us+f4", "en-us+Andy", "en-us+klatt4", "en-us+belinda", "en-us+m2"],
}
EVAL_SENTENCES = [
    "The release train leaves on Thursday whether the docs are ready or not.",
    "I looked at the crash reports and most of them come from the old Android client.",
    "Can we get a number for how many customers still use the legacy export?",
    "Roughly four hundred, mostly small teams on the free plan.",
    "Then we keep it for one more quarter and put a warning banner in the app.",
    "Priya will write the banner text and send it to legal by Wednesday.",
    "The database migration ran for six hours last night, which is far too long.",
    "We could split it into batches and run them during the quiet hours.",
    "That works, but someone has to watch the replication lag while it runs.",
    "I will take the first night shift and hand over to Marcus in the morning.",
    "Moving on, the design review for the billing page is on Monday.",
    "The new layout puts the invoice history right under the plan selector.",
    "Customers asked for a way to download every invoice as one archive.",
    "Good idea, let's add it to the backlog and size it next sprint.",
    "Our hiring pipeline has three candidates in the final round.",
    "Two of them have strong backend experience, one is more of a generalist.",
    "Please send your interview notes before Friday so we can decide.",
    "Last item, the office heating is broken again on the third floor.",
    "Facilities promised a repair, but nobody has come by yet.",
    "I will call them again this afternoon and escalate if needed.",
    "Short one from me, the team lunch moved to next Tuesday.",
    "Does anyone have a conflict with the customer visit on the twelfth?",
    "I might be travelling that week, I will confirm tomorrow.",
    "Okay, thanks everyone, see you at the same time next week.",
]
CACHE: dict[tuple[str, str], np.ndarray] = {}


def sentences(which: str) -> list[str]:
    return list(speech.MEETING_TURNS) + EVAL_SENTENCES[:9] if which == "tune" else EVAL_SENTENCES


def meeting(which: str, n_voices: int, seed: int, snr_db: float | None) -> tuple[np.ndarray, np.ndarray, list]:
    """(audio, reference speaker per 10 ms frame or -1, [(start_frame, end_frame, speaker)])."""
    rng = np.random.default_rng(seed * 100 + n_voices)
    voices = list(rng.choice(VOICE_SETS[which], size=n_voices, replace=False))
    gains = 10 ** (rng.uniform(-8, 4, size=n_voices) / 20)
    pool = sentences(which)
    pieces, turns, cursor, speaker = [], [], 0, -1
    for n in range(24):
        speaker = int(rng.choice([v for v in range(n_voices) if v != speaker or n_voices == 1]))
        key = (voices[speaker], pool[(seed * 7 + n) % len(pool)])
        if key not in CACHE:
            CACHE[key] = speech.synthesize(key[1], voice=key[0])
        audio = CACHE[key] * gains[speaker]
        gap = np.zeros(int(rng.uniform(0.2, 1.0) * SAMPLE_RATE), np.float32)
        pieces += [audio, gap]
        turns.append((cursor, cursor + audio.size, speaker))
        cursor += audio.size + gap.size
    audio = np.concatenate(pieces).astype(np.float32)
    reference = reference_frames(audio, turns)
    if snr_db is not None:
        voiced = reference.repeat(SAMPLE_RATE // 100) >= 0
        speech_rms = np.sqrt(np.mean(np.square(audio[:voiced.size][voiced])))
        audio = speech.add_noise(audio, 20 * np.log10(speech_rms) - snr_db, seed=seed)
    per = SAMPLE_RATE // 100
    return audio, reference, [(s // per, e // per, who) for s, e, who in turns]


def reference_frames(audio: np.ndarray, turns: list) -> np.ndarray:
    per = SAMPLE_RATE // 100
    frames = np.full(audio.size // per, -1, dtype=int)
    for start, end, who in turns:
        rms = np.sqrt(np.mean(np.square(audio[start:end - (end - start) % per].reshape(-1, per)), axis=1))
        voiced = rms > rms.max() * 10 ** (-30 / 20)
        first = start // per
        frames[first:first + voiced.size][voiced[:frames.size - first]] = who
    return frames


def score(reference: np.ndarray, hypothesis: np.ndarray, turns: list) -> dict:
    n = min(reference.size, hypothesis.size)
    ref, hyp = reference[:n], hypothesis[:n]
    speech_frames = ref >= 0
    labelled = speech_frames & (hyp >= 0)
    mapping = best_mapping(ref[labelled], hyp[labelled])
    mapped = np.array([mapping.get(int(h), -2) for h in hyp[labelled]])
    correct_turns = 0
    for start, end, who in turns:
        part = hyp[start:min(end, n)]
        part = part[part >= 0]
        if part.size and mapping.get(int(np.bincount(part).argmax()), -2) == who:
            correct_turns += 1
    return {"frame_acc": float(np.mean(mapped == ref[labelled])) if labelled.any() else 0.0,
            "missed": 1 - labelled.sum() / max(1, speech_frames.sum()),
            "turn_acc": correct_turns / len(turns), "found": len(np.unique(hyp[hyp >= 0]))}


def best_mapping(ref: np.ndarray, hyp: np.ndarray) -> dict[int, int]:
    """Hypothesis label -> reference speaker, one-to-one, maximising matched frames."""
    hyps, refs = sorted(set(hyp.tolist())), sorted(set(ref.tolist()))
    counts = {(h, r): int(np.sum((hyp == h) & (ref == r))) for h in hyps for r in refs}
    best, best_total = {}, -1
    small, large = (hyps, refs) if len(hyps) <= len(refs) else (refs, hyps)
    for chosen in itertools.permutations(large, len(small)):
        pairs = list(zip(small, chosen)) if small is hyps else [(h, r) for r, h in zip(small, chosen)]
        total = sum(counts[p] for p in pairs)
        if total > best_total:
            best, best_total = dict(pairs), total
    return best


def after_stop(audio: np.ndarray, count: int | None, chunk_s: float = 15.0) -> tuple[np.ndarray, float]:
    """The relabel after stop: windows per 15 s chunk (as stored), clustered together."""
    started = time.process_time()
    per_chunk = int(chunk_s * SAMPLE_RATE)
    parts = [sp.embed_windows(audio[s:s + per_chunk], offset_ms=s * 1000 // SAMPLE_RATE)
             for s in range(0, audio.size, per_chunk)]
    windows = sp.join_windows(parts, audio.size * 100 // SAMPLE_RATE)
    frames = sp.frame_labels(windows, sp.label_windows(windows, count))
    return frames, time.process_time() - started


def live(audio: np.ndarray, count: int, chunk_s: float = 15.0,
         threshold: float = sp.NEW_SPEAKER_SIMILARITY) -> tuple[np.ndarray, float]:
    """15 s chunks labelled one by one against running centroids, as the live thread does."""
    started = time.process_time()
    per_chunk = int(chunk_s * SAMPLE_RATE)
    centroids, weights, frames = [], [], []
    for start in range(0, audio.size, per_chunk):
        piece = audio[start:start + per_chunk]
        windows = sp.embed_windows(piece)
        if len(windows):
            picks = sp.assign_online(windows.embeddings, windows.seconds, centroids, weights,
                                     max_speakers=count, threshold=threshold)
            frames.append(sp.frame_labels(windows, np.array(picks)))
        else:
            frames.append(np.full(windows.speech.size, -1))
    return np.concatenate(frames), time.process_time() - started


def run(which: str, voice_counts: list[int], seeds: int, snr_db: float,
        threshold: float = sp.NEW_SPEAKER_SIMILARITY) -> list[dict]:
    rows = []
    sp.shared_encoder()
    for n_voices, seed, snr in itertools.product(voice_counts, range(seeds), [None, snr_db]):
        audio, reference, turns = meeting(which, n_voices, seed, snr)
        seconds = audio.size / SAMPLE_RATE
        for mode in ("given", "estimated", "live"):
            if mode == "live":
                hyp, cpu = live(audio, n_voices, threshold=threshold)
            else:
                hyp, cpu = after_stop(audio, n_voices if mode == "given" else None)
            rows.append({"voices": n_voices, "seed": seed, "noise": "clean" if snr is None else f"{snr:g} dB SNR",
                         "mode": mode, "seconds": seconds, "cpu_per_s": cpu / seconds,
                         **score(reference, hyp, turns)})
            print(_line(rows[-1]), flush=True)
    return rows


def stored_text_check(which: str, n_voices: int = 4) -> dict:
    """One meeting through the real CLI path (local tiny.en): the stored words before and after
    the speaker relabel, and their WER against the reference."""
    import tempfile

    from scribe.chunking import parse_policy
    from scribe.config import Settings
    from scribe.diarization import relabel_session
    from scribe.ingest import ingest_file, wait_for_session
    from scribe.runtime import Runtime
    from scribe.wer import word_error_rate

    audio, _, _ = meeting(which, n_voices, 0, None)
    with tempfile.TemporaryDirectory() as tmp:
        wav = speech.write_wav(audio, Path(tmp) / "meeting.wav")
        settings = Settings.from_env({}, data_dir=Path(tmp) / "data")
        runtime = Runtime.build(settings)
        try:
            result = ingest_file(wav, storage=runtime.storage, pipeline=runtime.pipeline,
                                 policy=parse_policy(settings.chunk_policy, settings.chunk_seconds), title="wer")
            wait_for_session(runtime.storage, result.session.id)
            before = runtime.storage.session_text(result.session.id)
            relabel_session(runtime.storage, result.session.id, n_speakers=n_voices)
            after = runtime.storage.session_text(result.session.id)
        finally:
            runtime.close()
    reference = " ".join(sentences(which)[(0 * 7 + n) % len(sentences(which))] for n in range(24))
    return {"identical": before == after, "wer_before": word_error_rate(reference, before),
            "wer_after": word_error_rate(reference, after)}


def _line(r: dict) -> str:
    return (f"{r['voices']} voices seed {r['seed']} {r['noise']:<12} {r['mode']:<9} {r['seconds']:5.0f} s  "
            f"frame {r['frame_acc']:.3f}  missed {r['missed']:.3f}  turn {r['turn_acc']:.3f}  "
            f"found {r['found']}  cpu/s {r['cpu_per_s']:.4f}")


def markdown(rows: list[dict]) -> str:
    out = ["| voices | audio | mode | frame acc. (median, min) | turn acc. | speakers found | CPU s per audio s |",
           "|---|---|---|---|---|---|---|"]
    key = lambda r: (r["voices"], r["noise"] != "clean", r["noise"], ["given", "estimated", "live"].index(r["mode"]))
    for group_key, group in itertools.groupby(sorted(rows, key=key), key=lambda r: (r["voices"], r["noise"], r["mode"])):
        group = list(group)
        frames = [r["frame_acc"] for r in group]
        found = ", ".join(str(r["found"]) for r in group)
        out.append(f"| {group_key[0]} | {group_key[1]} | {group_key[2]} | {statistics.median(frames):.3f}, "
                   f"{min(frames):.3f} | {statistics.median(r['turn_acc'] for r in group):.3f} | {found} | "
                   f"{statistics.median(r['cpu_per_s'] for r in group):.4f} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=sorted(VOICE_SETS), default="eval")
    parser.add_argument("--voices", type=int, action="append")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--snr", type=float, default=15.0)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--wer", action="store_true",
                        help="also transcribe one meeting (tiny.en) and compare the stored words before/after labels")
    parser.add_argument("--live-threshold", type=float, default=sp.NEW_SPEAKER_SIMILARITY,
                        help="new-speaker similarity for the live mode (tuning)")
    args = parser.parse_args()
    rows = run(args.set, args.voices or [2, 3, 4, 5, 6], args.seeds, args.snr, args.live_threshold)
    if args.markdown:
        print(markdown(rows))
    if args.wer:
        print("stored transcript:", stored_text_check(args.set))
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
