"""`python -m scribe transcribe FILE --backend gemini` against the fake server, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fake_gemini as fg
import pytest
import speech
from fake_gemini import fake_gemini, fake_gemini_factory  # noqa: F401 (fixtures)

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def short_meeting(tmp_path_factory) -> Path:
    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed")
    audio, _ = speech.meeting_audio(speech.MEETING_TURNS[:3])
    return speech.write_wav(audio, tmp_path_factory.mktemp("cli") / "meeting.wav")


def _run(file: Path, tmp_path: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCRIBE_", "GEMINI_"))}
    env.update({"SCRIBE_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1",
                "SCRIBE_GEMINI_RPM": "600", "SCRIBE_RETRY_BASE_SECONDS": "0.05", **env_extra})
    return subprocess.run([sys.executable, "-m", "scribe", "transcribe", str(file), "--backend", "gemini",
                           "--chunk-seconds", "5", "--policy", "fixed"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_cli_transcribes_with_gemini(fake_gemini, short_meeting, tmp_path):
    fake_gemini.script(fg.rate_limited(0.1))  # one transient failure on the way
    result = _run(short_meeting, tmp_path, {"GEMINI_API_KEY": fg.DEFAULT_KEY,
                                            "SCRIBE_GEMINI_BASE_URL": fake_gemini.base_url})
    assert result.returncode == 0, result.stderr
    chunks = len(fake_gemini.audio_requests()) - 1
    assert chunks >= 2 and result.stdout.count("fake words") == chunks
    assert all(r.model == "gemini-2.5-flash" for r in fake_gemini.requests)
    assert fg.DEFAULT_KEY not in result.stdout + result.stderr


def test_cli_says_why_when_the_key_is_rejected(fake_gemini, short_meeting, tmp_path):
    wrong = "wrong-key-777888999"
    result = _run(short_meeting, tmp_path, {"GEMINI_API_KEY": wrong,
                                            "SCRIBE_GEMINI_BASE_URL": fake_gemini.base_url})
    assert result.returncode == 1
    assert "Gemini rejected the API key" in result.stderr and "GEMINI_API_KEY" in result.stderr
    assert wrong not in result.stdout + result.stderr


def test_cli_without_a_key_names_the_variable(short_meeting, tmp_path):
    result = _run(short_meeting, tmp_path, {})
    assert result.returncode == 2 and "GEMINI_API_KEY" in result.stderr
