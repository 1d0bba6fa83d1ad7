"""Backends have one owner, `scribe/backends.py`: every registered backend passes the same
protocol checks (stub, local Whisper, Gemini through the real SDK against tests/fake_gemini.py,
and any of them through Redis and a Dramatiq worker), and a new backend is one module plus one
registry line: the CLI, the API's upload form, settings and the queue take it with nothing else."""

from __future__ import annotations

import ast
import contextlib
import json
from pathlib import Path
from typing import Iterator

import fake_gemini as fg
import numpy as np
import pytest
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


# -- nothing but the registry names a backend ---------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent
REGISTRY_HOMES = ("scribe/backends.py", "scribe/transcribers/")
OTHER_MEANINGS = {
    "scribe/identity.py": 1,  # LOCAL_ID: the local user's id, not a backend
    "scribe/core.py": 1,  # SessionRow.owner_id's default, the local user (core imports nothing from scribe)
    "scribe/summaries.py": 1,  # OFFLINE_SUMMARIZER: the extractive summarizer's stored name
}
"""Files where a backend's name is written with another meaning, and how many times."""


def backend_literals() -> dict[str, list[int]]:
    """{file: [line of every string constant equal to a registered backend's name]} in the code
    outside the registry and the backends' own modules (tests aside)."""
    found: dict[str, list[int]] = {}
    files = [ROOT / "app.py", *[p for folder in ("scribe", "pages", "scripts", "benchmarks")
                                for p in (ROOT / folder).rglob("*.py")]]
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(REGISTRY_HOMES):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in backends.REGISTRY:
                found.setdefault(rel, []).append(node.lineno)
    return found


def test_no_backend_name_is_written_outside_the_registry():
    written = {path: lines for path, lines in backend_literals().items()
               if len(lines) > OTHER_MEANINGS.get(path, 0)}
    assert written == {}, "ask scribe.backends (a BackendSpec field or a registry function) instead"


@pytest.fixture
def echo_with_models():
    """A backend with models, words and a load-test thread count: one registry line, nothing else."""
    spec = backends.register(BackendSpec("echo", "Echo", "fake_backend", model_setting="whisper_model",
                                         words="the echo ({model})", bench_threads=3))
    yield spec
    del backends.REGISTRY["echo"]


def test_a_new_backend_shows_in_the_cli_choices_and_model_list(echo_with_models):
    from scribe.bench import BenchConfig
    from scribe.cli import build_parser
    from scribe.errors import ModelNotFoundError
    from scribe.models import choosable

    parser = build_parser()
    for command in (["transcribe", "a.wav"], ["worker"], ["eval", "a.wav", "--reference", "a.txt"], ["bench"]):
        assert parser.parse_args([*command, "--backend", "echo"]).backend == "echo", command
    assert BenchConfig(backend="echo").threads() == 3
    BenchConfig(backend="echo").validate()
    assert choosable("echo", " echo-2 ") == "echo-2"
    with pytest.raises(ModelNotFoundError, match="echo-1"):
        choosable("echo", "gemini-2.5-flash")
    assert backends.model_changes("echo", "echo-2") == {"whisper_model": "echo-2"}


def _sidebar_script():
    import streamlit as st

    from pages._shared import chosen_settings, sidebar

    sidebar()
    chosen = chosen_settings()
    st.write(f"{chosen.backend} {chosen.whisper_model}")


def test_a_new_backend_shows_in_the_page_choices(echo_with_models, tmp_path, monkeypatch):
    from types import SimpleNamespace

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from scribe.record_view import setup_words
    from scribe.retranscribe import backend_choices

    monkeypatch.setenv("SCRIBE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SCRIBE_BACKEND", "stub")
    st.cache_resource.clear()
    at = AppTest.from_function(_sidebar_script, default_timeout=60).run()
    picker = at.sidebar.selectbox(key="sb_backend")
    assert "echo" in picker.options and "echo: Echo" in picker.proto.help
    picker.set_value("echo").run()
    at.sidebar.text_input(key="sb_model_echo").set_value("echo-2").run()
    assert not at.exception, at.exception
    assert at.markdown[0].value == "echo echo-2"
    st.cache_resource.clear()
    assert "echo" in backend_choices(SimpleNamespace(transcriber=SimpleNamespace(name="stub")))
    assert backends.label("echo") == "Echo"
    assert setup_words("echo", "echo-2", "whole", 5).startswith("Transcribed by the echo (echo-2);")
