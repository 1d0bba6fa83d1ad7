"""Peak memory of a long upload: a FLAC of N hours through `python -m scribe transcribe`.

Writes N hours of 16 kHz silence as FLAC (about 190 KB per hour: tiny files can
decode to hours, which is what SCRIBE_MAX_AUDIO_HOURS guards against), runs the CLI
on it in a child process with SCRIBE_MAX_AUDIO_HOURS raised to allow it, and
reports the child's peak RSS (getrusage), wall time and chunk count. The file is
streamed: decode, chunk and store never hold more than a block and a chunk.

    .venv/bin/python benchmarks/long_upload.py --hours 10 --backend local
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scribe import backends  # noqa: E402


def write_silence(path: Path, hours: float) -> None:
    block = np.zeros(16_000 * 600, dtype=np.int16)
    left = int(hours * 3600 * 16_000)
    with sf.SoundFile(str(path), "w", samplerate=16_000, channels=1, format="FLAC", subtype="PCM_16") as out:
        while left > 0:
            out.write(block[:left])
            left -= min(left, block.size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=10.0)
    parser.add_argument("--backend", default=backends.DEFAULT, choices=backends.benched())
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scribe-long-upload-"))
    try:
        audio = work / f"silence-{args.hours:g}h.flac"
        write_silence(audio, args.hours)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCRIBE_DATA_DIR": str(work / "data"),
               "SCRIBE_MAX_AUDIO_HOURS": str(args.hours + 1)}
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "scribe", "transcribe", str(audio), "--backend", args.backend,
                               "--output", str(work / "out.txt")], cwd=ROOT, env=env, capture_output=True,
                              text=True)
        wall = time.monotonic() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        summary = [line for line in done.stderr.splitlines() if line.startswith("session ")]
        print(json.dumps({"hours": args.hours, "file_mb": round(audio.stat().st_size / 2**20, 2),
                          "backend": args.backend, "exit": done.returncode, "peak_rss_mb": round(peak_mb, 1),
                          "wall_s": round(wall, 1), "summary": summary[-1] if summary else done.stderr[-300:],
                          "load_average": os.getloadavg()}, indent=2))
        return done.returncode
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
