"""Voice profiles on real human voices: enrol from one recording, recognise in meetings.

    HF_HUB_OFFLINE=1 python3 benchmarks/bench_voices.py [--set tune|eval] [--seeds 3] \
        [--thresholds 0.6:0.95:0.025] [--snr 10] [--live]

The voices are the recorded prompts of Debian's Asterisk sound packages (real people, one
professional speaker per package, 8 kHz telephone band resampled to 16 kHz; benchmark-only, so not in
setup.sh: `apt-get install asterisk-core-sounds-{en,es,fr,it,ru}-wav asterisk-prompt-fr-armelle
asterisk-prompt-es-co asterisk-prompt-it-menardi-wav`): Allison (US English, and Mexican Spanish: one person in two
languages), June (Canadian French), Armelle (French), a Colombian Spanish voice, Menardi
(Italian), Carlo (Italian, male) and a Russian voice. Speakers are split into a `tune` set
(the threshold was chosen on it) and an `eval` set no choice saw.

Per speaker, its prompts are shuffled (fixed seed) and cut into recordings of ~20 s. A
profile is enrolled from the first recording (`scribe.voices.voice_from_audio`, so its
checks run on real single voices). Each meeting takes 3 speakers of the set, 12 turns
from their other recordings with 0.3-0.8 s pauses, is clustered after stop with the
count given (`scribe.speakers.diarize`, as the relabel does), and every cluster's
centroid is matched (`scribe.voices.match`) against the profiles of the set minus one
person: in turn each person of the set is the stranger. A cluster's truth is the speaker
holding most of its frames. Per threshold:
- identified: an enrolled speaker's cluster named right; false reject: left unnamed;
  wrong: named as someone else;
- false accept: a stranger's cluster named as any profile;
- speech named right: the seconds of enrolled people's clusters named right, of all theirs.

`--live` measures what the Record page shows before Stop instead: the meeting is cut into
the chunk lane's 15 s chunks, each labelled in turn by the live labeller's online assignment
(`scribe.speakers.assign_online`, as `diarization.label_chunk` does, no count given), and
the live speakers as they stand after the last chunk are matched with the live minimum of
speech (`voices.MIN_MATCH_SECONDS`). A live speaker's truth is the person holding most of
its frames; a person split over two live speakers counts twice.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from scribe import speakers as sp  # noqa: E402
from scribe import voices  # noqa: E402
from scribe.audio import SAMPLE_RATE, decode_file  # noqa: E402
from scribe.core import SpeakerRow, VoiceProfile  # noqa: E402
from scribe.errors import AudioDecodeError  # noqa: E402

SOUNDS = Path("/usr/share/asterisk/sounds")
SPEAKERS = {
    "allison": ["en_US_f_Allison/*.wav", "es_MX_f_Allison/*.wav"],
    "june": ["fr_CA_f_June/*.wav"],
    "armelle": ["fr/*.gsm"],
    "es-co": ["es/*.gsm"],
    "menardi": ["it_IT_f_Menardi/*.wav"],
    "carlo": ["it_IT_m_Carlo/*.wav"],
    "ru": ["ru_RU_f_IvrvoiceRU/*.wav"],
}
SETS = {"tune": ["armelle", "es-co", "carlo"], "eval": ["allison", "june", "menardi", "ru"]}
SCORES: dict[str, list[float]] = {"genuine": [], "impostor": []}
"""Cosine of each cluster to each profile: its own person's (genuine) and the others'."""
UNENROLLED: set[str] = set()
"""People whose enrolment was refused: strangers in every meeting."""
LIVE_SPEAKERS: list[int] = []
"""Speakers per meeting with enough speech to be matched (3 people speak in each)."""
RECORDING_SECONDS = 20.0
RECORDINGS = 6


def recordings(speaker: str) -> list[list[np.ndarray]]:
    """RECORDINGS lists of prompts (~20 s each); Allison's enrolment is English, the rest mixed."""
    files = sorted(f for pattern in SPEAKERS[speaker] for f in glob.glob(str(SOUNDS / pattern)))
    if not files:
        sys.exit(f"no recordings for {speaker} under {SOUNDS}: install the Debian packages named at the top")
    first, rest = files[:1], files[1:]
    np.random.default_rng(len(files)).shuffle(rest)
    out, current, seconds = [], [], 0.0
    for path in first + rest:
        try:
            audio = decode_file(path)
        except AudioDecodeError:  # a few of the packages' files are empty or cut
            continue
        if audio.size < SAMPLE_RATE // 2:
            continue
        current.append(audio[: 6 * SAMPLE_RATE])
        seconds += min(audio.size / SAMPLE_RATE, 6.0)
        if seconds >= RECORDING_SECONDS:
            out.append(current)
            current, seconds = [], 0.0
            if len(out) == RECORDINGS:
                break
    return out


def join(pieces: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    gaps = [np.zeros(int(rng.uniform(0.3, 0.8) * SAMPLE_RATE), np.float32) for _ in pieces]
    return np.concatenate([x for pair in zip(pieces, gaps) for x in pair]).astype(np.float32)


def meeting(people: list[str], pool: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(audio, true speaker index per 10 ms frame or -1): 12 turns, never twice in a row."""
    rng = np.random.default_rng(seed)
    per = SAMPLE_RATE * sp.FRAME_MS // 1000
    pieces, truth, last = [], [], -1
    for _ in range(12):
        who = int(rng.choice([n for n in range(len(people)) if n != last]))
        last = who
        prompts = [p for rec in pool[people[who]][1:] for p in rec]
        turn = np.concatenate([prompts[int(i)] for i in rng.choice(len(prompts), size=2, replace=False)])
        gap = np.zeros(int(rng.uniform(0.3, 0.8) * SAMPLE_RATE), np.float32)
        pieces += [turn, gap]
        truth += [who] * (turn.size // per) + [-1] * (gap.size // per)
    audio = np.concatenate(pieces).astype(np.float32)
    return audio, np.array(truth[: audio.size // per])


def clusters(audio: np.ndarray, truth: np.ndarray, n: int) -> list[tuple[int, np.ndarray, float]]:
    """(true speaker, centroid, seconds) per cluster found with the count given."""
    windows, labels = sp.diarize(audio, n)
    frames = sp.frame_labels(windows, labels)
    out = []
    for c in range(int(labels.max()) + 1):
        members = labels == c
        inside = truth[: frames.size][frames[: truth.size] == c]
        inside = inside[inside >= 0]
        who = int(np.bincount(inside).argmax()) if inside.size else -1
        out.append((who, sp.mean_voice(windows.embeddings[members], windows.seconds[members]),
                    float(windows.seconds[members].sum())))
    return out


LIVE_CHUNK_SECONDS = 15.0
"""The chunk lane's default chunk (`scribe.chunking.DEFAULT_SECONDS`), cut at fixed points here."""


def live_clusters(audio: np.ndarray, truth: np.ndarray) -> list[tuple[int, np.ndarray, float]]:
    """(true speaker, centroid, seconds) per live speaker after the last chunk, labelled
    chunk by chunk against the running centroids as the live labeller does."""
    per = SAMPLE_RATE * sp.FRAME_MS // 1000
    step = int(LIVE_CHUNK_SECONDS * SAMPLE_RATE)
    centroids: list[np.ndarray] = []
    weights: list[float] = []
    votes: dict[int, list[int]] = {}
    for start in range(0, audio.size, step):
        windows = sp.embed_windows(audio[start:start + step])
        if not len(windows):
            continue
        picks = sp.assign_online(windows.embeddings, windows.seconds, centroids, weights, max_speakers=8)
        frames = sp.frame_labels(windows, np.array(picks))
        heard = truth[start // per: start // per + frames.size]
        for voice, who in zip(frames[: heard.size], heard):
            if voice >= 0 and who >= 0:
                votes.setdefault(int(voice), []).append(int(who))
    return [(int(np.bincount(votes[v]).argmax()) if v in votes else -1, c, w)
            for v, (c, w) in enumerate(zip(centroids, weights))]


def add_noise(audio: np.ndarray, snr_db: float | None, seed: int) -> np.ndarray:
    """White noise `snr_db` below the speech (another room and microphone than the enrolment's)."""
    if snr_db is None:
        return audio
    level = np.sqrt(np.mean(np.square(audio[np.abs(audio) > 1e-4])))
    noise = np.random.default_rng(seed).standard_normal(audio.size) * level * 10 ** (-snr_db / 20)
    return np.clip(audio + noise, -1, 1).astype(np.float32)


def run(which: str, seeds: int, thresholds: list[float], snr_db: float | None = None,
        live: bool = False) -> dict[float, dict[str, int]]:
    people = SETS[which]
    pool = {p: recordings(p) for p in people}
    profiles, refused = {}, []
    for p in people:
        try:
            voice = voices.voice_from_audio(join(pool[p][0], np.random.default_rng(0)))
            profiles[p] = VoiceProfile(p, p, voice.embedding.tolist(), voice.seconds, 1, None, 0, 0)
        except voices.EnrolmentError as exc:
            refused.append(f"{p}: {exc}")
            UNENROLLED.add(p)
    counts = {t: dict(identified=0, wrong=0, rejected=0, targets=0, false_accepts=0, strangers=0,
                      target_s=0.0, identified_s=0.0) for t in thresholds}
    for trio in itertools.combinations(people, 3):
        for seed in range(seeds):
            audio, truth = meeting(list(trio), pool, seed)
            audio = add_noise(audio, snr_db, seed)
            found = live_clusters(audio, truth) if live else clusters(audio, truth, 3)
            LIVE_SPEAKERS.append(sum(1 for _, _, secs in found if secs >= voices.MIN_MATCH_SECONDS))
            for who, centroid, _ in found:
                for p, profile in profiles.items():
                    score = float(np.dot(centroid, profile.embedding))
                    SCORES["genuine" if who >= 0 and trio[who] == p else "impostor"].append(score)
            for stranger in people:
                enrolled = [profiles[p] for p in people if p != stranger and p in profiles]
                rows = [SpeakerRow("m", n + 1, f"Speaker {n + 1}", c.tolist(), s) for n, (_, c, s) in enumerate(found)]
                for t in thresholds:
                    chosen = voices.match(rows, enrolled, threshold=t,
                                          min_seconds=voices.MIN_MATCH_SECONDS if live else 0)
                    for n, (who, _, secs) in enumerate(found):
                        if live and secs < voices.MIN_MATCH_SECONDS:
                            continue  # too little speech to be matched yet: not counted either way
                        _score(counts[t], trio[who] if who >= 0 else None, chosen.get(n + 1), stranger, secs)
    for line in refused:
        print("enrolment refused:", line)
    return counts


def _score(c: dict, true: str | None, pick: tuple[str, float] | None, stranger: str, seconds: float) -> None:
    if true is None:
        return
    if true == stranger or true in UNENROLLED:
        c["strangers"] += 1
        c["false_accepts"] += pick is not None
        return
    c["targets"] += 1
    c["target_s"] += seconds
    if pick is not None and pick[0] == true:
        c["identified_s"] += seconds
    if pick is None:
        c["rejected"] += 1
    elif pick[0] == true:
        c["identified"] += 1
    else:
        c["wrong"] += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", default="eval", choices=sorted(SETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--thresholds", default="0.60:0.95:0.025")
    parser.add_argument("--snr", type=float, default=None, help="white noise this many dB below the speech")
    parser.add_argument("--live", action="store_true", help="live labelling before Stop instead of the relabel")
    args = parser.parse_args()
    lo, hi, step = map(float, args.thresholds.split(":"))
    thresholds = [round(t, 3) for t in np.arange(lo, hi + 1e-9, step)]
    counts = run(args.set, args.seeds, thresholds, args.snr, args.live)
    print(f"set={args.set} speakers={','.join(SETS[args.set])} seeds={args.seeds} snr={args.snr} "
          f"{'live, before Stop' if args.live else 'relabel after Stop'}: speakers per 3-person meeting "
          f"{np.mean(LIVE_SPEAKERS):.2f} (min {min(LIVE_SPEAKERS)}, max {max(LIVE_SPEAKERS)})")
    for kind, values in SCORES.items():
        q = np.percentile(values, [0, 5, 50, 95, 100])
        print(f"{kind} similarity (n={len(values)}): min {q[0]:.3f}  p5 {q[1]:.3f}  median {q[2]:.3f}  "
              f"p95 {q[3]:.3f}  max {q[4]:.3f}")
    print("| threshold | identified | wrong name | false reject | false accept (stranger named) | "
          "enrolled people's speech named right |")
    print("|---|---|---|---|---|---|")
    for t, c in counts.items():
        n, s = max(c["targets"], 1), max(c["strangers"], 1)
        mark = " (chosen)" if abs(t - voices.MATCH_THRESHOLD) < 1e-6 else ""
        print(f"| {t:.3f}{mark} | {c['identified']}/{c['targets']} ({100 * c['identified'] / n:.0f} %) | "
              f"{c['wrong']} ({100 * c['wrong'] / n:.1f} %) | {c['rejected']} ({100 * c['rejected'] / n:.1f} %) | "
              f"{c['false_accepts']}/{c['strangers']} ({100 * c['false_accepts'] / s:.1f} %) | "
              f"{100 * c['identified_s'] / max(c['target_s'], 1e-9):.0f} % |")


if __name__ == "__main__":
    main()
