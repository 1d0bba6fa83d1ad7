"""AppTest for the Speakers section of a session's detail (pages/_speakers.py)."""

from __future__ import annotations

import re
import time

import pytest
from pagekit import app, close_runtime
from seed_sessions import seed_session

from scribe.config import Settings
from scribe.core import LIVE, SpeakerRow
from scribe.storage import Storage


def line_speakers(at) -> list[str]:
    """The speaker named at the start of each transcript line ("**Name:** text")."""
    return [m.group(1) for m in (re.match(r"\*\*(.+?):\*\* ", e.value or "") for e in at.markdown) if m]


def labelled_widget(widgets, label: str):
    return next(w for w in widgets if w.label == label)


@pytest.fixture
def labelled(tmp_path):
    """A session of four lines by two labelled speakers."""
    data_dir = tmp_path / "data"
    settings = Settings.from_env({"SCRIBE_DATA_DIR": str(data_dir)})
    storage = Storage(settings.db)
    lines = [(None, "Good morning."), (None, "Morning, shall we start?"), (None, "Yes, the budget first."),
             (None, "I will send the numbers.")]
    session = seed_session(storage, settings.audio_dir, lines, title="Budget", created_at=time.time())
    storage.save_speakers(session.id, [SpeakerRow(session.id, 1, "Speaker 1", [1.0, 0.0], 10.0),
                                       SpeakerRow(session.id, 2, "Speaker 2", [0.0, 1.0], 8.0)],
                          [(LIVE, seq, 0, 1 + seq % 2) for seq in range(4)], stage="final")
    storage.close()
    yield data_dir, session.id
    close_runtime(data_dir)


def test_rename_in_the_speakers_section_shows_in_the_transcript(labelled, monkeypatch):
    data_dir, session_id = labelled
    at = app("sessions", data_dir, monkeypatch, session=session_id)
    assert not at.exception
    assert line_speakers(at) == ["Speaker 1", "Speaker 2", "Speaker 1", "Speaker 2"]
    assert any(e.label == "Speakers (2)" for e in at.expander)
    labelled_widget(at.selectbox, "Speaker").set_value(2)
    labelled_widget(at.text_input, "New name").set_value("Priya")
    labelled_widget(at.button, "Rename speaker").click().run()
    assert not at.exception
    assert line_speakers(at) == ["Speaker 1", "Priya", "Speaker 1", "Priya"]
    # The choices show the new name too (widget keys follow the names).
    speaker = labelled_widget(at.selectbox, "Speaker")
    assert list(speaker.options) == ["Speaker 1", "Priya"]


def test_merge_in_the_speakers_section(labelled, monkeypatch):
    data_dir, session_id = labelled
    at = app("sessions", data_dir, monkeypatch, session=session_id)
    labelled_widget(at.selectbox, "Merge").set_value(2).run()
    at.button(key=f"sm-go-{session_id}").click().run()
    assert not at.exception
    assert line_speakers(at) == ["Speaker 1"] * 4
    assert any(e.label == "Speakers (1)" for e in at.expander)
