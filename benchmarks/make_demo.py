"""Generate the lab's built-in demo recording: scribe/demo/meeting.ogg + meeting.txt.

    python3 benchmarks/make_demo.py

A three-voice espeak-ng meeting (tests/speech.py's MEETING_TURNS, ~70 s), with
light background noise so the hallucination guard and pause detection see a
realistic floor, saved as 16 kHz mono Ogg/Opus (~24 kbit/s, well under 1 MB;
PyAV decodes it, no ffmpeg needed). The reference is the text that was spoken.
"""

from __future__ import annotations

import sys
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import speech  # noqa: E402

OUT = ROOT / "scribe" / "demo"


def main() -> None:
    audio, reference = speech.meeting_audio(noise_dbfs=-55.0, seed=6)
    OUT.mkdir(parents=True, exist_ok=True)
    sf.write(str(OUT / "meeting.ogg"), audio, 16_000, format="OGG", subtype="OPUS")
    (OUT / "meeting.txt").write_text(reference + "\n", encoding="utf-8")
    size = (OUT / "meeting.ogg").stat().st_size
    print(f"wrote {OUT / 'meeting.ogg'} ({audio.size / 16_000:.1f} s, {size / 1024:.0f} KiB) and meeting.txt")


if __name__ == "__main__":
    main()
