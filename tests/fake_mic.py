"""Headless Chromium with a WAV as its microphone: the WAV Chromium reads best, and the flags.

Shared by the browser tests and benchmarks/live_latency.py."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

CHROMIUM = "/usr/bin/chromium"
FAKE_RATE = 48_000


def write_wav_48k(pcm16k: np.ndarray, path: Path) -> None:
    """16 kHz float audio upsampled with PyAV's resampler, written as 48 kHz 16-bit PCM WAV."""
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=FAKE_RATE, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=FAKE_RATE)
        frame = av.AudioFrame.from_ndarray(pcm16k.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = 16_000
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(chunk):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def chromium_args(wav: Path, *extra: str) -> list[str]:
    """Headless, nothing fetched from the network, and `wav` played once as the microphone
    (permission granted without a prompt); `extra` flags after those."""
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop", *extra]
