"""Team vocabulary: term recall on speech with rare names, WER on speech without them.

    HF_HUB_OFFLINE=1 python3 benchmarks/bench_vocabulary.py [--model tiny.en] [--model base]

Each way of giving Whisper the vocabulary (none, faster-whisper's `hotwords`, the
`initial_prompt`, both) transcribes:
- `terms`: espeak-ng sentences holding rare names and product words (TERM_SENTENCES), and
  the real recorded prompts of Debian's asterisk-core-sounds-en-wav of at most 40 words that name
  "Asterisk", "Digium" or "DAHDI" (one professional speaker, 8 kHz telephone band); term recall = the
  share of the terms' occurrences written exactly (any case);
- `plain`: speech holding none of the terms, espeak-ng (the meeting sentences the tests
  use) and the first 30 real recorded prompts of 6+ words; WER (jiwer, normalised) with and without the
  vocabulary, to check it does not make ordinary speech worse.
The vocabulary given is every term below (plus the Asterisk ones), as a team would keep it.
Decoding is as the chunk lane's: language en, VAD filter, no previous-text conditioning.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import speech  # noqa: E402

from scribe.audio import decode_file  # noqa: E402
from scribe.transcribers.local import load_model  # noqa: E402
from scribe.vocabulary import whisper_prompt  # noqa: E402
from scribe.wer import word_error_rate as wer  # noqa: E402

TERM_SENTENCES = [
    "Siobhan will present the Zephyrix roadmap on Monday.",
    "Please ask Okonkwo to review the Dramatiq worker change.",
    "We moved the analytics store to DuckDB last sprint.",
    "Nguyen says the Quorvia launch slips by one week.",
    "Aoife and Tadhg joined the Zephyrix team in March.",
    "Dramatiq retries the job three times before it gives up.",
    "The Quorvia dashboard reads straight from DuckDB.",
    "Okonkwo and Siobhan own the billing migration.",
    "Tadhg found the bug in the Kubeflow pipeline.",
    "Nguyen and Aoife will demo Kubeflow on Friday.",
]
TERMS = ["Siobhan", "Zephyrix", "Okonkwo", "Dramatiq", "DuckDB", "Nguyen", "Quorvia", "Aoife", "Tadhg",
         "Kubeflow"]
REAL_TERMS = ["Asterisk", "Digium", "DAHDI"]
EN_SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
EN_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
MODES = {"none": {}, "hotwords": {"hotwords": True}, "prompt": {"initial_prompt": True},
         "both": {"hotwords": True, "initial_prompt": True}}


def real_prompts() -> tuple[list[tuple[np.ndarray, str]], list[tuple[np.ndarray, str]]]:
    """(prompts naming a real term, 40 plain prompts of 6+ words) as (audio, text)."""
    if not EN_TEXT.exists():
        return [], []
    with_terms, plain = [], []
    for line in gzip.open(EN_TEXT, "rt", encoding="utf-8", errors="replace"):
        name, _, text = line.partition(":")
        path = EN_SOUNDS / f"{name.strip()}.wav"
        text = text.strip()
        if not path.exists() or "[" in text or not text:
            continue
        if any(re.search(rf"\b{t}\b", text, re.I) for t in REAL_TERMS):
            if len(text.split()) <= 40:  # the long demo prompts would cost most of the run
                with_terms.append((decode_file(path), text))
        elif len(text.split()) >= 6 and len(plain) < 30:
            plain.append((decode_file(path), text))
    return with_terms, plain


def transcribe(model, audio: np.ndarray, mode: str, vocabulary: list[str]) -> str:
    options = {k: whisper_prompt(vocabulary) for k in MODES[mode]}
    segments, _ = model.transcribe(audio, language="en", vad_filter=True, condition_on_previous_text=False,
                                   **options)
    return " ".join(s.text.strip() for s in segments)


def recall(items: list[tuple[np.ndarray, str]], hyps: list[str], terms: list[str]) -> tuple[int, int]:
    found = total = 0
    for (_, ref), hyp in zip(items, hyps):
        for term in terms:
            n = len(re.findall(rf"\b{re.escape(term)}\b", ref, re.I))
            total += n
            found += min(n, len(re.findall(rf"\b{re.escape(term)}\b", hyp, re.I)))
    return found, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append")
    args = parser.parse_args()
    vocabulary = TERMS + REAL_TERMS
    synth_terms = [(speech.synthesize(t, voice="en-us"), t) for t in TERM_SENTENCES]
    synth_plain = [(speech.synthesize(t, voice="en-us"), t) for t in speech.MEETING_TURNS]
    real_terms, real_plain = real_prompts()
    print("| model | vocabulary given as | term recall, espeak | term recall, real | "
          "WER plain espeak | WER plain real |")
    print("|---|---|---|---|---|---|")
    for name in args.model or ["tiny.en"]:
        model = load_model(name)
        for mode in MODES:
            cells = []
            for items, terms in ((synth_terms, TERMS), (real_terms, REAL_TERMS)):
                hyps = [transcribe(model, a, mode, vocabulary) for a, _ in items]
                found, total = recall(items, hyps, terms)
                cells.append(f"{found}/{total} ({100 * found / max(total, 1):.0f} %)")
            for items in (synth_plain, real_plain):
                hyps = [transcribe(model, a, mode, vocabulary) for a, _ in items]
                cells.append(f"{wer(' '.join(t for _, t in items), ' '.join(hyps)):.3f}")
            print(f"| {name} | {mode} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
