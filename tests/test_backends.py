"""Backends have one owner, `scribe/backends.py`: every registered backend passes the same
protocol checks (stub, local Whisper, Gemini through the real SDK against tests/fake_gemini.py,
and any of them through Redis and a Dramatiq worker), and a new backend is one module plus one
registry line: the CLI, the API's upload form, settings and the queue take it with nothing else."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import fake_gemini as fg
from audio_files import encode
from fake_gemini import fake_gemini, fake_gemini_factory  # noqa: F401 (fixtures)
from redis_server import redis_server
from scribe import backends
from scribe.backends import BackendSpec
from scribe.config import Settings
from scribe.core import Transcription
from scribe.errors import SettingsError
from scribe.transcribers import make_transcriber
from scribe.transcribers.base import Transcriber

SR = 16_000
CASES = ("stub", "local", "gemini", "remote")
"""`remote`: the stub backend run by a Dramatiq worker, reached through Redis."""


@contextlib.contextmanager
def built(case: str, settings: Settings, tmp_path: Path, gemini_url: str) -> Iterator[Transcriber]:
    """The transcriber a case names, built the way the app builds it, closed afterwards."""
    if case == "remote":
        from scribe.distributed import RemoteTranscriber, TranscriptionWorker

        with redis_server(tmp_path) as url:
            worker = TranscriptionWorker(url, make_transcriber(settings, "stub")).start()
            remote = RemoteTranscriber(url, backend="stub", model="stub", timeout=30.0)
            try:
                yield remote
            finally:
                remote.close()
                worker.stop()
        return
    if case == "gemini":
        settings = settings.with_changes(gemini_api_key=fg.DEFAULT_KEY, gemini_base_url=gemini_url,
                                         gemini_timeout=10.0)
    transcriber = make_transcriber(settings, case)
    try:
        yield transcriber
    finally:
        transcriber.close()


def test_every_registered_backend_has_a_conformance_case():
    assert set(backends.names()) <= set(CASES), "add the new backend to CASES and built()"


@pytest.mark.parametrize("case", CASES)
def test_every_backend_keeps_the_protocol(case, settings, tmp_path, fake_gemini, tone):
    audio = tone(3.0)
    with built(case, settings, tmp_path, fake_gemini.base_url) as transcriber:
        assert isinstance(transcriber, Transcriber)
        name = "stub" if case == "remote" else case
        assert transcriber.name == name and isinstance(transcriber.model, str) and transcriber.model
        for clip in (audio, np.zeros(SR, dtype=np.float32)):
            result = transcriber.transcribe(clip)
            assert isinstance(result, Transcription) and isinstance(result.segments, list)
            duration = clip.size / SR
            for segment in result.segments:
                assert isinstance(segment.text, str)
                assert 0.0 <= segment.start <= segment.end <= duration + 0.05, (case, segment)
        metered = backends.spec(name).metered
        usage = transcriber.transcribe(audio).usage
        assert (usage is not None and usage.input_tokens > 0) == metered, (case, usage)


# -- a new backend: one module (tests/fake_backend.py) plus one registry line ---------------------
@pytest.fixture
def echo():
    spec = backends.register(BackendSpec("echo", "Echo", "fake_backend", model_setting=None))
    yield spec
    del backends.REGISTRY["echo"]


def test_a_new_backend_is_one_module_and_one_registry_line(echo, tmp_path, tone, capsys, monkeypatch):
    from scribe.api import _upload_form
    from scribe.cli import build_parser, main

    assert Settings.from_env({"SCRIBE_BACKEND": "echo"}).backend == "echo"
    assert make_transcriber(Settings.from_env({}), "echo").name == "echo"
    assert build_parser().parse_args(["transcribe", "a.wav", "--backend", "echo"]).backend == "echo"
    form = _upload_form()["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert "echo" in form["backend"]["enum"]
    monkeypatch.setenv("SCRIBE_SKIP_SILENCE", "false")
    monkeypatch.delenv("SCRIBE_DATA_DIR", raising=False)
    wav = encode(tone(4.0), tmp_path / "a.wav")
    code = main(["transcribe", str(wav), "--backend", "echo", "--policy", "fixed", "--chunk-seconds", "2",
                 "--format", "json", "--db", str(tmp_path / "data" / "scribe.duckdb")])
    out = capsys.readouterr().out
    assert code == 0
    assert [s["text"] for s in json.loads(out)["segments"]] == ["echo heard 2.0 seconds"] * 2


def test_an_unknown_backend_names_the_registered_ones():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"SCRIBE_BACKEND": "whisperx"})
    assert "SCRIBE_BACKEND" in str(caught.value) and "local, gemini, stub" in str(caught.value)
    with pytest.raises(SettingsError, match="GEMINI_API_KEY"):
        Settings.from_env({"SCRIBE_BACKEND": "gemini"})


def test_the_models_a_caller_may_choose_come_from_each_backends_module():
    from scribe.errors import ModelNotFoundError
    from scribe.models import choosable

    assert choosable("gemini", " gemini-2.5-flash ") == "gemini-2.5-flash"  # the price table's
    assert choosable("local", "base") == "base"
    assert choosable("stub", "anything") == "anything"  # no model setting: any name
    assert choosable("gemini", "my-tuned", ("my-tuned",)) == "my-tuned"  # the operator's
    with pytest.raises(ModelNotFoundError, match="gemini-2.5-pro"):
        choosable("gemini", "gemini-9-ultra")
    with pytest.raises(ModelNotFoundError, match="large-v3-turbo"):
        choosable("local", "/etc")
    with pytest.raises(ModelNotFoundError):
        choosable("local", "gemini-2.5-flash")  # one backend's names are not another's
