from pathlib import Path

import av
import numpy as np
import pytest
from audio_files import FORMATS, encode

from scribe.audio import SAMPLE_RATE, FrameResampler, decode_file, read_flac, write_flac_atomic
from scribe.errors import AudioDecodeError


def _dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * SAMPLE_RATE / x.size)


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_every_supported_format_decodes_to_16k_mono(tmp_path: Path, tone, suffix: str):
    path = encode(tone(3.0, freq=440.0), tmp_path / f"tone.{suffix}")
    pcm = decode_file(path)
    assert pcm.dtype == np.float32 and pcm.ndim == 1
    assert abs(pcm.size / SAMPLE_RATE - 3.0) < 0.1  # codecs add priming/padding, a few ms
    assert abs(_dominant_hz(pcm[1600:-1600]) - 440.0) < 5


def test_live_frames_resample_like_a_file(tone):
    """48 kHz stereo s16 20 ms frames (what WebRTC delivers) come out as 16 kHz mono."""
    t = np.arange(48000 * 2) / 48000
    stereo = (np.stack([np.sin(2 * np.pi * 300 * t)] * 2) * 0.3 * 32767).astype(np.int16)
    interleaved = stereo.T.reshape(1, -1)
    resampler, out = FrameResampler(), []
    for start in range(0, interleaved.shape[1], 960 * 2):
        frame = av.AudioFrame.from_ndarray(interleaved[:, start:start + 1920], format="s16", layout="stereo")
        frame.sample_rate = 48000
        out.append(resampler.push(frame))
    out.append(resampler.flush())
    pcm = np.concatenate(out)
    assert abs(pcm.size - 32000) <= 32
    assert abs(_dominant_hz(pcm[800:-800]) - 300.0) < 5


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(AudioDecodeError, match="no such file"):
        decode_file(tmp_path / "nope.wav")


def test_empty_file_is_named(tmp_path: Path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty"):
        decode_file(tmp_path / "empty.wav")


def test_text_file_is_not_audio(tmp_path: Path):
    (tmp_path / "notes.mp3").write_text("minutes of the meeting\n" * 50)
    with pytest.raises(AudioDecodeError):
        decode_file(tmp_path / "notes.mp3")


def test_random_bytes_are_corrupt(tmp_path: Path):
    (tmp_path / "noise.m4a").write_bytes(np.random.default_rng(1).bytes(20000))
    with pytest.raises(AudioDecodeError):
        decode_file(tmp_path / "noise.m4a")


@pytest.mark.parametrize("suffix", ["wav", "flac", "m4a"])
def test_truncated_file_is_reported(tmp_path: Path, tone, suffix: str):
    whole = encode(tone(4.0), tmp_path / f"whole.{suffix}").read_bytes()
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(AudioDecodeError, match="truncated|corrupt|not a readable"):
        decode_file(cut)


def test_video_without_audio_is_refused(tmp_path: Path):
    path = tmp_path / "silent.webm"
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with pytest.raises(AudioDecodeError, match="no audio stream"):
        decode_file(path)


def test_flac_write_is_atomic_and_round_trips(tmp_path: Path, tone):
    pcm = tone(1.0)
    path = tmp_path / "s" / "000001.flac"
    write_flac_atomic(pcm, path)
    assert [p.name for p in path.parent.iterdir()] == ["000001.flac"]  # no temp file left
    back = read_flac(path)
    assert back.size == pcm.size and np.max(np.abs(back - pcm)) < 1e-3
