"""The test speech's layout: the browser walk test reads which turns a recording heard from it."""

from __future__ import annotations

import numpy as np
import pytest
import speech

from scribe.audio import SAMPLE_RATE

if not speech.have_espeak():
    pytest.skip("needs espeak-ng", allow_module_level=True)


def test_each_turn_starts_where_its_speech_follows_the_gap():
    meeting = speech.meeting(speech.MEETING_TURNS[:3], gap_s=0.7)
    assert meeting.turn_starts[0] == 0.0
    for start in meeting.turn_starts[1:]:
        at = round(start * SAMPLE_RATE)
        assert not np.any(meeting.audio[at - int(0.7 * SAMPLE_RATE):at])  # the whole gap is silent
        assert np.abs(meeting.audio[at:at + SAMPLE_RATE // 2]).max() > 0.1  # then the turn speaks
    assert meeting.begun_by(meeting.turn_starts[1] + 0.01) == " ".join(speech.MEETING_TURNS[:2])


def test_meeting_audio_is_the_meetings_audio_and_reference():
    audio, reference = speech.meeting_audio(speech.MEETING_TURNS[:2], gap_s=0.4)
    meeting = speech.meeting(speech.MEETING_TURNS[:2], gap_s=0.4)
    assert np.array_equal(audio, meeting.audio) and reference == meeting.reference
