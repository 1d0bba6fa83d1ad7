"""Write test audio in many container formats with PyAV (no ffmpeg binary needed)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

FORMATS = {  # suffix: (codec, container format, sample rate)
    "wav": ("pcm_s16le", "wav", 16000),
    "flac": ("flac", "flac", 48000),
    "mp3": ("mp3", "mp3", 44100),
    "m4a": ("aac", "mp4", 48000),
    "ogg": ("libopus", "ogg", 48000),
    "webm": ("libopus", "webm", 48000),
}


def encode(samples: np.ndarray, path: Path, rate: int = 16000) -> Path:
    """Encode 16 kHz mono float32 samples to the format named by the path's suffix."""
    codec, fmt, out_rate = FORMATS[path.suffix.lstrip(".")]
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=out_rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((samples[None, :] * 32767).astype(np.int16),
                                           format="s16", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=out_rate)
        for out in [*resampler.resample(frame), *resampler.resample(None), None]:
            for packet in stream.encode(out):
                container.mux(packet)
    return path
