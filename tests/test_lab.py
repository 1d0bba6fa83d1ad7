"""The chunking lab: computed scores, a stable JSON shape, stored runs, and the pause policy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scribe import lab
from scribe.audio import decode_file
from scribe.chunking import Chunker, PausePolicy, parse_policy
from scribe.cli import main
from scribe.core import ChunkRow, Transcription
from scribe.errors import ScribeError, SettingsError
from scribe.storage import Storage

RATE = 16_000
TURNS = [
    "Good morning everyone, thanks for joining the weekly planning meeting.",
    "Sales grew by twelve percent, but marketing costs went up as well.",
    "Maria will prepare a hiring plan for two new support engineers by Friday.",
]


@pytest.fixture(scope="module")
def short_meeting(tmp_path_factory):
    """~14 s, three voices, 1 s between turns; the WAV path and its reference."""
    import speech

    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed")
    audio, reference = speech.meeting_audio(TURNS, gap_s=1.0)
    folder = tmp_path_factory.mktemp("lab")
    (folder / "ref.txt").write_text(reference)
    return speech.write_wav(audio, folder / "meeting.wav"), reference


@pytest.fixture(scope="module")
def local_model():
    from scribe.transcribers.local import LocalWhisperTranscriber

    return LocalWhisperTranscriber()


class DropsOneCall:
    """Wraps a backend and returns nothing for its `n`th call: a chunk lost in transit."""

    def __init__(self, inner, n: int = 1) -> None:
        self.inner, self.n, self.calls = inner, n, 0
        self.name, self.model = inner.name, inner.model

    def transcribe(self, audio):
        self.calls += 1
        return Transcription([]) if self.calls == self.n + 1 else self.inner.transcribe(audio)


def test_eval_scores_are_computed_and_a_dropped_chunk_scores_worse(short_meeting, local_model):
    path, reference = short_meeting
    good = lab.run_eval(path, reference, ["pause:4"], transcriber=local_model)[0]
    bad = lab.run_eval(path, reference, ["pause:4"], transcriber=DropsOneCall(local_model))[0]
    assert good.chunks == bad.chunks >= 3
    assert good.calls == good.chunks
    assert good.wer < 0.35
    assert bad.wer > good.wer + 0.15
    assert bad.words_lost > good.words_lost
    assert good.latency_s > good.mean_chunk_s  # chunk length plus processing
    assert good.mean_chunk_s == pytest.approx(decode_file(path).size / RATE / good.chunks, abs=0.05)


def test_eval_cli_json_shape_is_stable_and_runs_are_stored(short_meeting, tmp_path, capsys):
    path, _ = short_meeting
    db = tmp_path / "lab.duckdb"
    code = main(["eval", str(path), "--reference", str(path.parent / "ref.txt"), "--policy", "whole",
                 "--policy", "fixed:5", "--json", "--db", str(db)])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["runs"]
    assert [r["policy"] for r in doc["runs"]] == ["whole", "fixed:5"]
    for run in doc["runs"]:
        assert tuple(run) == lab.JSON_KEYS
        assert 0.0 <= run["wer"] < 0.5 and run["calls"] == run["chunks"]
    assert doc["runs"][0]["chunks"] == 1 and doc["runs"][0]["boundary_errors"] == 0
    assert doc["runs"][1]["chunks"] == math.ceil(decode_file(path).size / RATE / 5)
    stored = Storage(db)
    try:
        assert sorted(r["policy"] for r in stored.list_lab_runs()) == ["fixed:5", "whole"]
    finally:
        stored.close()


def test_eval_refuses_bad_input_before_any_work(short_meeting, tmp_path, capsys):
    path, _ = short_meeting
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    assert main(["eval", str(path), "--reference", str(empty), "--backend", "stub", "--no-save"]) == 2
    assert main(["eval", str(path), "--backend", "stub", "--no-save"]) == 2
    assert main(["eval", str(path), "--reference", str(path.parent / "ref.txt"), "--policy", "often:3",
                 "--backend", "stub", "--no-save"]) == 2
    assert "reference" in capsys.readouterr().err
    with pytest.raises(SettingsError):
        lab.run_eval(path, "some words", ["pause:zero"], transcriber=None)  # type: ignore[arg-type]
    with pytest.raises(ScribeError):
        lab.run_eval(path, "", ["whole"], transcriber=None)  # type: ignore[arg-type]


def test_boundary_errors_count_only_words_at_junctions():
    reference = "alpha bravo charlie delta echo fox golf hotel india juliet"
    assert lab.boundary_errors(reference, ["alpha bravo charlie delta echo", "fox golf hotel india juliet"]) == (0, 0)
    assert lab.boundary_errors(reference, ["alpha bravo charlie delta", "fox golf hotel india juliet"]) == (1, 0)
    assert lab.boundary_errors(reference, ["alpha bravo charlie delta echo", "echo fox golf hotel india juliet"]) == (0, 1)
    # A mid-chunk error is the model's, not the cut's.
    assert lab.boundary_errors(reference, ["alpha bravo charlie delta echo", "fox golf hotel india"]) == (0, 0)


def _billed_chunk(seconds: float, input_tokens: int, output_tokens: int, model: str | None = None,
                  attempts: int = 1) -> ChunkRow:
    return ChunkRow("s", 0, 0, int(seconds * 1000), 0, int(seconds * 16_000), "a.flac", "done",
                    attempts=attempts, model=model, input_tokens=input_tokens, output_tokens=output_tokens)


def test_run_cost_prices_chunks_with_the_gemini_price_table():
    flash = [_billed_chunk(15, 1_000_000, 1_000_000)]
    assert lab.run_cost("gemini", "gemini-2.5-flash", flash) == pytest.approx(1.00 + 2.50)  # audio in, out
    pro = [_billed_chunk(15, 1_000_000, 1_000_000, model="gemini-2.5-pro")]
    assert lab.run_cost("gemini", "gemini-2.5-flash", pro) == pytest.approx(1.25 + 10.00)  # the chunk's model
    unreported = [_billed_chunk(10, 0, 0, attempts=2)]  # 32 audio tokens a second, per attempt
    assert lab.run_cost("gemini", "gemini-2.5-flash", unreported) == pytest.approx(640 * 1.00 / 1e6)
    assert lab.run_cost("local", "tiny.en", flash) == 0.0
    assert lab.run_cost("gemini", "some-future-model", flash) == 0.0  # no price known: logged, not guessed


def test_demo_recording_ships_small_with_its_reference():
    audio, reference = lab.demo_recording()
    assert audio.stat().st_size < 1_000_000
    assert 60 < decode_file(audio).size / RATE < 80
    assert len(reference.split()) > 100


def test_lab_runs_round_trip(storage):
    run = lab.PolicyRun("pause:15", 0.1, 5, 14.0, 15.2, 6.0, 5, 0.0, 2, 1, 100, 70.0, "local", "tiny.en", "hi")
    storage.save_lab_run(lab._lab_row(run, "exp1", "demo"))
    [row] = storage.list_lab_runs(experiment="exp1")
    assert row["policy"] == "pause:15" and row["words_lost"] == 2 and row["audio_label"] == "demo"


# -- the pause policy ---------------------------------------------------------
def _speech_like(pattern: list[tuple[float, bool]], noise_dbfs: float | None = None) -> np.ndarray:
    """Loud tone bursts (speech) and gaps (silence), optionally over white noise."""
    rng = np.random.default_rng(3)
    parts = []
    for seconds, voiced in pattern:
        n = int(seconds * RATE)
        t = np.arange(n) / RATE
        parts.append((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32) if voiced else np.zeros(n, np.float32))
    audio = np.concatenate(parts)
    if noise_dbfs is not None:
        audio = audio + (rng.standard_normal(audio.size) * 10 ** (noise_dbfs / 20)).astype(np.float32)
    return audio


def _cuts(audio: np.ndarray, spec: str) -> list[float]:
    chunker = Chunker("s", parse_policy(spec))
    chunks = [c for i in range(0, audio.size, 320) for c in chunker.push(audio[i:i + 320])] + chunker.finish()
    assert sum(c.pcm.size for c in chunks) == audio.size  # every sample in exactly one chunk
    return [c.end_sample / RATE for c in chunks]


@pytest.mark.parametrize("noise", [None, -35.0])
def test_pause_policy_prefers_a_long_pause_near_the_target_over_a_short_one(noise):
    # Short 0.15 s pauses every 2 s; one long 1 s pause ending at 10 s (turn change).
    pattern = [(1.85, True), (0.15, False)] * 4 + [(1.0, True), (1.0, False)] + [(1.85, True), (0.15, False)] * 8
    cuts = _cuts(_speech_like(pattern, noise), "pause:10")
    assert 9.0 < cuts[0] < 10.0  # in the long pause, not in a short one nearer the target


def test_pause_policy_never_exceeds_the_hard_maximum():
    cuts = _cuts(_speech_like([(40.0, True)]), "pause:10")
    assert max(b - a for a, b in zip([0.0, *cuts], cuts)) <= 10 * PausePolicy(10).max_ratio + 1e-9


def test_pause_policy_cuts_silence_at_the_target():
    cuts = _cuts(np.zeros(31 * RATE, np.float32), "pause:10")
    lengths = [b - a for a, b in zip([0.0, *cuts], cuts)]
    assert all(9.5 <= n <= 10.0 for n in lengths[:-1])


@settings(max_examples=40, deadline=None)
@given(seconds=st.floats(1.0, 8.0), blocks=st.lists(st.tuples(st.integers(1, 9000), st.sampled_from([0.0, 1e-3, 0.3])),
                                                   min_size=1, max_size=60))
def test_pause_policy_covers_every_sample_once_within_the_maximum(seconds, blocks):
    policy = PausePolicy(seconds)
    chunker = Chunker("s", policy)
    rng = np.random.default_rng(0)
    chunks = []
    for size, level in blocks:
        chunks += chunker.push((rng.standard_normal(size) * level).astype(np.float32))
    chunks += chunker.finish()
    assert sum(c.pcm.size for c in chunks) == sum(size for size, _ in blocks)
    assert all(a.end_sample == b.start_sample for a, b in zip(chunks, chunks[1:]))
    assert all(c.end_sample - c.start_sample <= policy.max_frames * 160 for c in chunks)


def test_lab_page_runs_the_demo_and_shows_results_and_history(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SCRIBE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SCRIBE_BACKEND", "stub")
    monkeypatch.setenv("SCRIBE_FINAL_PASS", "false")
    page = AppTest.from_file("../pages/lab.py", default_timeout=120).run()
    assert not page.exception
    assert page.title[0].value == "Chunking lab"
    page.button[0].click().run()
    assert not page.exception
    results, history = page.dataframe[0].value, page.dataframe[1].value
    assert list(results["policy"]) == ["whole", "fixed:15", "pause:15"]
    assert list(results["chunks"])[:2] == [1, 5]
    assert len(history) == 3
    assert len(page.get("plotly_chart")) == 1
