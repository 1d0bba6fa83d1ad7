"""Audio in and out: decode any file PyAV reads, resample live frames, encode chunks.

Everything leaves this module as 16 kHz mono float32 in [-1, 1], the format
Whisper wants and the chunker counts in. Files and live WebRTC frames share
one resampling path (`av.AudioResampler`), so both are cut identically.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Generator, Iterator

import av
import numpy as np
import soundfile as sf

from scribe.durable import fsync_dir
from scribe.errors import AudioDecodeError, AudioTooLongError

SAMPLE_RATE = 16_000
"""Samples per second everywhere after decoding."""


log = logging.getLogger("scribe.audio")

class FrameResampler:
    """Turns `av.AudioFrame`s of any rate/layout into 16 kHz mono float32 arrays.

    Keeps the resampler's filter state between frames, so a stream of 20 ms
    frames resamples exactly like one long buffer (no clicks, no lost samples).
    Small frames are batched (`batch_ms`, default 200 ms) and resampled
    together: per-call overhead dominates at 20 ms, and 200 ms of extra delay
    is nothing next to a 15 s chunk. Not thread-safe: one instance per stream.
    """

    def __init__(self, batch_ms: int = 200) -> None:
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self._batch_ms = batch_ms
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._shape: tuple[str, str, int] | None = None

    def push(self, frame: av.AudioFrame) -> np.ndarray:
        """Add one frame; returns resampled samples when a batch is complete (else empty)."""
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        out = self._drain() if self._shape not in (None, shape) else _EMPTY
        self._shape = shape
        self._pending.append(_frame_samples(frame))
        self._pending_samples += frame.samples
        if self._pending_samples * 1000 >= self._batch_ms * frame.sample_rate:
            batch = self._drain()
            out = batch if out.size == 0 else np.concatenate((out, batch))
        return out

    @property
    def held_seconds(self) -> float:
        """Audio pushed but not yet returned (the batch being gathered), in seconds."""
        return self._pending_samples / self._shape[2] if self._shape else 0.0

    def flush(self) -> np.ndarray:
        """Everything still held (the partial batch and the filter's tail)."""
        held = self._drain()  # before the filter is flushed: its frames go in first
        flushed = self._resampler.resample(None)  # None flushes the filter
        return np.concatenate((held, _frames_to_array(list(flushed or []))))

    def _drain(self) -> np.ndarray:
        if not self._pending:
            return _EMPTY
        assert self._shape is not None  # set with the first pending frame
        fmt, layout, rate = self._shape
        data = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending, axis=1)
        self._pending, self._pending_samples = [], 0
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
        frame.sample_rate = rate
        return _frames_to_array(self._resampler.resample(frame))


_EMPTY = np.zeros(0, dtype=np.float32)
_PACKED_DTYPES = {"s16": np.int16, "s32": np.int32, "flt": np.float32, "dbl": np.float64, "u8": np.uint8}


def _frame_samples(frame: av.AudioFrame) -> np.ndarray:
    """A frame's samples as (1, n*channels) for packed formats, (channels, n) for planar.

    Packed frames (what WebRTC delivers) are read straight from the plane's
    buffer: `to_ndarray()` costs several times more per 20 ms frame.
    """
    dtype = _PACKED_DTYPES.get(frame.format.name)
    if dtype is None:
        return frame.to_ndarray()
    count = frame.samples * len(frame.layout.channels)
    return np.frombuffer(frame.planes[0], dtype=dtype, count=count).reshape(1, count)  # type: ignore[call-overload]


def _frames_to_array(frames: list[av.AudioFrame]) -> np.ndarray:
    if not frames:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32, copy=False)


MIN_RATE, MAX_RATE = 2_000, 768_000
"""Sample rates a file may declare: below, no speech fits; above, the header is lying."""
TRUNCATED_BELOW = 0.9
"""A file decoding to less than this share of its header's duration was cut off."""
_DECODE_ERRORS = (av.error.FFmpegError, ValueError, OverflowError, MemoryError)


def iter_decode(path: str | Path, *, max_seconds: float | None = None) -> Iterator[np.ndarray]:
    """Yield 16 kHz mono float32 blocks of a file, streaming (memory stays flat).

    Raises AudioDecodeError for a missing, empty, non-audio, corrupt or truncated
    file (WAV by its RIFF header, others against the duration their header states),
    one with an impossible sample rate, or one that holds no samples at all; and
    AudioTooLongError when it is longer than `max_seconds`, judged from the header
    before decoding and again while decoding (headers can lie).
    """
    path = Path(path)
    _check_readable(path)
    try:
        container = av.open(str(path))
    except (*_DECODE_ERRORS, UnicodeDecodeError) as exc:
        log.info("%s: cannot open as audio: %s", path.name, _short(exc))  # detail for the log only
        raise AudioDecodeError(f"{path.name}: not a readable audio file. {CHECK_THE_FILE}") from None
    with container:
        if not container.streams.audio:
            raise AudioDecodeError(f"{path.name}: has no audio stream")
        rate = container.streams.audio[0].sample_rate or 0
        if not MIN_RATE <= rate <= MAX_RATE:
            raise AudioDecodeError(f"{path.name}: declares a sample rate of {rate} Hz; "
                                   f"only {MIN_RATE}-{MAX_RATE} Hz is audio")
        stated = _stated_seconds(container)
        _check_length(path.name, stated, max_seconds)
        if stated is None and max_seconds is not None:  # e.g. a FLAC whose header leaves it out
            measured = _measured_seconds(path, max_seconds)
            if measured is not None and measured > max_seconds:
                raise AudioTooLongError(f"{path.name}: more than {max_seconds / 3600:g} h of audio, the "
                                        "limit (SCRIBE_MAX_AUDIO_HOURS)")
        if container.format.name == "wav" and _wav_is_truncated(path):
            raise AudioDecodeError(f"{path.name}: truncated WAV (the header promises more audio "
                                   "than the file holds)")
        total = yield from _decode_stream(container, path.name, max_seconds)
        if container.format.name != "wav" and stated and total / SAMPLE_RATE < TRUNCATED_BELOW * stated:
            raise AudioDecodeError(f"{path.name}: truncated (the header says {stated:.1f} s, the file "
                                   f"holds {total / SAMPLE_RATE:.1f} s)")


def _stated_seconds(container: av.container.InputContainer) -> float | None:
    return container.duration / av.time_base if container.duration and container.duration > 0 else None


def _measured_seconds(path: Path, max_seconds: float) -> float | None:
    """The length of a file whose header does not state it, from its packets' timestamps
    (demuxed, not decoded: seconds for hours of audio), stopping once past `max_seconds`."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            end = 0.0
            for packet in container.demux(stream):
                if packet.pts is not None and packet.time_base is not None:
                    end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
                    if end > max_seconds:
                        break
            return end or None
    except _DECODE_ERRORS:
        return None  # decoding reports the damage, and measures again


def _check_length(name: str, seconds: float | None, max_seconds: float | None) -> None:
    if max_seconds is not None and seconds is not None and seconds > max_seconds:
        raise AudioTooLongError(f"{name}: {seconds / 3600:.1f} h of audio; the limit is "
                                f"{max_seconds / 3600:g} h (SCRIBE_MAX_AUDIO_HOURS)")


def _decode_stream(container: av.container.InputContainer, name: str,
                   max_seconds: float | None = None) -> Generator[np.ndarray, None, int]:
    """The decoded blocks; returns the number of samples (for the caller's truncation check)."""
    resampler = FrameResampler()
    total = 0
    try:
        for frame in container.decode(audio=0):
            block = resampler.push(frame)
            total += block.size
            _check_length(name, total / SAMPLE_RATE, max_seconds)
            if block.size:
                yield block
        tail = resampler.flush()
    except _DECODE_ERRORS as exc:
        where = f" after {total / SAMPLE_RATE:.1f} s" if total else ""
        log.info("%s: decoding failed%s: %s", name, where, _short(exc))  # detail for the log only
        raise AudioDecodeError(f"{name}: corrupt or truncated audio{where}. {CHECK_THE_FILE}") from None
    total += tail.size
    if tail.size:
        yield tail
    if total == 0:
        raise AudioDecodeError(f"{name}: contains no audio samples")
    return total


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


def decode_file(path: str | Path, *, max_seconds: float | None = None) -> np.ndarray:
    """The whole file as one 16 kHz mono float32 array."""
    return np.concatenate(list(iter_decode(path, max_seconds=max_seconds)))


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


CHECK_THE_FILE = "Check that it plays in a media player, or convert it to WAV or MP3, and try again."


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__


def write_flac_atomic(pcm: np.ndarray, path: Path) -> None:
    """Write 16 kHz mono FLAC so that `path` either holds all of it or does not exist.

    Written to a temporary name, fsynced, renamed into place, and the folder
    fsynced: after a crash the file is complete or absent, never half-written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # Encoded in memory first: libsndfile writing a file through its callback turns
        # a full disk into an uncatchable "exception in cffi callback" traceback.
        data = encode_bytes(pcm, "FLAC")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # an error (a full disk) leaves no partial file behind
    fsync_dir(path.parent)


def read_flac(path: Path) -> np.ndarray:
    """Read a chunk file written by `write_flac_atomic`."""
    try:
        pcm, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioDecodeError(f"{path.name}: cannot read chunk audio ({exc})") from None
    if rate != SAMPLE_RATE:
        raise AudioDecodeError(f"{path.name}: expected {SAMPLE_RATE} Hz, found {rate} Hz")
    return pcm.reshape(-1)


def read_flac_range(path: Path, start: int, stop: int) -> np.ndarray:
    """Samples [start, stop) of a chunk file, reading only that part."""
    try:
        pcm, rate = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioDecodeError(f"{path.name}: cannot read chunk audio ({exc})") from None
    if rate != SAMPLE_RATE:
        raise AudioDecodeError(f"{path.name}: expected {SAMPLE_RATE} Hz, found {rate} Hz")
    return pcm.reshape(-1)


def read_flac_bytes(data: bytes) -> np.ndarray:
    """Decode FLAC/WAV bytes made by `encode_bytes` back to 16 kHz mono float32."""
    try:
        pcm, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioDecodeError(f"cannot read audio bytes ({exc})") from None
    if rate != SAMPLE_RATE:
        raise AudioDecodeError(f"expected {SAMPLE_RATE} Hz audio, found {rate} Hz")
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
