"""Speaker labels: the checked model loader, the numpy encoder on real generated voices,
clustering, live labels through the pipeline, relabel after stop, and names everywhere."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import speech
from seed_sessions import record_through

from scribe import speakers as sp
from scribe.audio import SAMPLE_RATE
from scribe.config import Settings
from scribe.core import FINAL, LIVE
from scribe.diarization import SpeakerLabeler, label_chunk, relabel_session, split_speaker
from scribe.errors import NotFoundError, ScribeError, SettingsError, SpeakerModelError
from scribe.export import render
from scribe.pipeline import Pipeline
from scribe.search import search
from scribe.transcribers.stub import StubTranscriber

VOICES = ("en-us+m8", "en-us+f4", "en-us+Andy")
"""Three voices distinct to the encoder (espeak-ng's en-us and en-gb are one timbre to it)."""
ROOT = Path(__file__).parent.parent

pytestmark = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                                reason="resemblyzer is not installed (scripts/setup.sh installs it)")


@pytest.fixture(scope="module")
def turns() -> list[tuple[int, np.ndarray]]:
    """Nine meeting turns, voices rotating, each exactly 4 s (at most 3.5 s of speech, then a
    pause) so that 4 s chunks hold one voice each: (voice, audio)."""
    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed")
    out = []
    for n, text in enumerate(speech.MEETING_TURNS[:9]):
        audio = speech.synthesize(text, voice=VOICES[n % 3])[:int(3.5 * SAMPLE_RATE)]
        out.append((n % 3, np.pad(audio, (0, 4 * SAMPLE_RATE - audio.size))))
    return out


def _meeting(turns) -> tuple[np.ndarray, np.ndarray]:
    audio = np.concatenate([a for _, a in turns])
    truth = np.repeat([v for v, _ in turns], 400)  # a voice per 10 ms frame
    return audio, truth


def _frame_accuracy(truth: np.ndarray, labels: np.ndarray) -> float:
    """Share of labelled frames whose label maps to the right voice (best one-to-one mapping)."""
    import itertools

    n = min(truth.size, labels.size)
    mask = labels[:n] >= 0
    best = 0.0
    for perm in itertools.permutations(range(max(3, labels.max() + 1))):
        mapped = np.array([perm[x] for x in labels[:n][mask]])
        best = max(best, float(np.mean(mapped == truth[:n][mask])))
    return best


# -- the model file ------------------------------------------------------------------

def test_loader_reads_the_checked_weights_with_their_shapes():
    weights = sp.load_weights()
    assert {name: w.shape for name, w in weights.items()} == sp.EXPECTED_SHAPES
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in weights.values())
    assert np.abs(weights["lstm.weight_hh_l2"]).mean() > 0.01  # real numbers, not zeros


def test_loader_refuses_a_tampered_file(tmp_path):
    blob = bytearray(sp.weights_path().read_bytes())
    blob[len(blob) // 2] ^= 0x01
    tampered = tmp_path / "pretrained.pt"
    tampered.write_bytes(bytes(blob))
    with pytest.raises(SpeakerModelError, match="SHA-256"):
        sp.load_weights(tampered)


def test_loader_refuses_unexpected_shapes(monkeypatch):
    monkeypatch.setitem(sp.EXPECTED_SHAPES, "linear.weight", (256, 128))
    with pytest.raises(SpeakerModelError, match="linear.weight"):
        sp.load_weights()


def test_unpickler_refuses_any_other_global():
    payload = pickle.dumps(os.system)  # what a malicious checkpoint would call
    with pytest.raises(pickle.UnpicklingError, match="refused global"):
        sp._RestrictedUnpickler(io.BytesIO(payload), {}).load()
    blob = b"".join(pickle.dumps(x, protocol=2) for x in
                    (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True})) + pickle.dumps(print)
    with pytest.raises(pickle.UnpicklingError):
        sp._read_legacy_checkpoint(blob)


def test_missing_package_is_a_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "resemblyzer" else real(name, *a))
    with pytest.raises(SpeakerModelError, match="pip install --no-deps resemblyzer"):
        sp.weights_path()


def test_no_torch_is_needed_or_present():
    code = ("import sys, numpy as np; from scribe import speakers as sp; "
            "e = sp.VoiceEncoder().embed(np.ones((1, 60, 40), np.float32)); "
            "assert e.shape == (1, 256) and 'torch' not in sys.modules and 'resemblyzer' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
    assert importlib.util.find_spec("torch") is None


# -- front end, encoder, clustering ------------------------------------------------------

def test_power_mel_peaks_at_the_tone_and_scales_with_power(tone):
    mel = sp.mel_frames(tone(1.0, freq=1000.0))
    assert mel.shape == (101, sp.N_MELS)
    centres = sp.mel_filters().argmax(axis=1) * SAMPLE_RATE / sp.N_FFT
    assert abs(centres[mel[50].argmax()] - 1000.0) < 150.0
    np.testing.assert_allclose(sp.mel_frames(2 * tone(1.0, freq=1000.0)), 4 * mel, rtol=1e-4)


def test_same_voice_is_closer_than_another_voice(turns):
    embeds = {v: sp.mean_voice(w.embeddings, w.seconds)
              for v, w in ((v, sp.embed_windows(a)) for v, a in turns[:3])}
    later = sp.embed_windows(turns[3][1])  # voice 0 again, other words
    same = float(sp.mean_voice(later.embeddings, later.seconds) @ embeds[0])
    assert same > 0.8
    assert same > max(float(embeds[0] @ embeds[1]), float(embeds[0] @ embeds[2])) + 0.1


def test_three_voices_are_labelled_with_the_count_given_and_estimated(turns):
    audio, truth = _meeting(turns)
    for count in (3, None):
        windows, labels = sp.diarize(audio, count)
        frames = sp.frame_labels(windows, labels)
        assert len(set(labels.tolist())) == 3
        assert _frame_accuracy(truth, frames) >= 0.95
    assert labels[0] == 0  # numbered by first appearance


def test_silence_gives_no_windows_and_no_speaker():
    windows, labels = sp.diarize(np.zeros(3 * SAMPLE_RATE, np.float32), None)
    assert len(windows) == 0 and labels.size == 0
    assert sp.speaker_for_span(sp.frame_labels(windows, labels), 0, 1000) is None


def test_segment_takes_the_speaker_it_overlaps_most():
    labels = np.array([-1] * 10 + [2] * 30 + [5] * 60 + [-1] * 300)
    assert sp.speaker_for_span(labels, 0, 500) == 2  # frames 0-49: 30 of speaker 2, 10 of 5
    assert sp.speaker_for_span(labels, 400, 1000) == 5
    assert sp.speaker_for_span(labels, 1500, 1600) == 5  # no speech inside: nearest within 2 s
    assert sp.speaker_for_span(labels, 3500, 3600) is None


# -- through the pipeline, stored ------------------------------------------------------------

@pytest.fixture
def labelled(storage, settings, turns):
    """A stopped session recorded through the pipeline with the speaker labeler attached."""
    pipeline = Pipeline(storage, StubTranscriber(), audio_dir=settings.audio_dir).start()
    labeler = SpeakerLabeler(storage, max_speakers=8).attach(pipeline)
    try:
        session_id = record_through(storage, pipeline, _meeting(turns)[0])
        assert pipeline.wait_idle(60) and labeler.wait_idle(120)
    finally:
        labeler.stop()
        pipeline.stop()
    assert not labeler.errors
    assert labeler.handled >= 9 + 1  # each chunk, then the session: the Record page's mark moved each time
    return session_id


def test_live_labels_then_relabel_after_stop_are_consistent(storage, labelled, turns):
    segments = storage.list_segments(labelled, LIVE)
    assert len(segments) == 9
    assert storage.diarization_state(labelled)["stage"] == FINAL
    names = [s.speaker for s in segments]
    assert names[:3] == ["Speaker 1", "Speaker 2", "Speaker 3"]
    assert names == names[:3] * 3  # each voice keeps its label across the session
    assert [r["id"] for r in storage.speaker_stats(labelled)] == [1, 2, 3]
    assert [s.text for s in segments] == ["stub audio of 4.00 seconds"] * 9  # text untouched


def test_live_chunk_labels_follow_the_stored_centroids(storage, labelled):
    before = [s.speaker_id for s in storage.list_segments(labelled, LIVE)]
    label_chunk(storage, labelled, 4)  # a chunk relabelled live (e.g. after a retry)
    assert [s.speaker_id for s in storage.list_segments(labelled, LIVE)] == before
    assert len(storage.list_speakers(labelled)) == 3


def test_rename_shows_in_transcript_search_and_every_export(storage, labelled):
    storage.rename_speaker(labelled, 2, "  Maria  Lopez ")
    segments = storage.list_segments(labelled, LIVE)
    assert segments[1].speaker == "Maria Lopez" and segments[0].speaker == "Speaker 1"
    session = storage.get_session(labelled)
    assert "Maria Lopez: stub" in render("txt", session, segments)
    assert "Maria Lopez: stub" in render("srt", session, segments)
    assert "<v Maria Lopez>" in render("vtt", session, segments)
    assert "Maria Lopez" in render("md", session, segments)
    assert json.loads(render("json", session, segments))["segments"][1]["speaker"] == "Maria Lopez"
    hits = search(storage, "stub audio")
    assert {h.speaker for h in hits.hits} == {"Speaker 1", "Maria Lopez", "Speaker 3"}
    with pytest.raises(ScribeError, match="already called"):
        storage.rename_speaker(labelled, 3, "maria lopez")
    with pytest.raises(ScribeError):
        storage.rename_speaker(labelled, 3, "   ")
    with pytest.raises(NotFoundError):
        storage.rename_speaker(labelled, 9, "Nobody")
    # A relabel after stop keeps the name on the same voice.
    relabel_session(storage, labelled, n_speakers=3)
    assert storage.list_segments(labelled, LIVE)[4].speaker == "Maria Lopez"


def test_merge_then_split_restores_two_voices(storage, labelled):
    storage.merge_speakers(labelled, 1, 3)
    segments = storage.list_segments(labelled, LIVE)
    assert [s.speaker_id for s in segments] == [1, 2, 1] * 3
    assert [s.id for s in storage.list_speakers(labelled)] == [1, 2]
    new_id = split_speaker(storage, labelled, 1)
    assert new_id == 3
    assert [s.speaker_id for s in storage.list_segments(labelled, LIVE)] == [1, 2, 3] * 3
    with pytest.raises(NotFoundError):
        storage.merge_speakers(labelled, 1, 1)


def test_given_count_is_used_after_stop(storage, labelled):
    storage.set_expected_speakers(labelled, 2)
    rows = relabel_session(storage, labelled)
    assert len(rows) == 2 and len({s.speaker_id for s in storage.list_segments(labelled, LIVE)}) == 2


def test_deleting_a_session_removes_its_speakers(storage, labelled):
    storage.delete_session(labelled)
    assert storage.list_speakers(labelled) == [] and storage.diarization_state(labelled) is None


def test_settings_for_speaker_labels():
    assert Settings.from_env({}).diarization is True
    assert Settings.from_env({"SCRIBE_DIARIZATION": "off"}).diarization is False
    with pytest.raises(SettingsError, match="SCRIBE_MAX_SPEAKERS"):
        Settings.from_env({"SCRIBE_MAX_SPEAKERS": "0"})
    with pytest.raises(SettingsError, match="SCRIBE_DIARIZATION"):
        Settings.from_env({"SCRIBE_DIARIZATION": "maybe"})


# -- the CLI with the real local model -----------------------------------------------------------

def _cli(*args: str, db: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "SCRIBE_DATA_DIR": str(db.parent), **(env or {})}
    return subprocess.run([sys.executable, "-m", "scribe", *args, "--db", str(db)], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_transcribe_with_speakers_labels_json_and_keeps_the_text(tmp_path, turns):
    from scribe.storage import Storage
    from scribe.wer import word_error_rate

    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    audio = np.concatenate([piece for n, text in enumerate(speech.MEETING_TURNS[:9])
                            for piece in (speech.synthesize(text, voice=VOICES[n % 3]), gap)])
    wav = speech.write_wav(audio, tmp_path / "meeting.wav")
    reference = " ".join(speech.MEETING_TURNS[:9])
    db = tmp_path / "data" / "scribe.duckdb"
    labelled = _cli("transcribe", str(wav), "--speakers", "3", "--format", "json", db=db)
    assert labelled.returncode == 0, labelled.stderr
    payload = json.loads(labelled.stdout)
    speakers = [s["speaker"] for s in payload["segments"]]
    assert set(speakers) == {"Speaker 1", "Speaker 2", "Speaker 3"}
    assert speakers[0] == "Speaker 1"
    plain = _cli("transcribe", str(wav), "--format", "json", db=db, env={"SCRIBE_DIARIZATION": "false"})
    assert plain.returncode == 0, plain.stderr
    assert all(s["speaker"] is None for s in json.loads(plain.stdout)["segments"])
    assert payload["text"] == json.loads(plain.stdout)["text"]  # labels never change the words
    assert word_error_rate(reference, payload["text"]) < 0.3
    renamed = _cli("speakers", payload["session_id"], "--rename", "1", "Ana", "--json", db=db)
    assert renamed.returncode == 0, renamed.stderr
    assert [r["name"] for r in json.loads(renamed.stdout)] == ["Ana", "Speaker 2", "Speaker 3"]
    exported = _cli("export", payload["session_id"], "--format", "txt", db=db)
    assert "\n[00:00] Ana: " in exported.stdout  # after the title and date lines
    bad = _cli("transcribe", str(wav), "--speakers", "many", db=db)
    assert bad.returncode != 0 and "number of speakers or auto" in bad.stderr
    store = Storage(db)
    try:
        assert len(store.list_sessions()) == 2  # the bad flag stored nothing
    finally:
        store.close()


def test_live_speakers_are_numbered_without_gaps(storage, settings, turns):
    """A chunk ending with a moment of another voice (too short to win its line) does not use
    up a number: the next voice that speaks a line is Speaker 2, not Speaker 3."""
    (a, voice_a), (b, voice_b), (c, voice_c) = turns[:3]
    pause = np.zeros(SAMPLE_RATE // 4, np.float32)
    tail = voice_b[:int(0.75 * SAMPLE_RATE)]
    first = np.concatenate([voice_a[:3 * SAMPLE_RATE], pause, tail])  # 4 s: A, then a bit of B
    pipeline = Pipeline(storage, StubTranscriber(), audio_dir=settings.audio_dir).start()
    try:
        session_id = record_through(storage, pipeline, np.concatenate([first, voice_c, voice_a]), stop=False)
        assert pipeline.wait_idle(60)
    finally:
        pipeline.stop()
    for seq in range(3):
        label_chunk(storage, session_id, seq)
    assert [s.speaker for s in storage.list_segments(session_id, LIVE)] == ["Speaker 1", "Speaker 2", "Speaker 1"]
    assert [s.id for s in storage.list_speakers(session_id)] == [1, 2]


def test_relabel_after_stop_numbers_speakers_in_order_and_keeps_given_names(storage, labelled):
    """Told there are two people, the relabel joins the two closest voices (the first and
    the third); the second voice is Speaker 2 by number and keeps the name given live."""
    storage.merge_speakers(labelled, 3, 2)  # live: 1 = first voice, 3 = second + third
    storage.rename_speaker(labelled, 3, "Ana")
    relabel_session(storage, labelled, n_speakers=2)
    assert [s.id for s in storage.list_speakers(labelled)] == [1, 2]  # not 1 and 3
    names = [s.speaker for s in storage.list_segments(labelled, LIVE)]
    assert names == ["Speaker 1", "Ana", "Speaker 1"] * 3
    assert [s.speaker_id for s in storage.list_segments(labelled, LIVE)] == [1, 2, 1] * 3


REAL_VOICES = Path("/usr/share/pocketsphinx/test/data")
"""Debian's pocketsphinx-testdata (scripts/setup.sh --system): real people, not espeak-ng."""


@pytest.mark.skipif(not (REAL_VOICES / "librivox").is_dir(), reason="pocketsphinx-testdata is not installed")
def test_a_short_clearly_different_real_voice_is_not_folded_into_a_long_one():
    """Five sentences of a LibriVox reader, then 2.8 s of another person (CMU's "go forward"):
    the estimate finds two voices, and so does the count given, rather than splitting the
    reader in two and folding the other person in."""
    from scribe.audio import decode_file

    def level(x: np.ndarray) -> np.ndarray:  # every utterance at one level
        return (x * 0.05 / np.sqrt(np.mean(x ** 2))).astype(np.float32)

    reader = [level(decode_file(p)) for p in sorted((REAL_VOICES / "librivox").glob("*.wav"))]
    other = level(np.fromfile(REAL_VOICES / "goforward.raw", dtype="<i2").astype(np.float32))
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    audio = np.concatenate([reader[0], gap, other, gap, *(x for r in reader[1:] for x in (r, gap))])
    truth = np.zeros(audio.size // 160, dtype=int)
    truth[(reader[0].size + gap.size) // 160:(reader[0].size + gap.size + other.size) // 160] = 1
    for count in (None, 2):
        windows, labels = sp.diarize(audio, count)
        assert len(set(labels.tolist())) == 2, count
        frames = sp.frame_labels(windows, labels)
        speech = frames[:truth.size] >= 0
        assert np.mean(frames[:truth.size][speech] == truth[speech]) >= 0.9, count
