"""Shared fixtures: real, cheap resources (tmp DuckDB, generated audio, tiny stubs)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests run the bundled tiny.en for every job (fast); tests about another model ask for it.
# Set in the environment too, so CLI subprocesses and AppTest pages inherit it.
TEST_MODELS = {"whisper_model": "tiny.en", "final_model": "tiny.en", "partial_model": "tiny.en"}
os.environ.setdefault("SCRIBE_WHISPER_MODEL", TEST_MODELS["whisper_model"])
os.environ.setdefault("SCRIBE_FINAL_MODEL", TEST_MODELS["final_model"])
os.environ.setdefault("SCRIBE_PARTIAL_MODEL", TEST_MODELS["partial_model"])
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from scribe.config import Settings  # noqa: E402
from scribe.storage import Storage  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh data folder, independent of the caller's environment."""
    return Settings.from_env({}, data_dir=tmp_path / "data", **TEST_MODELS)


@pytest.fixture
def storage(settings: Settings):
    store = Storage(settings.db)
    yield store
    store.close()


@pytest.fixture
def tone():
    """A function making a sine tone (stands in for speech where words do not matter)."""

    def make(seconds: float, freq: float = 220.0, amplitude: float = 0.3, rate: int = 16_000) -> np.ndarray:
        t = np.arange(int(seconds * rate)) / rate
        return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    return make


@pytest.fixture(scope="session")
def meeting(tmp_path_factory) -> tuple[Path, str]:
    """A ~70 s three-voice espeak-ng meeting as a WAV file, and its reference text."""
    import speech

    if not speech.have_espeak():
        pytest.skip("espeak-ng is not installed (scripts/setup.sh --system installs it)")
    audio, reference = speech.meeting_audio()
    path = tmp_path_factory.mktemp("speech") / "meeting.wav"
    return speech.write_wav(audio, path), reference


@pytest.fixture
def local_zone(monkeypatch):
    """A function that sets this process's local time zone (TZ) for the test; the zone
    is restored afterwards."""
    def use(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()
