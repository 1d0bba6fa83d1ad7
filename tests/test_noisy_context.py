"""The noisy-chunk context policy on its own: which chunks get the previous chunk's tail."""

import numpy as np
import pytest

from scribe.audio import write_flac_atomic
from scribe.core import ChunkRow, Segment
from scribe.noisy_context import NoisyContext, keep_own_segments, noise_floor_dbfs

SR = 16_000


def _noise(seconds: float, level: float = 0.05, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * level).astype(np.float32)


def _stored_chunks(storage, tmp_path, policy: str, chunks: list[np.ndarray]) -> tuple[str, list[ChunkRow]]:
    sid = storage.create_session(title="t", source="cli", backend="stub", model="m", chunk_seconds=2,
                                 chunk_policy=policy).id
    rows, start = [], 0
    for seq, pcm in enumerate(chunks):
        path = tmp_path / f"{seq:06d}.flac"
        write_flac_atomic(pcm, path)
        row = ChunkRow(sid, seq, start * 1000 // SR, (start + pcm.size) * 1000 // SR, start, start + pcm.size,
                       str(path), "pending")
        storage.insert_chunk(row)
        rows.append(row)
        start += pcm.size
    return sid, rows


def test_a_noisy_chunk_of_a_pause_cut_session_gets_the_previous_chunks_last_seconds(storage, tmp_path):
    first, second = _noise(3.0, seed=1), _noise(2.0, seed=2)
    _sid, rows = _stored_chunks(storage, tmp_path, "pause:15", [first, second])
    before = NoisyContext(seconds=1.0).audio_before(storage, rows[1], second)
    assert before.size == SR
    np.testing.assert_allclose(before, first[-SR:], atol=1e-4)  # FLAC keeps 16 bits


@pytest.mark.parametrize("policy, seconds, level, seq", [
    ("fixed:2", 1.0, 0.05, 1),     # a fixed cut can split a word: it would come back twice
    ("pause:15", 1.0, 0.0005, 1),  # a quiet room: context cost accuracy there
    ("pause:15", 0.0, 0.05, 1),    # the policy is off
    ("pause:15", 1.0, 0.05, 0),    # nothing before the first chunk
    ("no-such-policy", 1.0, 0.05, 1),  # a label this version does not know
], ids=["fixed-cuts", "quiet", "off", "first-chunk", "unknown-policy"])
def test_no_context_where_the_policy_says_none(storage, tmp_path, policy, seconds, level, seq):
    chunks = [_noise(2.0, level, seed=n) for n in range(2)]
    _sid, rows = _stored_chunks(storage, tmp_path, policy, chunks)
    assert NoisyContext(seconds).audio_before(storage, rows[seq], chunks[seq]).size == 0


def test_no_context_when_the_previous_chunks_audio_is_gone(storage, tmp_path):
    chunks = [_noise(2.0, seed=n) for n in range(2)]
    _sid, rows = _stored_chunks(storage, tmp_path, "pause:15", chunks)
    (tmp_path / "000000.flac").unlink()
    assert NoisyContext(1.0).audio_before(storage, rows[1], chunks[1]).size == 0


def test_noise_floor_is_the_rooms_not_the_speechs():
    speech_in_quiet = np.zeros(2 * SR, np.float32)
    speech_in_quiet[: SR] = 0.3  # loud half, digital silence in the other half
    assert noise_floor_dbfs(speech_in_quiet) < -100
    assert noise_floor_dbfs(_noise(2.0, 0.05)) > -30


def test_segments_heard_in_the_context_are_dropped_and_the_rest_shifted_to_chunk_time():
    heard = [Segment(0.0, 0.8, "previous chunk's"), Segment(0.6, 1.6, "straddles, mostly ours"),
             Segment(1.5, 2.5, "ours")]
    kept = keep_own_segments(heard, offset_s=1.0)
    assert [(s.text, s.start, s.end) for s in kept] == [("straddles, mostly ours", 0.0, pytest.approx(0.6)),
                                                      ("ours", 0.5, 1.5)]
