"""How many real-time sessions the local Whisper model sustains on this machine.

1. Renders a ~70 s three-voice espeak-ng meeting (tests/speech.py) and loops it.
2. Throughput probe: `--fast` bench with the local model; audio minutes per wall
   minute is the number of sessions the workers can keep up with (at steady state).
3. Confirmation: a real-time bench at that many sessions (rounded down, minus
   `--margin`), checking the backlog stays bounded (a few chunks, not growing).

    python3 benchmarks/local_capacity.py [--model base] [--concurrency 2] [--probe-minutes 4] [--minutes 3]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from scribe import backends  # noqa: E402
from scribe.bench import BenchConfig, format_report, run_bench  # noqa: E402


def speech_file(folder: Path) -> Path:
    import speech

    if not speech.have_espeak():
        raise SystemExit("espeak-ng is needed to render speech for the local model")
    audio, _reference = speech.meeting_audio()
    return speech.write_wav(audio, folder / "meeting.wav")


def progress(line: str) -> None:
    print(f"\r{line:<90}", end="", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en", help="local model (a registry name, see `models`)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--probe-sessions", type=int, default=4)
    parser.add_argument("--probe-minutes", type=float, default=4.0)
    parser.add_argument("--minutes", type=float, default=3.0, help="real-time confirmation length")
    parser.add_argument("--margin", type=int, default=0, help="sessions below the probe's figure")
    parser.add_argument("--sessions", type=int, help="skip the probe; confirm this many sessions")
    parser.add_argument("--probe-only", action="store_true", help="stop after the throughput probe")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scribe-local-") as folder:
        audio = speech_file(Path(folder))
        base = BenchConfig(backend=backends.DEFAULT, concurrency=args.concurrency, audio_path=audio,
                           whisper_model=args.model)
        sessions = args.sessions
        if sessions is None:
            probe = run_bench(_with(base, sessions=args.probe_sessions, minutes=args.probe_minutes,
                                    speed=math.inf), progress)
            print("\n" + format_report(probe) + "\n", file=sys.stderr)
            print(json.dumps({"probe": json.loads(probe.to_json())}))
            sessions = max(1, math.floor(probe.audio_min_per_wall_min) - args.margin)
            if args.probe_only:
                return 0
        confirm = run_bench(_with(base, sessions=sessions, minutes=args.minutes, speed=1.0), progress)
        print("\n" + format_report(confirm), file=sys.stderr)
        print(json.dumps({"realtime": json.loads(confirm.to_json())}))
    return 0


def _with(base: BenchConfig, **changes) -> BenchConfig:
    from dataclasses import replace

    return replace(base, **changes)


if __name__ == "__main__":
    raise SystemExit(main())
