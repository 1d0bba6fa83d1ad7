"""Realistic conversational test recordings: the tuning set and the evaluation set.

Each conversation is rendered by espeak-ng from a script we keep as the reference:
several voices at different speeds and pitches, turns that overlap the previous
one, turns cut off mid-sentence by the next speaker, background noise (pink noise
from sox), and a speaker far from the mic (quieter and reverberant, via sox).

The TUNING conversations are the only ones any rule or parameter is chosen on;
the EVALUATION conversations (different text, speakers, noise seeds) are only
measured. Rendered files are cached under /tmp/scribe-bench/conversations/.

    python3 benchmarks/conversations.py [--set tuning|evaluation] [--out DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import speech  # noqa: E402

from scribe.audio import SAMPLE_RATE, decode_file  # noqa: E402

CACHE = Path("/tmp/scribe-bench/conversations")


@dataclass(frozen=True)
class Speaker:
    voice: str
    speed: int = 165
    pitch: int = 50
    far: bool = False
    """Far from the mic: -12 dB and a reverberant room (sox reverb)."""


@dataclass(frozen=True)
class Turn:
    who: str
    text: str
    overlap_s: float = 0.0
    """Starts this long before the previous turn ends (people talking over each other)."""
    cut_after_words: int | None = None
    """The speaker is interrupted: only the first N words are said (and in the reference)."""


@dataclass(frozen=True)
class Conversation:
    name: str
    speakers: dict[str, Speaker]
    turns: tuple[Turn, ...]
    noise_dbfs: float | None = None
    seed: int = 0


TUNING = (
    Conversation("tune-standup", {
        "a": Speaker("en-us", 170, 45), "b": Speaker("en-gb+f3", 160, 60),
        "c": Speaker("en-us+m3", 175, 40, far=True)}, (
        Turn("a", "Morning all, let's keep the standup short because the release is today."),
        Turn("b", "Sure. Yesterday I finished the login page and fixed two bugs in the search box."),
        Turn("c", "I was reviewing the database migration and I think we need another test", cut_after_words=9),
        Turn("a", "Wait, which migration, the one for the invoices table?", overlap_s=0.4),
        Turn("c", "Yes, the invoices one. It drops a column that the reports still read."),
        Turn("b", "Then we should hold it until Thursday and tell the finance team.", overlap_s=0.3),
        Turn("a", "Agreed. Priya, please write that down and send a note after lunch."),
        Turn("b", "Will do. Anything else before we go?"),
        Turn("c", "Only that the staging server is slow again, I restarted it twice."),
        Turn("a", "Okay, open a ticket for it and let's talk tomorrow."),
    ), noise_dbfs=-42, seed=11),
    Conversation("tune-design", {
        "a": Speaker("en-gb", 160, 55), "b": Speaker("en-us+f2", 170, 65, far=True)}, (
        Turn("a", "I looked at the new dashboard mockups over the weekend."),
        Turn("b", "And what did you think of the colour scheme? We changed it after the survey."),
        Turn("a", "The colours are fine, but the charts are far too small on a laptop screen", cut_after_words=11),
        Turn("b", "Oh, we can make them bigger, that is an easy fix.", overlap_s=0.5),
        Turn("a", "Also the export button is hidden under the settings menu, nobody will find it."),
        Turn("b", "Good point. I will move it next to the date filter."),
        Turn("a", "Great, then I think we can show it to the customer on Monday."),
    ), noise_dbfs=-38, seed=12),
)

EVALUATION = (
    Conversation("eval-planning", {
        "a": Speaker("en-us", 165, 50), "b": Speaker("en-gb-x-rp", 155, 40),
        "c": Speaker("en-us+f4", 175, 70, far=True)}, (
        Turn("a", "Thanks for coming, the goal today is to agree on the budget for next year."),
        Turn("b", "I sent everyone the spreadsheet on Tuesday, did you all get it?"),
        Turn("c", "I got it, but the travel numbers look wrong to me", overlap_s=0.2),
        Turn("b", "Wrong how? They came straight from the accounting system", cut_after_words=5),
        Turn("c", "They count the conference twice, once in March and once in April.", overlap_s=0.5),
        Turn("a", "Let's fix that first. Ben, can you check it with accounting today?"),
        Turn("b", "Yes, I will call them this afternoon and update the sheet."),
        Turn("c", "And we still need a number for the new laptops, we have six people waiting."),
        Turn("a", "Put in eight, two more people join in the autumn."),
        Turn("b", "Eight laptops, noted. Then the total goes up by about twelve thousand", cut_after_words=7),
        Turn("c", "That is still under the limit we were given.", overlap_s=0.4),
        Turn("a", "Good. Send me the final version by Friday and I will present it to the board."),
    ), noise_dbfs=-40, seed=21),
    Conversation("eval-support", {
        "a": Speaker("en-gb+m4", 170, 45), "b": Speaker("en-us+f3", 165, 60)}, (
        Turn("a", "We had forty support tickets about the mobile app this week."),
        Turn("b", "Most of them are about the password reset email, right?"),
        Turn("a", "Right, the email arrives after ten minutes or not at all."),
        Turn("b", "I think the mail provider is throttling us since we moved the servers", cut_after_words=8),
        Turn("a", "That would explain it, the move was exactly two weeks ago.", overlap_s=0.4),
        Turn("b", "I will ask them to raise our limit and add a second provider as a backup."),
        Turn("a", "Please do, and let's reply to the customers with a short apology."),
    ), noise_dbfs=-36, seed=22),
    Conversation("eval-hiring", {
        "a": Speaker("en-us+m7", 160, 35, far=True), "b": Speaker("en-gb", 170, 50),
        "c": Speaker("en-us+f2", 180, 65)}, (
        Turn("b", "We interviewed three candidates for the data engineer role."),
        Turn("c", "The second one was the strongest, she knew the streaming tools really well."),
        Turn("a", "I agree, although her salary expectation is quite high", overlap_s=0.3),
        Turn("b", "How high are we talking about?", overlap_s=0.3),
        Turn("a", "About ten percent above our range, but she could start next month."),
        Turn("c", "I would rather pay a bit more than wait another quarter", cut_after_words=6),
        Turn("b", "Let me ask the director if we can stretch the range.", overlap_s=0.4),
        Turn("a", "Fine, and let's give the other two a friendly answer this week."),
    ), noise_dbfs=-44, seed=23),
    Conversation("eval-quiet-room", {
        "a": Speaker("en-us", 175, 55), "b": Speaker("en-gb-scotland", 160, 45, far=True)}, (
        Turn("a", "Can you hear me? The microphone in this room is at the other end of the table."),
        Turn("b", "I can hear you fine, but I think I sound quite far away."),
        Turn("a", "A little, it is okay. Let's go through the test plan for the payment service."),
        Turn("b", "We have unit tests for the refunds and an end to end test for the checkout."),
        Turn("a", "What about the currency conversion? That broke last time", cut_after_words=5),
        Turn("b", "Yes, I added a test with euros, pounds and yen yesterday.", overlap_s=0.3),
        Turn("a", "Perfect. Then we can ship it on Wednesday as planned."),
    ), noise_dbfs=None, seed=24),
)

SETS = {"tuning": TUNING, "evaluation": EVALUATION}


def render(conv: Conversation) -> tuple[np.ndarray, str]:
    """The conversation's audio (16 kHz mono float32) and its reference text."""
    rng = np.random.default_rng(conv.seed)
    placed: list[tuple[int, np.ndarray]] = []
    words: list[str] = []
    cursor = 0
    for turn in conv.turns:
        text = turn.text if turn.cut_after_words is None else " ".join(turn.text.split()[:turn.cut_after_words])
        pcm = _voice(text, conv.speakers[turn.who])
        pause = 0.0 if turn.overlap_s else float(rng.uniform(0.25, 0.9))
        start = max(0, cursor + int((pause - turn.overlap_s) * SAMPLE_RATE))
        placed.append((start, pcm))
        cursor = max(cursor, start + pcm.size)
        words.append(text)
    audio = np.zeros(cursor + SAMPLE_RATE // 2, dtype=np.float32)
    for start, pcm in placed:
        audio[start:start + pcm.size] += pcm
    if conv.noise_dbfs is not None:
        audio += _pink_noise(audio.size, conv.noise_dbfs, conv.seed)
    return np.clip(audio, -1.0, 1.0).astype(np.float32), " ".join(words)


def _voice(text: str, speaker: Speaker) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        dry, wet = Path(tmp) / "dry.wav", Path(tmp) / "wet.wav"
        subprocess.run(["espeak-ng", "-v", speaker.voice, "-s", str(speaker.speed), "-p", str(speaker.pitch),
                        "-w", str(dry), text], check=True, capture_output=True)
        if not speaker.far:
            return decode_file(dry) * 0.8
        # A far speaker: a reverberant room (sox reverb: reverberance, HF damping, room
        # scale) and 12 dB quieter.
        subprocess.run(["sox", str(dry), str(wet), "reverb", "70", "50", "100", "gain", "-12"],
                       check=True, capture_output=True)
        return decode_file(wet)


def _pink_noise(n: int, dbfs: float, seed: int) -> np.ndarray:
    """Pink (1/f) noise at an RMS of `dbfs`: closer to room noise than white noise."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    noise *= 10 ** (dbfs / 20) / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)
    return noise.astype(np.float32)


def rendered(set_name: str, folder: Path = CACHE) -> list[tuple[str, Path, str]]:
    """(name, WAV path, reference) for every conversation of a set, rendering what is missing."""
    if not speech.have_espeak():
        raise SystemExit("espeak-ng is needed to render the conversations")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for conv in SETS[set_name]:
        wav, txt = folder / f"{conv.name}.wav", folder / f"{conv.name}.txt"
        if not wav.is_file() or not txt.is_file():
            audio, reference = render(conv)
            speech.write_wav(audio, wav)
            txt.write_text(reference, encoding="utf-8")
        out.append((conv.name, wav, txt.read_text(encoding="utf-8")))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", choices=sorted(SETS), action="append", dest="sets")
    p.add_argument("--out", type=Path, default=CACHE)
    args = p.parse_args()
    for set_name in args.sets or sorted(SETS):
        for name, wav, reference in rendered(set_name, args.out):
            seconds = decode_file(wav).size / SAMPLE_RATE
            print(f"{set_name:<10} {name:<16} {seconds:5.1f} s  {len(reference.split()):4d} words  {wav}")


if __name__ == "__main__":
    main()
