"""GeminiTranscriber: what it sends, and how it checks what comes back (real SDK, fake server)."""

from __future__ import annotations

import threading

import fake_gemini as fg
import pytest
from fake_gemini import fake_gemini, fake_gemini_factory  # noqa: F401 (fixtures)

from scribe.errors import BackendUnavailableError, TranscriptionError
from scribe.transcribers import make_transcriber
from scribe.transcribers.gemini import GeminiTranscriber, parse_segments


@pytest.fixture
def gemini_settings(settings, fake_gemini):
    return settings.with_changes(gemini_api_key=fg.DEFAULT_KEY, gemini_base_url=fake_gemini.base_url,
                                 gemini_timeout=5.0)


def test_make_transcriber_routes_gemini_and_sends_flac_inline(gemini_settings, fake_gemini, tone):
    transcriber = make_transcriber(gemini_settings, "gemini")
    result = transcriber.transcribe(tone(3.0))
    segments = result.segments
    assert isinstance(transcriber, GeminiTranscriber) and transcriber.model == gemini_settings.gemini_model
    (request,) = fake_gemini.requests
    assert request.audio_mime == "audio/flac" and request.audio_seconds == pytest.approx(3.0)
    assert request.api_version == "v1beta" and "3.0-second clip" in request.prompt
    assert request.body["generationConfig"]["responseMimeType"] == "application/json"
    assert "segments" in request.body["generationConfig"]["responseSchema"]["properties"]
    assert segments[0].end == pytest.approx(3.0) and segments[0].speaker == "Speaker 1"
    assert result.usage.input_tokens == 32 * 3 + 60 and result.usage.output_tokens == 25


def test_api_version_v1_is_honoured(gemini_settings, fake_gemini, tone):
    make_transcriber(gemini_settings.with_changes(gemini_api_version="v1"), "gemini").transcribe(tone(1.0))
    assert fake_gemini.requests[0].api_version == "v1"


def test_missing_key_names_the_variable(settings):
    with pytest.raises(BackendUnavailableError, match="GEMINI_API_KEY"):
        GeminiTranscriber.from_settings(settings)


def test_times_slightly_outside_the_chunk_are_clamped_and_flagged(gemini_settings, fake_gemini, tone):
    fake_gemini.script(fg.transcript([
        {"start": 0.0, "end": 1.5, "speaker": "Speaker 1", "text": "hello"},
        {"start": 1.5, "end": 2.6, "speaker": "Speaker 2", "text": "there"}]))
    segments = make_transcriber(gemini_settings, "gemini").transcribe(tone(2.0)).segments
    assert [s.flags for s in segments] == [[], ["clamped"]]
    assert segments[1].end == pytest.approx(2.0)


def test_times_far_outside_the_chunk_fail_the_call(gemini_settings, fake_gemini, tone):
    fake_gemini.script(fg.transcript([{"start": 1500, "end": 2600, "text": "milliseconds?"}]))
    with pytest.raises(TranscriptionError, match="outside") as info:
        make_transcriber(gemini_settings, "gemini").transcribe(tone(2.0))
    assert info.value.retryable


@pytest.mark.parametrize("answer, match", [
    (fg.text_reply("not json at all"), "not JSON"),
    (fg.json_reply({"lines": []}), "no 'segments'"),
    (fg.transcript([{"start": "soon", "end": 1, "text": "x"}]), "usable 'start'"),
    (fg.empty_candidates(), "empty"),
])
def test_unusable_answers_are_retryable_failures(gemini_settings, fake_gemini, tone, answer, match):
    fake_gemini.script(answer)
    with pytest.raises(TranscriptionError, match=match) as info:
        make_transcriber(gemini_settings, "gemini").transcribe(tone(1.0))
    assert info.value.retryable


def test_parse_segments_accepts_clock_strings_drops_empty_text_and_sorts():
    segments = parse_segments({"segments": [
        {"start": "0:02.5", "end": "0:03", "text": " later "},
        {"start": 0, "end": 1, "text": "   "},
        {"start": "0.5s", "end": 1.0, "text": "first", "speaker": ""}]}, duration=5.0)
    assert [(s.start, s.end, s.text, s.speaker) for s in segments] == [
        (0.5, 1.0, "first", None), (2.5, 3.0, "later", None)]


def test_parse_segments_empty_list_is_no_speech():
    assert parse_segments({"segments": []}, duration=5.0) == []


def test_each_call_returns_its_own_usage_when_threads_share_a_transcriber(gemini_settings, fake_gemini, tone):
    transcriber = make_transcriber(gemini_settings, "gemini")
    seen: dict[float, int] = {}

    def run(seconds: float) -> None:
        seen[seconds] = transcriber.transcribe(tone(seconds)).usage.input_tokens

    threads = [threading.Thread(target=run, args=(s,)) for s in (1.0, 2.0, 4.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {s: int(32 * s) + 60 for s in (1.0, 2.0, 4.0)}

