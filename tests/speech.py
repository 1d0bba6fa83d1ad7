"""Test speech: espeak-ng renders text we keep as the reference.

Used by tests and benchmarks; the reference text is the ground truth for WER.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from scribe.audio import SAMPLE_RATE, decode_file

VOICES = ("en-us", "en-gb", "en-us+f3")
"""Three distinct voices for a synthetic meeting."""

MEETING_TURNS = [
    "Good morning everyone, thanks for joining the weekly planning meeting.",
    "Let's start with the budget review for the third quarter.",
    "Sales grew by twelve percent, but marketing costs went up as well.",
    "We should move part of the advertising money into the customer support team.",
    "I agree, support tickets doubled after the last product release.",
    "Maria will prepare a hiring plan for two new support engineers by Friday.",
    "Next topic is the office move, which is planned for the end of March.",
    "The new building has more meeting rooms and a much better kitchen.",
    "Please pack your desks before the weekend of the twenty eighth.",
    "Tom, can you book the moving company and confirm the date with facilities?",
    "Yes, I will call them tomorrow morning and send everyone the schedule.",
    "Finally, the customer conference is in six weeks and we still need speakers.",
    "I can give a talk about the new reporting features.",
    "Great, let's decide the final agenda at next week's meeting.",
    "Thanks everyone, that is all for today.",
]


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def synthesize(text: str, *, voice: str = "en-us", speed: int = 165) -> np.ndarray:
    """One utterance as 16 kHz mono float32."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text],
                       check=True, capture_output=True)
        return decode_file(wav)


@dataclass(frozen=True)
class Meeting:
    """A synthetic meeting: its audio, the reference text, and where each turn begins."""

    audio: np.ndarray
    reference: str
    turns: list[str]
    turn_starts: list[float]
    """Seconds into `audio` at which each of `turns` begins."""

    def begun_by(self, seconds: float) -> str:
        """The turns that had begun `seconds` into the audio: what a recording that long heard."""
        return " ".join(turn for turn, start in zip(self.turns, self.turn_starts) if start < seconds)


def meeting(turns: list[str] | None = None, *, gap_s: float = 0.7, repeat: int = 1,
            noise_dbfs: float | None = None, seed: int = 0) -> Meeting:
    """A multi-voice meeting: voices rotate per turn, each turn followed by `gap_s` of silence."""
    turns = (turns or MEETING_TURNS) * repeat
    gap = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.float32)
    pieces, starts, at = [], [], 0
    for n, text in enumerate(turns):
        voice = synthesize(text, voice=VOICES[n % len(VOICES)])
        starts.append(at / SAMPLE_RATE)
        pieces += [voice, gap]
        at += voice.size + gap.size
    audio = np.concatenate(pieces)
    if noise_dbfs is not None:
        audio = add_noise(audio, noise_dbfs, seed=seed)
    return Meeting(audio, " ".join(turns), turns, starts)


def meeting_audio(turns: list[str] | None = None, *, gap_s: float = 0.7, repeat: int = 1,
                  noise_dbfs: float | None = None, seed: int = 0) -> tuple[np.ndarray, str]:
    """`meeting`'s audio and reference text."""
    m = meeting(turns, gap_s=gap_s, repeat=repeat, noise_dbfs=noise_dbfs, seed=seed)
    return m.audio, m.reference


def add_noise(audio: np.ndarray, dbfs: float, *, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(audio.size).astype(np.float32) * (10 ** (dbfs / 20))
    return np.clip(audio + noise, -1.0, 1.0).astype(np.float32)


def write_wav(audio: np.ndarray, path: Path, rate: int = SAMPLE_RATE) -> Path:
    sf.write(str(path), audio, rate, subtype="PCM_16")
    return path


def pcm16_at(audio: np.ndarray, rate: int) -> bytes:
    """16 kHz float32 audio as little-endian PCM16 bytes at `rate`, through PyAV's resampler
    (what a realtime client streams: OpenAI's sockets take 24 kHz)."""
    import av

    frame = av.AudioFrame.from_ndarray((audio[None, :] * 32767).astype(np.int16), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    out = [f.to_ndarray().reshape(-1) for f in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.concatenate(out).astype("<i2").tobytes()
