import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scribe.audio import SAMPLE_RATE
from scribe.chunking import (
    DEFAULT_POLICY,
    FILE_POLICY_NAMES,
    LIVE_POLICY_NAMES,
    POLICY_HELP,
    POLICY_NAMES,
    Chunker,
    FixedPolicy,
    PausePolicy,
    QuietestPolicy,
    WholePolicy,
    parse_policy,
    policy_label,
)
from scribe.errors import SettingsError


def _feed(chunker: Chunker, signal: np.ndarray, block_sizes: list[int]) -> list:
    chunks, pos, i = [], 0, 0
    while pos < signal.size:
        size = block_sizes[i % len(block_sizes)]
        chunks += chunker.push(signal[pos:pos + size])
        pos += size
        i += 1
    return chunks + chunker.finish()


def _speechy(seconds: float, seed: int, pauses: bool) -> np.ndarray:
    """Bursts of loud noise ("words") with optional quiet gaps between them."""
    rng = np.random.default_rng(seed)
    out = []
    while sum(map(len, out)) < seconds * SAMPLE_RATE:
        out.append(rng.standard_normal(int(rng.uniform(0.2, 1.5) * SAMPLE_RATE)).astype(np.float32) * 0.2)
        if pauses:
            out.append(rng.standard_normal(int(rng.uniform(0.1, 0.6) * SAMPLE_RATE)).astype(np.float32) * 0.001)
    return np.concatenate(out)[: int(seconds * SAMPLE_RATE)]


policies = st.sampled_from(["fixed", "pause", "quiet", "whole"])
blocks = st.lists(st.integers(min_value=1, max_value=9000), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(policy=policies, seconds=st.floats(1.0, 6.0), total=st.floats(0.01, 25.0), block_sizes=blocks,
       seed=st.integers(0, 1000), pauses=st.booleans(), start_seq=st.integers(0, 5),
       start_sample=st.integers(0, 10**7))
def test_chunks_cover_every_sample_exactly_once(policy, seconds, total, block_sizes, seed, pauses,
                                                start_seq, start_sample):
    signal = _speechy(total, seed, pauses)
    chunker = Chunker("s", parse_policy(f"{policy}:{seconds}"), start_seq=start_seq, start_sample=start_sample)
    chunks = _feed(chunker, signal, block_sizes)
    assert [c.seq for c in chunks] == list(range(start_seq, start_seq + len(chunks)))
    assert chunks[0].start_sample == start_sample
    for before, after in zip(chunks, chunks[1:]):
        assert before.end_sample == after.start_sample
    assert chunks[-1].end_sample == start_sample + signal.size
    assert np.array_equal(np.concatenate([c.pcm for c in chunks]), signal)
    assert all(c.pcm.size == c.end_sample - c.start_sample > 0 for c in chunks)


@settings(max_examples=40, deadline=None)
@given(seconds=st.floats(1.0, 8.0), total=st.floats(0.5, 40.0), block_sizes=blocks, seed=st.integers(0, 999),
       pauses=st.booleans())
def test_policy_bounds_are_respected(seconds, total, block_sizes, seed, pauses):
    signal = _speechy(total, seed, pauses)
    fixed = _feed(Chunker("s", FixedPolicy(seconds)), signal, block_sizes)
    pause_policy = PausePolicy(seconds)
    paused = _feed(Chunker("s", pause_policy), signal, block_sizes)
    target = round(seconds * 100) * 160
    assert all(c.pcm.size == target for c in fixed[:-1]) and fixed[-1].pcm.size <= target
    lo = round(seconds * pause_policy.min_ratio * 100) * 160 - 160
    hi = pause_policy.max_frames * 160
    assert all(lo <= c.pcm.size <= hi for c in paused[:-1])
    assert paused[-1].pcm.size <= hi
    quiet_policy = QuietestPolicy(seconds)
    quiet = _feed(Chunker("s", quiet_policy), signal, block_sizes)
    lo = quiet_policy.min_frames * 160
    hi = quiet_policy.max_frames * 160
    assert all(lo <= c.pcm.size <= hi for c in quiet[:-1])
    assert quiet[-1].pcm.size <= hi


def test_pause_policy_cuts_inside_a_real_pause():
    rng = np.random.default_rng(0)
    loud = lambda s: rng.standard_normal(int(s * SAMPLE_RATE)).astype(np.float32) * 0.2  # noqa: E731
    quiet = np.zeros(int(0.4 * SAMPLE_RATE), dtype=np.float32)
    signal = np.concatenate([loud(9.0), quiet, loud(8.0)])  # pause at 9.0-9.4 s, target 10 s
    chunks = _feed(Chunker("s", PausePolicy(10.0)), signal, [320])
    assert 9.0 * SAMPLE_RATE < chunks[0].end_sample < 9.4 * SAMPLE_RATE


def test_pause_policy_never_exceeds_hard_maximum_without_pauses():
    signal = np.random.default_rng(2).standard_normal(60 * SAMPLE_RATE).astype(np.float32) * 0.2
    policy = PausePolicy(10.0)
    chunks = _feed(Chunker("s", policy), signal, [960])
    assert max(c.pcm.size for c in chunks) <= policy.max_frames * 160


def test_whole_policy_makes_one_chunk():
    chunks = _feed(Chunker("s", WholePolicy()), np.ones(50_000, np.float32) * 0.1, [777])
    assert len(chunks) == 1 and chunks[0].pcm.size == 50_000


def test_empty_stream_makes_no_chunks():
    assert Chunker("s", FixedPolicy(5)).finish() == []


def test_chunk_times_are_in_session_time():
    chunker = Chunker("s", FixedPolicy(1.0), start_seq=7, start_sample=32_000)
    chunks = chunker.push(np.zeros(16_000, np.float32))
    assert (chunks[0].seq, chunks[0].start_ms, chunks[0].end_ms) == (7, 2000, 3000)


@pytest.mark.parametrize("spec", ["fixed:0", "pause:abc", "nope:5", "fixed:1000"])
def test_bad_policy_specs_are_refused(spec):
    with pytest.raises(SettingsError):
        parse_policy(spec)


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_every_policy_name_builds_and_labels_itself(name):
    policy = parse_policy(f"{name}:5")
    assert policy.name == name
    assert policy_label(policy) == ("whole" if name == "whole" else f"{name}:5")
    assert name in POLICY_HELP


def test_settings_and_file_policies_are_named_policies():
    assert set(LIVE_POLICY_NAMES) < set(FILE_POLICY_NAMES) <= set(POLICY_NAMES)
    assert "whole" not in LIVE_POLICY_NAMES and "quiet" not in FILE_POLICY_NAMES
    assert parse_policy(DEFAULT_POLICY).name == DEFAULT_POLICY


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_no_policy_cuts_later_than_its_max_frames(name):
    policy = parse_policy(f"{name}:2")
    signal = _speechy(12.0, seed=3, pauses=False)
    chunks = _feed(Chunker("s", policy), signal, [3200])
    if policy.max_frames == 0:
        assert len(chunks) == 1
    else:
        assert all(c.end_sample - c.start_sample <= policy.max_frames * 160 for c in chunks)


def test_closing_a_chunk_keeps_only_the_audio_after_the_cut():
    """What stays buffered after a cut owns its memory: a view into the joined buffer would
    keep the closed chunk's audio alive too (for every live session) until the next cut."""
    chunker = Chunker("s", FixedPolicy(5.0))
    block = np.full(int(0.3 * SAMPLE_RATE), 0.1, np.float32)  # 300 ms blocks: cuts fall inside one
    closed = []
    for _ in range(40):
        closed += chunker.push(block.copy())
    assert len(closed) == 2 and all(c.pcm.base is None for c in closed)
    held = sum((b if b.base is None else b.base).nbytes for b in chunker._blocks)
    assert held <= chunker.buffered_audio().nbytes + block.nbytes
