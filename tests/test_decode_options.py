"""A session's own decode options (the OpenAI API's `language`, `prompt`, `temperature`): stored
with the session before its first chunk, read by the chunk lane beside the vocabulary, and turned
into what each backend takes (faster-whisper's initial prompt, temperature and language; Gemini's
instruction and temperature). Sessions that asked nothing decode exactly as configured. And the
word timestamps a backend without word times cannot give."""

from __future__ import annotations

import threading

import fake_gemini as fg
import pytest
import speech
from fake_gemini import fake_gemini, fake_gemini_factory  # noqa: F401 (fixtures)
from starlette.testclient import TestClient

from scribe.api import ApiContext, create_api
from scribe.chunking import parse_policy
from scribe.core import DecodeOptions
from scribe.ingest import ingest_file, wait_for_session
from scribe.openai_api import create_openai_api
from scribe.pipeline import Pipeline
from scribe.runtime import Runtime
from scribe.transcribers.gemini import GeminiTranscriber
from scribe.transcribers.local import LocalWhisperTranscriber

PROMPT = "Quenby Zarkowitz, Tsvetana Oyelaran."
TOKEN = "opts-t0ken-for-tests-0123456789"


class RecordingModel:
    """The real faster-whisper model, with the arguments of every `transcribe` call kept."""

    def __init__(self, model) -> None:
        self.model = model
        self.calls: list[dict] = []
        self._lock = threading.Lock()

    def transcribe(self, audio, **kwargs):
        with self._lock:
            self.calls.append(kwargs)
        return self.model.transcribe(audio, **kwargs)

    def __getattr__(self, name):
        return getattr(self.model, name)


@pytest.fixture(scope="module")
def sentence(tmp_path_factory):
    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed (scripts/setup.sh --system installs it)")
    audio, _ = speech.meeting_audio(["Please send the report to Quenby Zarkowitz before Thursday."])
    return speech.write_wav(audio, tmp_path_factory.mktemp("opts") / "report.wav")


def _decode(storage, settings, transcriber, path, options: DecodeOptions | None) -> str:
    pipeline = Pipeline(storage, transcriber, audio_dir=settings.audio_dir).start()
    try:
        result = ingest_file(path, storage=storage, pipeline=pipeline, policy=parse_policy("pause:15"),
                             options=options, vocabulary=["Kubeflow"])
        assert wait_for_session(storage, result.session.id, timeout=120)["done"] == 1
    finally:
        pipeline.stop()
    return " ".join(s.text for s in storage.list_segments(result.session.id))


def test_the_chunk_lane_gives_whisper_the_sessions_prompt_and_temperature(storage, settings, sentence):
    transcriber = LocalWhisperTranscriber("tiny.en")
    model = transcriber._whisper = RecordingModel(transcriber._whisper)  # watch what reaches it
    plain = _decode(storage, settings, transcriber, sentence, None)
    first, call = model.calls  # without the vocabulary, then with it (only term changes are kept)
    assert "hotwords" not in first and call["hotwords"] == "Kubeflow." and call["language"] == first["language"] == "en"
    assert "initial_prompt" not in call and "temperature" not in call  # faster-whisper's defaults

    asked = DecodeOptions(prompt=PROMPT, temperature=0.4)
    prompted = _decode(storage, settings, transcriber, sentence, asked)
    first, call = model.calls[-2:]
    assert first["initial_prompt"] == call["initial_prompt"] == PROMPT and call["hotwords"] == "Kubeflow."
    assert call["temperature"] == [0.4, 0.6, 0.8, 1.0]  # the asked one first, then Whisper's fallback
    assert "Quenby Zarkowitz" in prompted and "Quenby Zarkowitz" not in plain, (plain, prompted)


def test_an_english_only_model_decodes_english_and_a_multilingual_one_the_asked_language():
    german = DecodeOptions(language="de")
    assert LocalWhisperTranscriber("tiny.en").decode_options([], german)["language"] == "en"
    base = LocalWhisperTranscriber("base", language="en")
    assert base.decode_options([], german)["language"] == "de"
    assert base.decode_options([], DecodeOptions())["language"] == "en"


def test_gemini_gets_the_prompt_and_language_in_its_instruction_and_the_temperature(settings, fake_gemini, tone):
    gemini = GeminiTranscriber.from_settings(settings.with_changes(
        gemini_api_key=fg.DEFAULT_KEY, gemini_base_url=fake_gemini.base_url, gemini_timeout=5.0))
    gemini.transcribe(tone(2.0), vocabulary=["Kubeflow"])
    gemini.transcribe(tone(2.0), vocabulary=["Kubeflow"],
                      options=DecodeOptions(language="de", prompt=PROMPT, temperature=0.7))
    plain, asked = (r.body for r in fake_gemini.requests)
    instruction = " ".join(p["text"] for p in asked["systemInstruction"]["parts"])
    assert PROMPT in instruction and "'de'" in instruction and "Kubeflow" in instruction
    assert asked["generationConfig"]["temperature"] == pytest.approx(0.7)
    assert plain["generationConfig"]["temperature"] == 0.0
    assert PROMPT not in " ".join(p["text"] for p in plain["systemInstruction"]["parts"])


@pytest.fixture
def stub_v1(settings):
    """`/v1` in this process over a Runtime with the stub backend (no model, no word times)."""
    rt = Runtime.build(settings.with_changes(backend="stub", skip_silence=False))
    context = ApiContext(runtime=lambda: rt, runtime_for=lambda b, m: rt, token=lambda: TOKEN)
    create_api(context)  # installs the access rule `/v1` shares with `/api`
    try:
        with TestClient(create_openai_api(context), base_url="http://127.0.0.1",
                        headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            yield rt, client
    finally:
        rt.close()


def _post(client, path, **fields):
    with open(path, "rb") as f:
        return client.post("/audio/transcriptions", files={"file": ("report.wav", f, "audio/wav")},
                           data={"model": "whisper-1", **fields})


def test_the_v1_form_fields_become_the_sessions_options_before_its_chunks_are_decoded(stub_v1, sentence):
    rt, client = stub_v1
    answers = [_post(client, sentence, prompt=PROMPT, temperature="0.3", language="en"), _post(client, sentence)]
    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    asked, plain = (a.headers["X-Scribe-Session"] for a in answers)
    assert rt.storage.options_for(asked) == DecodeOptions(language="en", prompt=PROMPT, temperature=0.3)
    assert rt.storage.options_for(plain) == DecodeOptions()
    rt.storage.delete_session(asked)
    assert rt.storage.options_for(asked) == DecodeOptions()


def test_word_timestamps_from_a_backend_without_word_times_are_a_clear_400(stub_v1, sentence):
    rt, client = stub_v1
    answer = _post(client, sentence, response_format="verbose_json", **{"timestamp_granularities[]": "word"})
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["param"] == "timestamp_granularities"
    assert error["code"] == "unsupported_value" and "stub" in error["message"]
    assert rt.storage.list_sessions() == []  # refused before anything was stored
