"""gemini_client against the fake server, through the real google-genai SDK."""

from __future__ import annotations

import socket

import fake_gemini as fg
import numpy as np
import pytest
from fake_gemini import fake_gemini, fake_gemini_factory  # noqa: F401 (fixtures)
from google.genai import types

from scribe import backends
from scribe import gemini_client as gc
from scribe.audio import encode_bytes
from scribe.errors import BackendUnavailableError, TranscriptionError

SCHEMA = {"type": "OBJECT", "properties": {"segments": {"type": "ARRAY", "items": {"type": "OBJECT"}}}}


def _call(fake, *, key=fg.DEFAULT_KEY, version="v1beta", timeout_s=5.0, model="gemini-2.5-flash",
          audio_s: float | None = 1.0):
    client = gc.client_for(key, base_url=fake.base_url, api_version=version, timeout_s=timeout_s)
    contents: list = ["transcribe this"]
    if audio_s is not None:
        pcm = (0.1 * np.sin(np.arange(int(audio_s * 16000)) / 5)).astype(np.float32)
        contents.insert(0, types.Part.from_bytes(data=encode_bytes(pcm, "FLAC"), mime_type="audio/flac"))
    return gc.generate_json(client, model=model, contents=contents, schema=SCHEMA, api_key=key)


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_success_parses_json_and_counts_tokens(fake_gemini, version):
    reply = _call(fake_gemini, version=version, audio_s=2.0)
    assert reply.data["segments"][0]["end"] == pytest.approx(2.0)
    assert reply.usage.input_tokens == 32 * 2 + 60 and reply.usage.output_tokens == 25
    (request,) = fake_gemini.requests
    assert request.api_version == version and request.model == "gemini-2.5-flash"
    assert request.audio_mime == "audio/flac" and request.audio_seconds == pytest.approx(2.0)
    assert request.key_ok and "transcribe this" in request.prompt


def test_text_prompt_gets_the_scripted_json_body(fake_gemini):
    fake_gemini.script(fg.json_reply({"summary": "we agreed", "action_items": ["ship it"]}))
    reply = _call(fake_gemini, audio_s=None)
    assert reply.data == {"summary": "we agreed", "action_items": ["ship it"]}
    assert not fake_gemini.requests[0].is_audio


def test_text_prompt_default_reply_is_configurable(fake_gemini):
    fake_gemini.text_reply = {"text": "hello"}
    assert _call(fake_gemini, audio_s=None).data == {"text": "hello"}


def test_429_is_retryable_with_the_server_delay(fake_gemini):
    fake_gemini.script(fg.rate_limited(2.5))
    with pytest.raises(TranscriptionError) as info:
        _call(fake_gemini)
    assert info.value.retryable and info.value.retry_after == pytest.approx(2.5)
    assert "429" in str(info.value)


@pytest.mark.parametrize("code", [500, 503])
def test_5xx_is_retryable(fake_gemini, code):
    fake_gemini.script(fg.server_error(code))
    with pytest.raises(TranscriptionError) as info:
        _call(fake_gemini)
    assert info.value.retryable and str(code) in str(info.value)


def test_hang_past_the_timeout_is_a_retryable_timeout(fake_gemini):
    fake_gemini.script(fg.hang(5.0))
    with pytest.raises(TranscriptionError) as info:
        _call(fake_gemini, timeout_s=0.5)
    assert info.value.retryable and "in time" in str(info.value)


def test_malformed_body_is_retryable(fake_gemini):
    fake_gemini.script(fg.malformed())
    with pytest.raises(TranscriptionError) as info:
        _call(fake_gemini)
    assert info.value.retryable and "malformed" in str(info.value)


def test_candidate_text_that_is_not_json_is_retryable(fake_gemini):
    fake_gemini.script(fg.text_reply("Sure! Here is the transcript: hello"))
    with pytest.raises(TranscriptionError) as info:
        _call(fake_gemini)
    assert info.value.retryable and "not JSON" in str(info.value)


def test_empty_candidates_are_retryable(fake_gemini):
    fake_gemini.script(fg.empty_candidates())
    with pytest.raises(TranscriptionError) as info:
        _call(fake_gemini)
    assert info.value.retryable and "empty" in str(info.value)


def test_403_is_permanent_and_names_the_key_without_showing_it(fake_gemini):
    fake_gemini.script(fg.forbidden())
    with pytest.raises(TranscriptionError) as info:
        _call(fake_gemini)
    assert not info.value.retryable
    assert str(info.value).startswith(gc.KEY_REJECTED) and fg.DEFAULT_KEY not in str(info.value)


def test_wrong_key_is_permanent_and_never_echoed(fake_gemini):
    wrong = "wrong-key-abcdef123456"
    with pytest.raises(TranscriptionError) as info:
        _call(fake_gemini, key=wrong)
    assert not info.value.retryable and str(info.value).startswith(gc.KEY_REJECTED)
    assert wrong not in str(info.value) and "GEMINI_API_KEY" in str(info.value)


def test_server_message_containing_the_key_is_redacted(fake_gemini):
    fake_gemini.script(fg.bad_request(f"bad thing near {fg.DEFAULT_KEY}"))
    with pytest.raises(TranscriptionError) as info:
        _call(fake_gemini)
    assert not info.value.retryable and fg.DEFAULT_KEY not in str(info.value)
    assert "[redacted]" in str(info.value)


def test_unknown_model_is_permanent(fake_gemini):
    fake_gemini.script(fg.not_found("gemini-0"))
    with pytest.raises(TranscriptionError) as info:
        _call(fake_gemini, model="gemini-0")
    assert not info.value.retryable and "SCRIBE_GEMINI_MODEL" in str(info.value)


def test_unreachable_server_is_retryable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    client = gc.client_for("k" * 20, base_url=f"http://127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(TranscriptionError) as info:
        gc.generate_json(client, model="gemini-2.5-flash", contents=["hi"], schema=SCHEMA)
    assert info.value.retryable and "cannot reach" in str(info.value)


def test_missing_key_is_a_clear_error():
    with pytest.raises(BackendUnavailableError, match="GEMINI_API_KEY"):
        gc.client_for(None)


def test_client_is_cached_per_options(fake_gemini):
    a = gc.client_for("key-a", base_url=fake_gemini.base_url)
    assert gc.client_for("key-a", base_url=fake_gemini.base_url) is a
    assert gc.client_for("key-b", base_url=fake_gemini.base_url) is not a
    assert "key-a" not in repr(gc._clients.keys())


def test_cost_estimate_uses_the_registry_price_table():
    gemini = backends.spec("gemini")
    assert backends.estimate_cost("gemini", "gemini-2.5-flash", 1_000_000, 0, audio=True) == pytest.approx(1.00)
    assert backends.estimate_cost("gemini", "gemini-2.5-flash", 1_000_000, 1_000_000) == pytest.approx(0.30 + 2.50)
    assert backends.price_for("gemini", "gemini-2.5-flash-lite-preview-09-2025") == gemini.prices["gemini-2.5-flash-lite"]
    assert backends.estimate_cost("gemini", "some-other-model", 10, 10) is None
    assert backends.estimate_cost("local", "tiny.en", 10, 10) is None  # prices nothing


def test_retry_delay_is_parsed_from_error_details():
    class Fake(Exception):
        details = {"error": {"details": [{"retryDelay": "17s"}]}}
    assert gc.retry_delay_seconds(Fake()) == 17.0
    assert gc.retry_delay_seconds(Exception()) is None
