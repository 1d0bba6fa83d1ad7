"""Voice profiles: stored, enrolled from real (generated) speech with its refusals, and
recognised in the next session's speakers through the live labeller and the relabel."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import speech
from seed_sessions import record_through
from test_speakers import VOICES

from scribe import voices
from scribe.audio import SAMPLE_RATE
from scribe.core import LIVE
from scribe.diarization import SpeakerLabeler, relabel_session
from scribe.errors import NotFoundError, ScribeError
from scribe.export import render
from scribe.pipeline import Pipeline
from scribe.search import search
from scribe.transcribers.stub import StubTranscriber

pytestmark = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None or not speech.have_espeak(),
                                reason="needs resemblyzer and espeak-ng (scripts/setup.sh installs both)")

HOSTILE = ["<script>alert('x')</script>", "'; DROP TABLE voice_profiles; --", "**Ana** | `rm -rf`",
           "Zoë 李 ☃"]


def _voice(voice: str, turns: slice) -> np.ndarray:
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    return np.concatenate([x for t in speech.MEETING_TURNS[turns] for x in (speech.synthesize(t, voice=voice), pause)])


@pytest.fixture(scope="module")
def recordings() -> dict[str, np.ndarray]:
    """Enrolment recordings of two voices, from other sentences than the sessions use."""
    return {v: _voice(v, slice(10, 15)) for v in VOICES[:2]}


def _session(storage, settings, turns_audio) -> str:
    pipeline = Pipeline(storage, StubTranscriber(), audio_dir=settings.audio_dir).start()
    labeler = SpeakerLabeler(storage, max_speakers=8).attach(pipeline)
    try:
        session_id = record_through(storage, pipeline, turns_audio)
        assert pipeline.wait_idle(60) and labeler.wait_idle(120)
    finally:
        labeler.stop()
        pipeline.stop()
    assert not labeler.errors
    return session_id


@pytest.fixture(scope="module")
def meeting_audio() -> np.ndarray:
    """Nine 4 s turns, the three voices rotating (as test_speakers records them)."""
    out = []
    for n, text in enumerate(speech.MEETING_TURNS[:9]):
        audio = speech.synthesize(text, voice=VOICES[n % 3])[:int(3.5 * SAMPLE_RATE)]
        out.append(np.pad(audio, (0, 4 * SAMPLE_RATE - audio.size)))
    return np.concatenate(out)


# -- the store ----------------------------------------------------------------------------

def test_profiles_are_added_renamed_improved_and_deleted(storage):
    profile = storage.add_profile("  Ana   Lima ", [3.0, 4.0], 12.0, created_by="ana@example.org")
    assert profile.name == "Ana Lima" and profile.embedding == pytest.approx([0.6, 0.8])
    assert profile.created_by == "ana@example.org" and profile.recordings == 1
    better = storage.improve_profile(profile.id, [0.0, 1.0], 12.0)
    assert better.seconds == 24.0 and better.recordings == 2
    assert better.embedding == pytest.approx(np.array([0.6, 1.8]) / np.linalg.norm([0.6, 1.8]))
    assert storage.rename_profile(profile.id, "Ana").name == "Ana"
    with pytest.raises(ScribeError, match="exists already"):
        storage.add_profile("ANA", [1.0, 0.0], 10.0)
    assert storage.delete_profile(profile.id) == 0
    assert storage.list_profiles() == []
    with pytest.raises(NotFoundError):
        storage.delete_profile(profile.id)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_kept_literally(storage, name):
    profile = storage.add_profile(name, [1.0, 0.0], 10.0)
    assert storage.get_profile(profile.id).name == name
    assert [p.name for p in storage.list_profiles()] == [name]


@pytest.mark.parametrize("name", ["", "   \n\t ", "x" * 61, "A" * 100_000])
def test_empty_or_huge_names_are_refused_and_nothing_changes(storage, name):
    kept = storage.add_profile("Kept", [1.0, 0.0], 10.0)
    with pytest.raises(ScribeError, match="1 to 60 characters"):
        storage.add_profile(name, [1.0, 0.0], 10.0)
    with pytest.raises(ScribeError, match="1 to 60 characters"):
        storage.rename_profile(kept.id, name)
    assert [(p.id, p.name) for p in storage.list_profiles()] == [(kept.id, "Kept")]


# -- enrolment from a recording -------------------------------------------------------------

def test_one_voice_enrols_with_its_seconds(recordings):
    voice = voices.voice_from_audio(recordings[VOICES[0]])
    assert voice.seconds > 10 and np.linalg.norm(voice.embedding) == pytest.approx(1.0)


def test_silence_is_refused_as_silence():
    with pytest.raises(voices.EnrolmentError, match="silent"):
        voices.voice_from_audio(np.zeros(20 * SAMPLE_RATE, np.float32))


def test_noise_is_refused_as_not_speech():
    noise = speech.add_noise(np.zeros(20 * SAMPLE_RATE, np.float32), -20)
    with pytest.raises(voices.EnrolmentError, match="no speech found"):
        voices.voice_from_audio(noise)


def _music(seconds: float) -> np.ndarray:
    """A melody of plucked notes with harmonics over a kick drum: music, not speech."""
    rng = np.random.default_rng(3)
    t = np.arange(int(0.25 * SAMPLE_RATE)) / SAMPLE_RATE
    notes = []
    for n in range(int(seconds * 4)):
        f = 220 * 2 ** (rng.choice([0, 3, 5, 7, 10, 12]) / 12)
        tone = sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 6)) * np.exp(-6 * t)
        kick = np.sin(2 * np.pi * 60 * t) * np.exp(-30 * t) * (n % 2 == 0)
        notes.append(0.2 * tone + 0.3 * kick)
    return np.concatenate(notes).astype(np.float32)


def test_music_is_refused_with_why():
    with pytest.raises(voices.EnrolmentError, match="speech"):
        voices.voice_from_audio(_music(20))


def test_two_voices_are_refused(recordings):
    a, b = recordings[VOICES[0]], recordings[VOICES[1]]
    with pytest.raises(voices.EnrolmentError, match="more than one voice"):
        voices.voice_from_audio(np.concatenate([a, b]))


def test_too_little_speech_is_refused():
    with pytest.raises(voices.EnrolmentError, match="at least 5 s"):
        voices.voice_from_audio(speech.synthesize("Hello there.", voice=VOICES[0]))


def test_more_speech_of_another_person_does_not_improve_a_profile(storage, recordings):
    voices.enrol(storage, "Ana", voices.voice_from_audio(recordings[VOICES[0]]))
    with pytest.raises(voices.EnrolmentError, match="does not sound like"):
        voices.enrol(storage, "ana", voices.voice_from_audio(recordings[VOICES[1]]))
    assert storage.list_profiles()[0].recordings == 1


# -- recognition in sessions ------------------------------------------------------------------

def test_a_voice_named_once_is_named_in_the_next_session(storage, settings, meeting_audio):
    first = _session(storage, settings, meeting_audio)
    voices.remember_speaker(storage, first, 2, "Bruno <b>")
    second = _session(storage, settings, meeting_audio)
    names = [s.speaker for s in storage.list_segments(second, LIVE)]
    assert names == ["Speaker 1", "Bruno <b>", "Speaker 3"] * 3
    speaker = {s.id: s for s in storage.list_speakers(second)}[2]
    assert speaker.profile_by == "auto" and speaker.profile_id == storage.list_profiles()[0].id
    session = storage.get_session(second)
    segments = storage.list_segments(second, LIVE)
    assert "Bruno <b>: stub" in render("txt", session, segments)
    assert {h.speaker for h in search(storage, "stub audio").hits} >= {"Bruno <b>"}


def test_two_speakers_never_share_a_profile(storage, settings, meeting_audio):
    session_id = _session(storage, settings, meeting_audio)
    profile = voices.remember_speaker(storage, session_id, 1, "Ana")
    speakers = storage.list_speakers(session_id)
    copy = [s for s in speakers if s.id == 1][0]
    # Speaker 3 gets Ana's very voice: still only one speaker is named Ana.
    storage.save_speakers(session_id, [type(copy)(session_id, 3, "Speaker 3", copy.centroid, copy.seconds)], [],
                          stage=LIVE)
    voices.recognise(storage, session_id)
    named = [s for s in storage.list_speakers(session_id) if s.profile_id == profile.id]
    assert [s.id for s in named] == [1]


def test_undoing_a_match_keeps_the_speaker_unnamed_through_relabels(storage, settings, meeting_audio):
    first = _session(storage, settings, meeting_audio)
    voices.remember_speaker(storage, first, 1, "Ana")
    second = _session(storage, settings, meeting_audio)
    assert storage.list_segments(second, LIVE)[0].speaker == "Ana"
    voices.undo_match(storage, second, 1)
    relabel_session(storage, second, n_speakers=3)
    assert storage.list_segments(second, LIVE)[0].speaker == "Speaker 1"
    assert {s.id: s.profile_by for s in storage.list_speakers(second)}[1] == "refused"


def test_a_person_named_speaker_is_never_renamed_by_a_profile(storage, settings, meeting_audio):
    first = _session(storage, settings, meeting_audio)
    voices.remember_speaker(storage, first, 1, "Ana")
    second = _session(storage, settings, meeting_audio)
    storage.rename_speaker(second, 1, "Ana Maria")
    relabel_session(storage, second, n_speakers=3)
    assert storage.list_segments(second, LIVE)[0].speaker == "Ana Maria"


def test_deleting_a_profile_in_use_keeps_past_names_as_text(storage, settings, meeting_audio):
    first = _session(storage, settings, meeting_audio)
    profile = voices.remember_speaker(storage, first, 1, "Ana")
    assert storage.profile_uses(profile.id) == 1
    assert storage.delete_profile(profile.id) == 1
    assert storage.list_segments(first, LIVE)[0].speaker == "Ana"
    assert storage.list_profiles() == []
    raw = storage._rows("SELECT count(*) AS n FROM voice_profiles")[0]["n"]
    assert raw == 0
    second = _session(storage, settings, meeting_audio)  # the voice is no longer known
    assert storage.list_segments(second, LIVE)[0].speaker == "Speaker 1"


def test_renaming_a_profile_renames_the_speakers_it_names(storage, settings, meeting_audio):
    first = _session(storage, settings, meeting_audio)
    profile = voices.remember_speaker(storage, first, 3, "Ana")
    storage.rename_profile(profile.id, "Ana Lima")
    assert storage.list_segments(first, LIVE)[2].speaker == "Ana Lima"


def test_remembering_a_speaker_with_too_little_speech_is_refused(storage, settings, meeting_audio):
    session_id = _session(storage, settings, meeting_audio)
    storage.save_speakers(session_id, [type(storage.list_speakers(session_id)[0])(
        session_id, 4, "Speaker 4", [1.0] + [0.0] * 255, 1.5)], [], stage=LIVE)
    with pytest.raises(voices.EnrolmentError, match="spoke 1.5 s"):
        voices.remember_speaker(storage, session_id, 4, "Ana")
