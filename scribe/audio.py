"""Audio in and out: decode any file PyAV reads, resample live frames, encode chunks.

Everything leaves this module as 16 kHz mono float32 in [-1, 1], the format
Whisper wants and the chunker counts in. Files and live WebRTC frames share
one resampling path (`av.AudioResampler`), so both are cut identically.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterator

import av
import numpy as np
import soundfile as sf

from scribe.errors import AudioDecodeError

SAMPLE_RATE = 16_000
"""Samples per second everywhere after decoding."""


class FrameResampler:
    """Turns `av.AudioFrame`s of any rate/layout into 16 kHz mono float32 arrays.

    Keeps the resampler's filter state between frames, so a stream of 20 ms
    frames resamples exactly like one long buffer (no clicks, no lost samples).
    Not thread-safe: one instance per stream, used by that stream's thread.
    """

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

    def push(self, frame: av.AudioFrame) -> np.ndarray:
        """Resample one frame; may return fewer or more samples than the frame held."""
        return _frames_to_array(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        """Samples still held in the filter at the end of the stream."""
        return _frames_to_array(self._resampler.resample(None))


def _frames_to_array(frames: list[av.AudioFrame]) -> np.ndarray:
    if not frames:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32, copy=False)


def iter_decode(path: str | Path) -> Iterator[np.ndarray]:
    """Yield 16 kHz mono float32 blocks of a file, streaming (memory stays flat).

    Raises AudioDecodeError for a missing, empty, non-audio, corrupt or
    truncated file, or one that holds no samples at all.
    """
    path = Path(path)
    _check_readable(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise AudioDecodeError(f"{path.name}: not a readable audio file ({_short(exc)})") from None
    with container:
        if not container.streams.audio:
            raise AudioDecodeError(f"{path.name}: has no audio stream")
        if container.format.name == "wav" and _wav_is_truncated(path):
            raise AudioDecodeError(f"{path.name}: truncated WAV (the header promises more audio "
                                   "than the file holds)")
        yield from _decode_stream(container, path.name)


def _decode_stream(container: av.container.InputContainer, name: str) -> Iterator[np.ndarray]:
    resampler = FrameResampler()
    total = 0
    try:
        for frame in container.decode(audio=0):
            block = resampler.push(frame)
            total += block.size
            if block.size:
                yield block
    except av.error.FFmpegError as exc:
        where = f" after {total / SAMPLE_RATE:.1f} s" if total else ""
        raise AudioDecodeError(f"{name}: corrupt or truncated audio{where} ({_short(exc)})") from None
    tail = resampler.flush()
    total += tail.size
    if tail.size:
        yield tail
    if total == 0:
        raise AudioDecodeError(f"{name}: contains no audio samples")


def _wav_is_truncated(path: Path) -> bool:
    """True if the RIFF `data` chunk claims more bytes than the file has.

    FFmpeg silently decodes the part that is there, so a cut-off upload would
    otherwise pass for a shorter recording. Streaming writers that leave the
    size as 0 or 0xFFFFFFFF are not judged.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if handle.read(12)[8:12] != b"WAVE":
            return False
        while header := handle.read(8):
            if len(header) < 8:
                return False
            chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
            if chunk_id == b"data":
                unknown = chunk_size in (0, 0xFFFFFFFF)
                return not unknown and handle.tell() + chunk_size > size
            handle.seek(chunk_size + (chunk_size & 1), 1)
    return False


def decode_file(path: str | Path) -> np.ndarray:
    """The whole file as one 16 kHz mono float32 array."""
    return np.concatenate(list(iter_decode(path)))


def probe_duration(path: str | Path) -> float | None:
    """Duration in seconds from the container header, or None if it does not say."""
    try:
        with av.open(str(path)) as container:
            if container.duration:
                return container.duration / av.time_base
    except av.error.FFmpegError:
        return None
    return None


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise AudioDecodeError(f"{path}: no such file")
    if not path.is_file():
        raise AudioDecodeError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path.name}: file is empty")


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__


def write_flac_atomic(pcm: np.ndarray, path: Path) -> None:
    """Write 16 kHz mono FLAC so that `path` either holds all of it or does not exist.

    Written to a temporary name, fsynced, renamed into place, and the folder
    fsynced: after a crash the file is complete or absent, never half-written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        sf.write(handle, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_flac(path: Path) -> np.ndarray:
    """Read a chunk file written by `write_flac_atomic`."""
    try:
        pcm, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioDecodeError(f"{path.name}: cannot read chunk audio ({exc})") from None
    if rate != SAMPLE_RATE:
        raise AudioDecodeError(f"{path.name}: expected {SAMPLE_RATE} Hz, found {rate} Hz")
    return pcm.reshape(-1)


def encode_bytes(pcm: np.ndarray, fmt: str = "WAV") -> bytes:
    """16-bit WAV or FLAC bytes of a 16 kHz mono array (for APIs and downloads)."""
    buffer = io.BytesIO()
    sf.write(buffer, pcm, SAMPLE_RATE, format=fmt, subtype="PCM_16")
    return buffer.getvalue()


def rms_dbfs(pcm: np.ndarray) -> float:
    """Loudness of a block in dB relative to full scale (-120 for silence)."""
    if pcm.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
    return max(-120.0, 20.0 * np.log10(rms + 1e-12))
