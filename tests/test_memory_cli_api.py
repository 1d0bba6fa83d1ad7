"""`voices` and `vocabulary` on the command line, on the database and through a running app's
API (same lines, same exit codes), and `transcribe --vocabulary` both ways."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import httpx2
import numpy as np
import pytest
import speech
from scribe_app import ScribeApp
from test_speakers import VOICES

from scribe import voices
from scribe.cli import main as cli_main
from scribe.config import Settings
from scribe.core import LIVE, SpeakerRow
from scribe.storage import Storage

pytestmark = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None or not speech.have_espeak(),
                                reason="needs resemblyzer and espeak-ng (scripts/setup.sh installs both)")
HOSTILE = "<b>Ana</b> '; DROP TABLE voice_profiles; --"


@pytest.fixture(scope="module")
def voice_files(tmp_path_factory) -> dict[str, Path]:
    """One person speaking (for enroll), silence, and two voices (both refused)."""
    folder = tmp_path_factory.mktemp("voices")
    pause = np.zeros(8000, np.float32)
    one = [np.concatenate([x for t in speech.MEETING_TURNS[i:i + 5] for x in (speech.synthesize(t, voice=v), pause)])
           for i, v in ((0, VOICES[0]), (5, VOICES[1]))]
    return {"bruno": speech.write_wav(one[0], folder / "bruno.wav"),
            "two": speech.write_wav(np.concatenate(one), folder / "two.wav"),
            "silence": speech.write_wav(np.zeros(16000 * 10, np.float32), folder / "silence.wav"),
            "ana": one[1]}


def _data(tmp_path: Path, voice_files) -> tuple[Path, str]:
    """A data folder with one session whose speaker 1 is Ana's voice (20 s of speech)."""
    data = tmp_path / "data"
    storage = Storage(Settings.from_env({}, data_dir=data).db)
    try:
        session = storage.create_session(title="Standup", source="cli", backend="stub", model="stub",
                                         chunk_seconds=4, chunk_policy="fixed")
        ana = voices.voice_from_audio(voice_files["ana"])
        storage.save_speakers(session.id, [SpeakerRow(session.id, 1, "Speaker 1", ana.embedding.tolist(), 20.0)],
                              [], stage=LIVE)
    finally:
        storage.close()
    return data, session.id


def _script(session_id: str, files: dict[str, Path]) -> list[list[str]]:
    return [
        ["vocabulary", "add", "Siobhan", "DuckDB", "Zoë"], ["vocabulary", "list", "--json"],
        ["vocabulary", "remove", "duckdb"], ["vocabulary", "remove", "nothing-like-it"],
        ["vocabulary", "add", *[f"t{n}" for n in range(10_000)]], ["vocabulary", "add", "a;b"],
        ["vocabulary", "list"],
        ["voices", "enroll", "Bruno", str(files["bruno"])],
        ["voices", "enroll", "Nobody", str(files["silence"])],
        ["voices", "enroll", "Pair", str(files["two"])],
        ["voices", "add", session_id, "1", HOSTILE], ["voices", "add", session_id, "7", "Ghost"],
        ["voices", "add", session_id, "1", ""], ["voices", "add", session_id, "1", "x" * 500],
        ["voices", "list"], ["voices", "list", "--json"],
    ]


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    rc = cli_main(argv)
    out, err = capsys.readouterr()
    ids = re.sub(r"\b[0-9a-f]{12}\b", "ID", out)
    ids = re.sub(r'"(created_at|updated_at)": [0-9.]+', r'"\1": 0', ids)
    ids = re.sub(r'"created_by": ("local"|null)', '"created_by": "who"', ids)  # the API records its caller
    return rc, re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "TIME", ids), err


def _env(monkeypatch, data: Path) -> None:
    for var in ("SCRIBE_DB", "SCRIBE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(data))
    monkeypatch.setenv("SCRIBE_BACKEND", "stub")


def test_commands_on_the_database_and_through_the_app_agree(tmp_path, voice_files, monkeypatch, capsys):
    local_data, local_session = _data(tmp_path / "local", voice_files)
    _env(monkeypatch, local_data)
    on_database = [_run(capsys, argv) for argv in _script(local_session, voice_files)]

    app_data, app_session = _data(tmp_path / "app", voice_files)
    _env(monkeypatch, app_data)
    app = ScribeApp(app_data, tmp_path / "app.log")
    monkeypatch.setenv("SCRIBE_API_URL", app.url)
    try:
        through_app = [_run(capsys, argv) for argv in _script(app_session, voice_files)]
    finally:
        app.stop()
    for argv, local, remote in zip(_script("S", voice_files), on_database, through_app):
        assert local[:2] == remote[:2], argv[:3]
    exits = [rc for rc, _, _ in on_database]
    assert exits == [0, 0, 0, 2, 2, 2, 0, 0, 2, 2, 0, 2, 2, 2, 0, 0]
    errors = [err for _, _, err in on_database]
    assert "not in the vocabulary" in errors[3]
    assert "at most 100 terms" in errors[4] and "semicolons" in errors[5]
    assert "silent" in errors[8] and "more than one voice" in errors[9]
    assert "no speaker 7" in errors[11] and errors[12].count("1 to 60") == 1 and "1 to 60" in errors[13]
    listed = json.loads(on_database[-1][1])
    assert sorted(p["name"] for p in listed) == sorted(["Bruno", HOSTILE])  # the name as typed
    assert HOSTILE in on_database[-2][1]
    assert {p["name"]: p["sessions_named"] for p in listed} == {"Bruno": 0, HOSTILE: 1}
    assert "Siobhan" in on_database[6][1] and "DuckDB" not in on_database[6][1]


def test_rename_and_delete_through_the_api_keep_past_names(tmp_path, voice_files):
    data, session_id = _data(tmp_path, voice_files)
    app = ScribeApp(data, tmp_path / "app.log")
    try:
        with httpx2.Client(base_url=f"{app.url}/api", timeout=60) as api:
            made = api.post(f"/sessions/{session_id}/speakers/1/voice", json={"name": "Ana"})
            assert made.status_code == 201 and "embedding" not in made.json()
            profile_id = made.json()["id"]
            assert api.patch(f"/voices/{profile_id}", json={"name": "Ana Lima"}).json()["name"] == "Ana Lima"
            assert api.patch(f"/voices/{profile_id}", json={"name": ""}).status_code == 400
            assert api.patch("/voices/nope", json={"name": "X"}).status_code == 404
            assert api.delete(f"/voices/{profile_id}").json()["speakers_keeping_name"] == 1
            assert api.get("/voices").json() == {"voices": []}
            with open(voice_files["silence"], "rb") as handle:
                refused = api.post("/voices/enroll", files={"file": ("s.wav", handle)}, data={"name": "S"})
            assert refused.status_code == 400 and "silent" in refused.json()["error"]
            assert api.post("/vocabulary", json={"terms": "Siobhan"}).status_code == 400
            assert api.post("/vocabulary", json={"terms": ["Siobhan"]}).json()["added"] == ["Siobhan"]
            assert api.delete("/vocabulary/SIOBHAN").json() == {"removed": "SIOBHAN"}
    finally:
        app.stop()
    with app.db() as con:
        assert con.execute("SELECT name, profile_id FROM speakers").fetchall() == [("Ana Lima", None)]
        assert con.execute("SELECT count(*) FROM voice_profiles").fetchone() == (0,)


def test_transcribe_with_a_vocabulary_keeps_it_for_that_session(tmp_path, voice_files, monkeypatch, capsys):
    data = tmp_path / "data"
    _env(monkeypatch, data)
    rc, _, err = _run(capsys, ["transcribe", str(voice_files["bruno"]), "--vocabulary", "Quorvia, Okonkwo"])
    assert rc == 0, err
    with pytest.raises(SystemExit) as refused:  # argparse refuses the flag before any work
        cli_main(["transcribe", str(voice_files["bruno"]), "--vocabulary", "a\x01b"])
    assert refused.value.code == 2 and "control characters" in capsys.readouterr().err
    storage = Storage(Settings.from_env({}, data_dir=data).db)
    try:
        session = storage.list_sessions()[0]
        assert storage.vocabulary_for(session.id) == ["Quorvia", "Okonkwo"]
        assert storage.list_vocabulary() == []  # the team's list is untouched
    finally:
        storage.close()
