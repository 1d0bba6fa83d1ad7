"""Real human speech with its reference text, for the live benchmarks.

Two recorded sources from Debian packages (benchmark-only; `apt-get install
pocketsphinx-testdata asterisk-core-sounds-en asterisk-core-sounds-en-wav`):
- pocketsphinx-testdata: five sentences of a LibriVox reading ("Sense and Sensibility",
  public domain), 25 s of one reader's long, pause-free sentences;
- asterisk-core-sounds-en(-wav): the Asterisk prompts recorded by Allison Smith (one
  professional speaker, 8 kHz telephone band), with their text in core-sounds-en.txt.

`meeting(k)` strings whole utterances together with 0.5-0.9 s pauses: k = 0 is the LibriVox
reader followed by the long prompts, k > 0 other long prompts in another order (so
simultaneous sessions say different things). Nothing here was tuned on: the live lanes'
settings were chosen on espeak-ng speech and other recordings.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np

from scribe.audio import SAMPLE_RATE, decode_file

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
ALLISON = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ALLISON_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
MIN_WORDS = 12
"""Prompts of at least this many words: sentences, not the one-word menu prompts."""


def available() -> bool:
    return (LIBRIVOX / "transcription").is_file() and ALLISON_TEXT.is_file() and ALLISON.is_dir()


def librivox() -> list[tuple[np.ndarray, str]]:
    """The reader's five sentences, in book order, as (16 kHz audio, text)."""
    out = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        match = re.match(r"<s>\s*(.*?)\s*</s>\s*\((\S+)\)", line)
        if match and (LIBRIVOX / f"{match[2]}.wav").is_file():
            out.append((decode_file(LIBRIVOX / f"{match[2]}.wav"), match[1]))
    return out


def allison_prompts() -> list[tuple[np.ndarray, str]]:
    """Allison's prompts of MIN_WORDS+ words without sound cues ("[beep]"), in file order."""
    out = []
    for line in gzip.open(ALLISON_TEXT, "rt", encoding="utf-8", errors="replace"):
        name, _, text = line.partition(":")
        text = text.strip()
        path = ALLISON / f"{name.strip()}.wav"
        if path.is_file() and text and "[" not in text and len(text.split()) >= MIN_WORDS:
            out.append((decode_file(path), text))
    return out


def meeting(k: int, *, seconds: float = 70.0, seed: int = 0) -> tuple[np.ndarray, str]:
    """About `seconds` of real speech (whole utterances) and its text; see the module doc."""
    rng = np.random.default_rng(seed + k)
    prompts = allison_prompts()
    order = list(rng.permutation(len(prompts)))
    pieces = (librivox() if k == 0 else []) + [prompts[i] for i in order]
    audio, texts, total = [], [], 0.0
    for clip, text in pieces:
        if total >= seconds:
            break
        gap = np.zeros(int(rng.uniform(0.5, 0.9) * SAMPLE_RATE), np.float32)
        audio += [clip.astype(np.float32), gap]
        texts.append(text)
        total += (clip.size + gap.size) / SAMPLE_RATE
    return np.concatenate(audio), " ".join(texts)
