"""Team vocabulary: term recall on speech with rare names, WER on speech without them.

    HF_HUB_OFFLINE=1 python3 benchmarks/bench_vocabulary.py [--set tune|eval] [--modes all|two] \
        [--model tiny.en] [--model base]

Each way of giving Whisper the vocabulary (MODES) transcribes:
- `terms`: speech holding rare names and product words; term recall = the share of the
  terms' occurrences written exactly (any case). espeak-ng sentences (TUNE_TERM_SENTENCES read by
  en-us; EVAL_TERM_SENTENCES, other sentences with the same terms, read by en-gb and en-us+f3),
  and the real recorded prompts of Debian's asterisk-core-sounds-en-wav of at most 40 words that
  name "Asterisk", "Digium" or "DAHDI" (one professional speaker, 8 kHz telephone band; alternate
  prompts to each set);
- `plain`: speech holding none of the terms; WER (jiwer, Whisper's normaliser) with and without
  the vocabulary. Tune: the meeting sentences the tests use (espeak-ng en-us) and the first 30
  real asterisk prompts of 6+ words. Eval: the next 30 prompts' texts read by espeak-ng en-gb and
  en-us+f3, those 30 real prompts, and pocketsphinx-testdata's real recordings (five LibriVox
  sentences, five card-name utterances).
The vocabulary given is every term below (plus the Asterisk ones), as a team would keep it.
Decoding is as the chunk lane's: language en, VAD filter, no previous-text conditioning.
"cost" is decoding time against decoding without a vocabulary, measured in the same run.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import speech  # noqa: E402

from scribe.audio import decode_file  # noqa: E402
from scribe.transcribers.local import load_model, to_segments  # noqa: E402
from scribe.vocabulary import keep_term_segments, whisper_prompt  # noqa: E402
from scribe.wer import word_error_rate as wer  # noqa: E402

TUNE_TERM_SENTENCES = [
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
EVAL_TERM_SENTENCES = [
    "The Zephyrix release notes were written by Aoife.",
    "DuckDB answered the report query in under a second.",
    "Can Tadhg take the Quorvia support rotation next week?",
    "Siobhan asked whether Kubeflow can run on our own servers.",
    "The Dramatiq queue was empty when Okonkwo checked it.",
    "Nguyen will send the Zephyrix numbers after lunch.",
    "We tried Kubeflow before we moved everything to Dramatiq.",
    "Aoife thinks Quorvia should export straight to DuckDB.",
    "Okonkwo booked the room and Tadhg brought the slides.",
    "Thanks to Siobhan and Nguyen for the Quorvia demo.",
]
TERMS = ["Siobhan", "Zephyrix", "Okonkwo", "Dramatiq", "DuckDB", "Nguyen", "Quorvia", "Aoife", "Tadhg",
         "Kubeflow"]
REAL_TERMS = ["Asterisk", "Digium", "DAHDI"]
EN_SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
EN_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
SET_VOICES = {"tune": ("en-us",), "eval": ("en-gb", "en-us+f3")}
QUALITY = {"compression_ratio": 2.4, "avg_logprob": -1.0}
"""Whisper's own thresholds for a failed decode (its temperature fallback uses these)."""

Item = tuple[np.ndarray, str]


def asterisk_prompts() -> tuple[list[Item], list[Item]]:
    """(prompts naming a real term, plain prompts of 6+ words) as (audio, text)."""
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
        elif len(text.split()) >= 6 and len(plain) < 60:
            plain.append((decode_file(path), text))
    return with_terms, plain


def pocketsphinx_recordings() -> list[Item]:
    """The LibriVox sentences and card names of pocketsphinx-testdata, with their transcripts."""
    items = []
    for folder, listing in (("librivox", "transcription"), ("cards", "cards.transcription")):
        path = POCKETSPHINX / folder / listing
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            found = re.match(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
            if found:
                items.append((decode_file(POCKETSPHINX / folder / f"{found[2]}.wav"), found[1].strip()))
    return items


def material(name: str) -> dict[str, list[Item]]:
    """The four kinds of speech of one set."""
    real_terms, real_plain = asterisk_prompts()
    voices = SET_VOICES[name]
    if name == "tune":
        synth_terms = [(speech.synthesize(t, voice=v), t) for v in voices for t in TUNE_TERM_SENTENCES]
        synth_plain = [(speech.synthesize(t, voice=v), t) for v in voices for t in speech.MEETING_TURNS]
        return {"terms espeak": synth_terms, "terms real": real_terms[0::2],
                "plain espeak": synth_plain, "plain real": real_plain[:30]}
    synth_terms = [(speech.synthesize(t, voice=v), t) for v in voices for t in EVAL_TERM_SENTENCES]
    synth_plain = [(speech.synthesize(t, voice=v), t) for v in voices for _, t in real_plain[30:60]]
    return {"terms espeak": synth_terms, "terms real": real_terms[1::2],
            "plain espeak": synth_plain, "plain real": real_plain[30:60] + pocketsphinx_recordings()}


class Decoder:
    """One model's decodes of one clip, each way decoded once and timed (the modes share them)."""

    def __init__(self, model: Any, vocabulary: list[str]) -> None:
        self.model, self.vocabulary = model, vocabulary
        self.seconds: dict[str, float] = {}
        self._cache: dict[tuple[int, str], list[Any]] = {}

    def raw(self, audio: np.ndarray, way: str) -> list[Any]:
        key = (id(audio), way)
        if key not in self._cache:
            options = {"list": {"hotwords": whisper_prompt(self.vocabulary)},
                       "spaces": {"hotwords": " ".join(self.vocabulary)},
                       "prompt": {"initial_prompt": whisper_prompt(self.vocabulary)}}.get(way, {})
            started = time.perf_counter()
            segments, _ = self.model.transcribe(audio, language="en", vad_filter=True, word_timestamps=True,
                                                condition_on_previous_text=False, **options)
            self._cache[key] = list(segments)
            self.seconds[way] = self.seconds.get(way, 0.0) + time.perf_counter() - started
        return self._cache[key]


def _text(segments: list[Any]) -> str:
    return " ".join(s.text.strip() for s in segments)


def _fallback(d: Decoder, audio: np.ndarray) -> str:
    biased = d.raw(audio, "list")
    failed = any(s.compression_ratio > QUALITY["compression_ratio"] or s.avg_logprob < QUALITY["avg_logprob"]
                 for s in biased)
    return _text(d.raw(audio, "none") if failed else biased)


def _keep_terms(d: Decoder, audio: np.ndarray) -> str:
    """Every change that writes a term (no support asked)."""
    merged = keep_term_segments(to_segments(d.raw(audio, "none")), to_segments(d.raw(audio, "list")),
                                d.vocabulary, slack=None)
    return " ".join(s.text for s in merged)


def _logprob(segments: list[Any]) -> float:
    return min((s.avg_logprob for s in segments), default=0.0)


def _confident(d: Decoder, audio: np.ndarray, slack: float) -> str:
    """The merge only when the biased decode's worst segment log-probability is at most
    `slack` below the plain decode's (else the plain decode)."""
    plain, biased = d.raw(audio, "none"), d.raw(audio, "list")
    return _keep_terms(d, audio) if _logprob(biased) >= _logprob(plain) - slack else _text(plain)


def _sure_words(d: Decoder, audio: np.ndarray, least: float) -> str:
    """The merge only when every biased word that is (part of) a term has probability >= `least`."""
    keys = {re.sub(r"[^\w]", "", t.lower()) for t in d.vocabulary}
    probs = [w.probability for s in d.raw(audio, "list") for w in (s.words or ())
             if re.sub(r"[^\w]", "", w.word.lower()) in keys]
    return _keep_terms(d, audio) if min(probs, default=1.0) >= least else _text(d.raw(audio, "none"))


MODES: dict[str, tuple[Callable[[Decoder, np.ndarray], str], tuple[str, ...]]] = {
    "none": (lambda d, a: _text(d.raw(a, "none")), ("none",)),
    "hotwords, list 'A, B, C.'": (lambda d, a: _text(d.raw(a, "list")), ("list",)),
    "hotwords, words 'A B C'": (lambda d, a: _text(d.raw(a, "spaces")), ("spaces",)),
    "initial_prompt, list": (lambda d, a: _text(d.raw(a, "prompt")), ("prompt",)),
    "hotwords, plain decode when it looks failed": (_fallback, ("list",)),
    "both decodes, keep only changes that write a term": (_keep_terms, ("list", "none")),
    **{f"keep term changes if biased logprob >= plain - {t}":
       ((lambda t: lambda d, a: _confident(d, a, t))(t), ("list", "none")) for t in (0.0, 0.1, 0.2)},
    **{f"keep term changes if term word probability >= {t}":
       ((lambda t: lambda d, a: _sure_words(d, a, t))(t), ("list", "none")) for t in (0.3, 0.5, 0.7)},
}
"""Each way: how it makes a clip's text from the shared decodes, and which decodes it costs (the
fallback's own plain decodes, only for clips that look failed, are not counted)."""
TWO_DECODES = ["none", "hotwords, list 'A, B, C.'", "hotwords, plain decode when it looks failed",
               "both decodes, keep only changes that write a term"]
"""`--modes two`: the ways made from the decodes without and with the hotwords list only."""


def recall(items: list[Item], hyps: list[str], terms: list[str]) -> tuple[int, int]:
    found = total = 0
    for (_, ref), hyp in zip(items, hyps):
        for term in terms:
            n = len(re.findall(rf"\b{re.escape(term)}\b", ref, re.I))
            total += n
            found += min(n, len(re.findall(rf"\b{re.escape(term)}\b", hyp, re.I)))
    return found, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", choices=sorted(SET_VOICES), default="tune")
    parser.add_argument("--model", action="append")
    parser.add_argument("--modes", choices=["all", "two", "rules"], default="all",
                        help="two: only the ways that need no decode beyond none and the hotwords list; "
                             "rules: those and the rules that ask a term change for support")
    args = parser.parse_args()
    modes = {"two": TWO_DECODES, "rules": TWO_DECODES[:2] + [m for m in MODES if m.startswith("keep") or
                                                               m.startswith("both")]}.get(args.modes, list(MODES))
    vocabulary = TERMS + REAL_TERMS
    sets = material(args.set)
    print(f"set {args.set}: " + ", ".join(f"{k} {len(v)} clips" for k, v in sets.items()))
    print("| model | vocabulary given as | term recall, espeak | term recall, real | "
          "WER plain espeak | WER plain real | cost |")
    print("|---|---|---|---|---|---|---|")
    for name in args.model or ["tiny.en"]:
        decoder = Decoder(load_model(name), vocabulary)
        for mode in modes:
            make, ways = MODES[mode]
            cells = []
            for kind, terms in (("terms espeak", TERMS), ("terms real", REAL_TERMS)):
                hyps = [make(decoder, a) for a, _ in sets[kind]]
                found, total = recall(sets[kind], hyps, terms)
                cells.append(f"{found}/{total} ({100 * found / max(total, 1):.0f} %)")
            for kind in ("plain espeak", "plain real"):
                hyps = [make(decoder, a) for a, _ in sets[kind]]
                cells.append(f"{wer(' '.join(t for _, t in sets[kind]), ' '.join(hyps)):.3f}")
            cost = sum(decoder.seconds[w] for w in ways) / decoder.seconds["none"]
            print(f"| {name} | {mode} | " + " | ".join(cells) + f" | {cost:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
