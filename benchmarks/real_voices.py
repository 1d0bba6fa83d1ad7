"""Speaker labels on real human voices (not espeak-ng): the count estimate and frame accuracy.

    HF_HUB_OFFLINE=1 python3 benchmarks/real_voices.py [--set tuning|evaluation]

The recordings are test data shipped in two Debian packages, fetched with
`apt-get download` and unpacked (not installed) under /tmp/scribe-bench/real-voices:
- pocketsphinx-testdata: five LibriVox sentences read by one reader (public domain,
  "Sense and Sensibility"), five card names said by one speaker (CMU), and three
  single CMU utterances (cmu1-3; whether they are three people is not stated);
- transcriber: `know.sph`, 24 s of a real two-person telephone conversation with
  a turn-by-turn transcript (`know.trs`), one speaker per channel.

Meetings are built from whole utterances in turn order (0.3-0.8 s pauses, each
voice at its own level); the telephone conversation is also used as it is (both
channels mixed, its own turns as the truth). The TUNING meetings use the LibriVox
reader, the card speaker and the single CMU utterances; the EVALUATION ones use
the two telephone voices, against each other and against the others. Reported
per meeting: voices, the count estimated (speakers.cluster without a count), and
frame accuracy with the count given and estimated.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from scribe import speakers as sp  # noqa: E402
from scribe.audio import SAMPLE_RATE, decode_file  # noqa: E402

CACHE = Path("/tmp/scribe-bench/real-voices")
PACKAGES = ("pocketsphinx-testdata", "transcriber")
PS = "usr/share/pocketsphinx/test/data"
TR = "usr/share/doc/transcriber/examples"


def unpacked() -> Path:
    """The two packages' files, downloaded and unpacked once (no install, no root needed)."""
    root = CACHE / "x"
    if (root / TR / "know.trs").is_file():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=CACHE, check=True, capture_output=True)
    for deb in CACHE.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    for gz in (root / TR).glob("*.gz"):
        subprocess.run(["gunzip", "-kf", str(gz)], check=True)
    return root


def _sox(src: Path, *effects: str, raw: bool = False) -> np.ndarray:
    """Any of these files as 16 kHz mono float32 (sox reads .sph and headerless .raw)."""
    out = CACHE / f"tmp-{os.getpid()}.wav"
    head = ["-t", "raw", "-r", "16000", "-e", "signed", "-b", "16", "-c", "1"] if raw else []
    subprocess.run(["sox", *head, str(src), "-r", str(SAMPLE_RATE), "-c", "1", str(out), *effects],
                   check=True, capture_output=True)
    try:
        return decode_file(out)
    finally:
        out.unlink()


def telephone_turns(root: Path) -> list[tuple[str, float, float]]:
    """(speaker, start, end) of know.trs's single-speaker turns."""
    text = (root / TR / "know.trs").read_text(encoding="latin-1")
    turns = re.findall(r'<Turn speaker="(spk\d)"[^>]*startTime="([\d.]+)" endTime="([\d.]+)"', text)
    return [(who, float(a), float(b)) for who, a, b in turns]


def voices(root: Path) -> dict[str, list[np.ndarray]]:
    """Utterances per real voice."""
    ps = root / PS
    out = {"reader": [decode_file(p) for p in sorted((ps / "librivox").glob("*.wav"))],
           "cards": [_sox(p) for p in sorted((ps / "cards").glob("*.wav"))],
           **{f"cmu{n + 1}": [_sox(ps / f"{name}.raw", raw=True)]  # one utterance each, maybe one person
              for n, name in enumerate(("goforward", "numbers", "something"))}}
    know = root / TR / "know.sph"
    channel = {"spk1": _sox(know, "remix", "2"), "spk2": _sox(know, "remix", "1")}
    for who, start, end in telephone_turns(root):
        if end - start >= 1.0:
            out.setdefault(f"phone-{who}", []).append(channel[who][int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)])
    return out


def build(utterances: dict[str, list[np.ndarray]], names: tuple[str, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Turns in rotation (each voice's utterances in order, at its own level) -> (audio, voice per 10 ms)."""
    rng = np.random.default_rng(seed)
    gains = {n: 10 ** (rng.uniform(-6, 3) / 20) for n in names}
    queues = {n: list(utterances[n]) for n in names}
    audio, truth = [], []
    for n in itertools.cycle(names):
        if not any(queues.values()):
            break
        if not queues[n]:
            continue
        piece = queues[n].pop(0)
        piece = piece / max(float(np.sqrt(np.mean(piece ** 2))), 1e-6) * 0.05 * gains[n]
        pause = np.zeros(int(rng.uniform(0.3, 0.8) * SAMPLE_RATE), np.float32)
        audio += [piece.astype(np.float32), pause]
        truth += [np.full(piece.size // 160, names.index(n)), np.full(pause.size // 160, -1)]
    return np.clip(np.concatenate(audio), -1, 1), np.concatenate(truth)


def conversation(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The telephone call as recorded (both channels mixed), its turns as the truth."""
    audio = _sox(root / TR / "know.sph", "remix", "1,2")
    truth = np.full(audio.size // 160, -1)
    for who, start, end in telephone_turns(root):
        truth[int(start * 100):int(end * 100)] = 0 if who == "spk1" else 1
    return audio, truth


def _clean(text: str) -> str:
    """A transcript line as words: no {noises}, ((unsure)) marks kept as their words, no
    trailing hyphens of cut-off words."""
    text = re.sub(r"\{[^}]*\}|<[^>]*>", " ", text)
    text = text.replace("((", " ").replace("))", " ").replace('"', " ")
    return " ".join(w.rstrip("-") for w in text.split() if w.rstrip("-"))


def recordings() -> list[tuple[str, Path, str]]:
    """(name, WAV, reference) of the real English recordings with their own transcripts: the
    telephone call as recorded, the LibriVox sentences one after another, and (when
    asterisk-core-sounds-en is installed, benchmarks/human_speech.py) three 2-minute runs of
    Asterisk's recorded prompts."""
    root = unpacked()
    call_ref = " ".join(_clean(t) for t in re.findall(
        r"<Sync[^>]*/>(.*?)</Turn>", (root / TR / "know.trs").read_text(encoding="latin-1"), re.S))
    reader = [decode_file(p) for p in sorted((root / PS / "librivox").glob("*.wav"))]
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    reader_audio = np.concatenate([x for a in reader for x in (a, gap)])
    reader_ref = " ".join(re.sub(r"</?s>|\(.*?\)", " ", line).strip()
                          for line in (root / PS / "librivox" / "transcription").read_text().splitlines())
    import soundfile as sf

    recorded = [("phone-call", conversation(root)[0], call_ref), ("librivox-reader", reader_audio, reader_ref)]
    import human_speech

    if human_speech.available():  # Asterisk's recorded prompts: two more minutes of one real voice each
        recorded += [(f"allison-{k}", *human_speech.meeting(k, seconds=120.0)) for k in (1, 2, 3)]
    out = []
    for name, audio, ref in recorded:
        wav = CACHE / f"{name}.wav"
        sf.write(str(wav), audio, SAMPLE_RATE)
        out.append((name, wav, " ".join(ref.split())))
    return out


SETS = {
    "tuning": [("reader",), ("cards",), ("reader", "cards"), ("reader", "cmu1"), ("cards", "cmu2"),
               ("reader", "cards", "cmu3")],
    "evaluation": [("phone-spk1",), ("phone-spk1", "phone-spk2"), ("reader", "phone-spk2"),
                   ("cards", "phone-spk1"), ("reader", "cards", "phone-spk1"), ("call",)],
}


def accuracy(truth: np.ndarray, frames: np.ndarray) -> float:
    """Labelled reference speech frames with the right voice, best one-to-one mapping."""
    n = min(truth.size, frames.size)
    t, f = truth[:n], frames[:n]
    mask = (t >= 0) & (f >= 0)
    if not mask.any():
        return float("nan")
    k = max(int(t.max()), int(f.max())) + 1
    return max(float(np.mean(np.array(perm)[f[mask]] == t[mask])) for perm in itertools.permutations(range(k)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", choices=sorted(SETS), action="append", dest="sets")
    args = p.parse_args()
    root = unpacked()
    pool = voices(root)
    print(f"{'set':<11} {'meeting':<32} {'s':>5} {'voices':>6} {'estimated':>9} {'acc given':>9} {'acc est':>8}")
    for set_name in args.sets or ["tuning", "evaluation"]:
        for seed, names in enumerate(SETS[set_name]):
            audio, truth = conversation(root) if names == ("call",) else build(pool, names, seed)
            k = 2 if names == ("call",) else len(names)
            windows = sp.embed_windows(audio)
            given = sp.frame_labels(windows, sp.label_windows(windows, k))
            estimated_labels = sp.label_windows(windows, None)
            estimated = sp.frame_labels(windows, estimated_labels)
            print(f"{set_name:<11} {'+'.join(names):<32} {audio.size / SAMPLE_RATE:5.1f} {k:6d} "
                  f"{len(set(estimated_labels.tolist())):9d} {accuracy(truth, given):9.2f} "
                  f"{accuracy(truth, estimated):8.2f}")


if __name__ == "__main__":
    main()
