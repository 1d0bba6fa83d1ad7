"""The CLI while a real app holds the database: the same commands answer through the app's API
with the same output and exit codes as on the database itself, `transcribe` uploads and waits,
and when nothing can take over one line says what holds the file and what to do."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from audio_files import encode
from pagekit import seed_demo
from scribe_app import ScribeApp, free_port

from scribe import cli

TOKEN = "cli-token-0123456789abcdef"


@pytest.fixture
def env(monkeypatch, tmp_path):
    """The CLI's environment: a seeded data folder, the stub backend, no token."""
    data = tmp_path / "data"
    ids = seed_demo(data)
    for var in ("SCRIBE_DB", "SCRIBE_API_TOKEN", "GEMINI_API_KEY", "SCRIBE_WEBHOOK_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(data))
    monkeypatch.setenv("SCRIBE_BACKEND", "stub")
    monkeypatch.setenv("SCRIBE_SKIP_SILENCE", "false")
    return data, ids


def _start(data: Path, tmp_path: Path, monkeypatch, **extra: str) -> ScribeApp:
    app = ScribeApp(data, tmp_path / f"app-{time.monotonic_ns()}.log", **extra)
    monkeypatch.setenv("SCRIBE_API_URL", app.url)
    return app


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _tone(path: Path, seconds: float) -> Path:
    t = np.arange(int(seconds * 16_000)) / 16_000
    return encode((0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), path)


def test_read_commands_through_the_app_match_the_database(env, tmp_path, monkeypatch, capsys):
    data, ids = env
    commands = [
        ["sessions"], ["sessions", "--json"], ["sessions", "--limit", "2"],
        ["search", "budget"], ["search", "--json", '"launch date"'], ["search", "zebra"],
        ["search", "thank", "--limit", "1", "--page", "2"], ["search", "   "],
        ["export", ids["plan"], "--format", "srt"], ["export", ids["final"], "--format", "json"],
        ["export", ids["final"], "--transcript", "live", "--format", "md"],
        ["export", ids["plan"], "--transcript", "final"], ["export", "no-such-session"],
    ]
    app = _start(data, tmp_path, monkeypatch)
    try:
        through_app = [_cli(capsys, *argv) for argv in commands]
    finally:
        app.stop()
    on_database = [_cli(capsys, *argv) for argv in commands]
    for argv, remote, local in zip(commands, through_app, on_database):
        assert remote == local, argv
    exits = [rc for rc, _, _ in on_database]
    assert exits == [0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 2, 2]
    assert "no session 'no-such-session'" in on_database[-1][2]


def test_transcribe_through_the_app_uploads_waits_and_prints_the_transcript(env, tmp_path, monkeypatch, capsys):
    data, _ = env
    wav = _tone(tmp_path / "retro.wav", 11.0)
    app = _start(data, tmp_path, monkeypatch, SCRIBE_STUB_LATENCY="0.2-0.2")
    try:
        rc, out, err = _cli(capsys, "transcribe", str(wav), "--chunk-seconds", "4", "--policy", "fixed",
                            "--title", "Retro", "--format", "srt")
        assert rc == 0, err
        assert out.count("stub audio of") == 3 and out.startswith("1\n00:00:00,000 --> ")
        assert "transcribing: 100%" in err and "3 chunks done, 0 failed" in err
        rc, listed, _ = _cli(capsys, "sessions", "--json")
        retro = next(s for s in json.loads(listed) if s["title"] == "Retro")
        assert retro["status"] == "done" and retro["source"] == "upload" and retro["chunks"]["done"] == 3
        output = tmp_path / "retro.txt"
        assert _cli(capsys, "export", retro["id"], "--output", str(output))[0] == 0
        assert output.read_text().count("stub audio of") == 3
        junk = tmp_path / "junk.mp3"
        junk.write_bytes(b"\x00" * 5000)
        rc, out, err = _cli(capsys, "transcribe", str(junk))
        assert rc == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1
    finally:
        app.stop()


def test_write_commands_through_the_app(env, tmp_path, monkeypatch, capsys):
    data, ids = env
    reference = tmp_path / "ref.txt"
    reference.write_text("a tone with no words\n")
    wav = _tone(tmp_path / "lab.wav", 6.0)
    app = _start(data, tmp_path, monkeypatch)
    try:
        rc, out, _ = _cli(capsys, "summarize", ids["plan"], "--json")
        assert rc == 0 and json.loads(out)["version"] == 1
        rc, out, _ = _cli(capsys, "summarize", ids["plan"])
        assert rc == 0 and "(version 2, local" in out
        rc, out, err = _cli(capsys, "delete", ids["final"])
        assert rc == 0 and out.startswith(f"deleted session {ids['final']}: 2 segments, 1 chunks")
        assert _cli(capsys, "delete", ids["final"])[0] == 2
        rc, out, err = _cli(capsys, "eval", str(wav), "--reference", str(reference), "--backend", "stub",
                            "--policy", "fixed:3")
        assert rc == 0 and "fixed:3" in out
    finally:
        app.stop()
    with duckdb.connect(str(data / "scribe.duckdb"), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM summaries").fetchone()[0] == 2
        assert db.execute("SELECT count(*) FROM sessions WHERE id = ?", [ids["final"]]).fetchone()[0] == 0
        assert db.execute("SELECT policy FROM lab_runs").fetchall() == [("fixed:3",)]


def _seed_speakers(data: Path, session_id: str) -> None:
    """Three labelled voices on the planning session (chunks 0 and 2, 1, 3)."""
    from scribe.core import SpeakerRow
    from scribe.storage import Storage

    storage = Storage(data / "scribe.duckdb")
    try:
        rows = [SpeakerRow(session_id, i, f"Speaker {i}", [0.0] * 4, 2.0) for i in (1, 2, 3)]
        storage.save_speakers(session_id, rows, [("live", 0, 0, 1), ("live", 1, 0, 2), ("live", 2, 0, 1),
                                                 ("live", 3, 0, 3)], stage="live")
    finally:
        storage.close()


SPEAKER_COMMANDS = [
    ["--json"], ["--rename", "1", "Alice Smith"], ["--merge", "1", "3"], ["--json"], ["--rename", "x", "Bob"],
    ["--merge", "2", "9"], ["--rename", "2", " "],
]


def _speaker_runs(capsys, session_id: str) -> list[tuple[int, str, str]]:
    runs = [_cli(capsys, "speakers", session_id, *argv) for argv in SPEAKER_COMMANDS]
    runs.append(_cli(capsys, "speakers", "no-such-session"))
    return [(rc, out, err.replace(session_id, "SID")) for rc, out, err in runs]


def test_speakers_through_the_app_match_the_database(env, tmp_path, monkeypatch, capsys):
    data, ids = env
    _seed_speakers(data, ids["plan"])
    app = _start(data, tmp_path, monkeypatch)
    try:
        through_app = _speaker_runs(capsys, ids["plan"])
    finally:
        app.stop()
    other = tmp_path / "other"
    other_ids = seed_demo(other)
    _seed_speakers(other, other_ids["plan"])
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(other))
    _cli(capsys, "sessions")  # its start-up note (a session left recording), as the app's start did
    on_database = _speaker_runs(capsys, other_ids["plan"])
    for argv, remote, local in zip([*SPEAKER_COMMANDS, ["no-such-session"]], through_app, on_database):
        assert remote == local, argv
    assert [rc for rc, _, _ in on_database] == [0, 0, 0, 0, 2, 2, 2, 2]
    assert [row["name"] for row in json.loads(on_database[3][1])] == ["Alice Smith", "Speaker 2"]
    assert "Alice Smith" in on_database[1][1] and "Speaker 3" not in on_database[2][1]


def test_retry_through_the_app_finishes_the_failed_chunks(env, tmp_path, monkeypatch, capsys):
    data, ids = env
    app = _start(data, tmp_path, monkeypatch)
    try:
        rc, out, err = _cli(capsys, "retry", ids["tricky"], "--format", "txt")
        assert rc == 0, err
        assert f"session {ids['tricky']}: 1 failed chunk(s) retried; 2 of 2 chunks done" in err
        assert "stub audio of" in out and "Onboarding feedback." not in out
        rc, listed, _ = _cli(capsys, "sessions", "--json")
        tricky = next(s for s in json.loads(listed) if s["id"] == ids["tricky"])
        assert tricky["chunks"] == {"pending": 0, "processing": 0, "done": 2, "failed": 0}
        rc, out, err = _cli(capsys, "retry", "no-such-session")
        assert rc == 2 and out == "" and "no session 'no-such-session'" in err
    finally:
        app.stop()


def test_a_token_app_needs_the_token_from_the_cli(env, tmp_path, monkeypatch, capsys):
    data, _ = env
    app = _start(data, tmp_path, monkeypatch, SCRIBE_API_TOKEN=TOKEN)
    try:
        rc, out, err = _cli(capsys, "sessions")
        assert rc == 2 and out == "" and "SCRIBE_API_TOKEN" in err and "HTTP 401" in err
        monkeypatch.setenv("SCRIBE_API_TOKEN", TOKEN)
        rc, out, _ = _cli(capsys, "sessions")
        assert rc == 0 and "Weekly planning" in out
    finally:
        app.stop()


@pytest.fixture
def held(env, tmp_path):
    """Another process (not a Scribe app) holding the database."""
    data, _ = env
    script = textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(data / "scribe.duckdb")!r})
        print("held", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait(10)


def test_when_no_app_can_take_over_one_line_says_who_holds_the_database(held, monkeypatch, capsys):
    monkeypatch.setenv("SCRIBE_API_URL", f"http://127.0.0.1:{free_port()}")
    rc, out, err = _cli(capsys, "sessions")
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert f"PID {held.pid}" in err and "no Scribe app answers" in err and "SCRIBE_API_URL" in err


def test_an_app_serving_another_database_is_not_used(held, tmp_path, monkeypatch, capsys):
    other = ScribeApp(tmp_path / "other-data", tmp_path / "other.log")
    try:
        monkeypatch.setenv("SCRIBE_API_URL", other.url)
        rc, out, err = _cli(capsys, "sessions")
        assert rc == 2 and out == "" and f"PID {held.pid}" in err
        assert "serves another database (scribe.duckdb)" in err  # the API does not tell its path
    finally:
        other.stop()


def _outside(cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess:
    """The CLI as someone runs it in another folder: no SCRIBE_* settings but `env`."""
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("SCRIBE_")}
    return subprocess.run([sys.executable, "-m", "scribe", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**clean, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                                            "HF_HUB_OFFLINE": "1", **env})


def test_outside_the_app_the_cli_uses_a_named_app_and_never_creates_a_database(env, tmp_path):
    """Run in an empty folder: without a database it says where it looked and creates nothing;
    with SCRIBE_API_URL naming a running app, it lists that app's sessions."""
    data, _ids = env
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lost = _outside(elsewhere, "sessions")
    assert lost.returncode == 2 and lost.stdout == ""
    assert str(elsewhere / "data" / "scribe.duckdb") in lost.stderr and "SCRIBE_API_URL" in lost.stderr
    assert not (elsewhere / "data").exists()  # no empty database made by accident

    app = ScribeApp(data, tmp_path / "app.log")
    try:
        listed = _outside(elsewhere, "sessions", SCRIBE_API_URL=app.url)
        assert listed.returncode == 0, listed.stderr
        assert "Weekly planning" in listed.stdout and app.url in listed.stderr
        assert not (elsewhere / "data").exists()
    finally:
        app.stop()


def test_an_empty_list_says_which_database_it_read(tmp_path, capsys, monkeypatch):
    from scribe.storage import Storage

    monkeypatch.setenv("SCRIBE_DATA_DIR", str(tmp_path / "data"))
    Storage(tmp_path / "data" / "scribe.duckdb").close()
    rc, out, err = _cli(capsys, "sessions")
    assert rc == 0 and out == ""
    assert err.strip() == f"no sessions in {(tmp_path / 'data' / 'scribe.duckdb').resolve()}"
