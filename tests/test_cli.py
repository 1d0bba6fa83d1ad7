"""`python -m scribe transcribe|sessions` as a user runs them (subprocesses)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from audio_files import encode

from scribe.storage import Storage
from scribe.wer import word_error_rate

ROOT = Path(__file__).parent.parent


def run(*args: str, db: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCRIBE_DATA_DIR": str(db.parent), **(env or {})}
    return subprocess.run([sys.executable, "-m", "scribe", *args, "--db", str(db)], cwd=ROOT,
                          env=full_env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "scribe.duckdb"


@pytest.mark.slow
def test_transcribe_prints_json_and_a_timing_summary(meeting, db, tmp_path):
    path, reference = meeting
    out = run("transcribe", str(path), "--format", "json", "--chunk-seconds", "10", "--title", "Weekly", db=db)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert set(payload) >= {"session_id", "segments", "text"}
    assert set(payload["segments"][0]) >= {"seq", "start", "end", "text", "speaker"}
    starts = [s["start"] for s in payload["segments"]]
    assert starts == sorted(starts) and starts[-1] > 30.0  # seconds, not ms
    assert word_error_rate(reference, payload["text"]) < 0.25
    assert "real-time factor" in out.stderr and "p95" in out.stderr
    listing = run("sessions", "--json", db=db)
    rows = json.loads(listing.stdout)
    assert rows[0]["id"] == payload["session_id"] and rows[0]["title"] == "Weekly"
    assert rows[0]["status"] == "done"


@pytest.mark.parametrize("fmt,marker", [("srt", "-->"), ("vtt", "WEBVTT"), ("md", "# "), ("txt", "[00:0")])
def test_transcribe_writes_each_format_to_a_file(tmp_path, tone, db, fmt, marker):
    audio = encode(tone(4.0), tmp_path / "tone.flac")
    target = tmp_path / f"out.{fmt}"
    # A tone is not speech: keep the silence check off so the stub backend is called.
    out = run("transcribe", str(audio), "--backend", "stub", "--format", fmt, "--output", str(target), db=db,
              env={"SCRIBE_SKIP_SILENCE": "false"})
    assert out.returncode == 0, out.stderr
    assert marker in target.read_text() and out.stdout == ""


def _bad_inputs(tmp_path: Path, tone) -> dict[str, Path]:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "agenda.mp3"
    text.write_text("not audio\n" * 100)
    whole = encode(tone(3.0), tmp_path / "whole.wav").read_bytes()
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(whole[: len(whole) // 3])
    corrupt = tmp_path / "corrupt.m4a"
    corrupt.write_bytes(os.urandom(5000))
    return {"missing": tmp_path / "missing.wav", "empty": empty, "not audio": text,
            "truncated": truncated, "corrupt": corrupt}


def test_bad_files_fail_with_one_line_and_leave_the_db_alone(tmp_path, tone, db):
    good = encode(tone(2.0), tmp_path / "good.wav")
    assert run("transcribe", str(good), "--backend", "stub", db=db).returncode == 0
    for name, path in _bad_inputs(tmp_path, tone).items():
        out = run("transcribe", str(path), "--backend", "stub", db=db)
        assert out.returncode != 0, name
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, out.stderr)
        assert "Traceback" not in out.stderr
    store = Storage(db)
    sessions = store.list_sessions()
    assert len(sessions) == 1 and sessions[0].title == "good"
    assert store.chunk_counts(sessions[0].id)["done"] == 1
    store.close()
    assert [p.name for p in (db.parent / "audio").iterdir()] == [sessions[0].id]


def test_missing_model_and_bad_settings_are_one_clear_line(tmp_path, tone, db):
    audio = encode(tone(1.0), tmp_path / "a.wav")
    out = run("transcribe", str(audio), "--model", "no-such-model", db=db)
    assert out.returncode != 0 and "not available offline" in out.stderr
    out = run("transcribe", str(audio), db=db, env={"SCRIBE_CHUNK_SECONDS": "soon"})
    assert out.returncode != 0 and "SCRIBE_CHUNK_SECONDS" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_transcribe_final_pass_waits_and_prints_both_transcripts(meeting, db):
    path, reference = meeting
    out = run("transcribe", str(path), "--final-pass", "--format", "json", db=db,
              env={"SCRIBE_WHISPER_MODEL": "tiny.en", "SCRIBE_FINAL_MODEL": "tiny.en"})
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "final pass (tiny.en)" in out.stderr
    payload = json.loads(out.stdout)
    assert {"text", "final_text", "final_segments"} <= set(payload)
    live_wer = word_error_rate(reference, payload["text"])
    final_wer = word_error_rate(reference, payload["final_text"])
    assert live_wer < 0.25 and final_wer < 0.25
    store = Storage(db)
    try:  # the final transcript is stored beside the live one, which is untouched
        assert store.session_text(payload["session_id"], "final") == payload["final_text"]
        assert store.session_text(payload["session_id"], "live") == payload["text"]
    finally:
        store.close()


@pytest.mark.slow
def test_transcribe_final_pass_prints_the_final_transcript(meeting, db):
    path, reference = meeting
    env = {"SCRIBE_WHISPER_MODEL": "tiny.en"}
    out = run("transcribe", str(path), "--policy", "whole", "--final-pass", "--final-model", "tiny.en",
              db=db, env=env)
    assert out.returncode == 0, out.stderr
    assert "final pass (tiny.en): 1 window(s)" in out.stderr
    session_id = json.loads(run("sessions", "--json", db=db).stdout)[0]["id"]
    stored_final = run("export", session_id, "--transcript", "final", db=db)
    assert out.stdout == stored_final.stdout and "\n[00:0" in out.stdout  # lines after the title
    assert word_error_rate(reference, out.stdout) < 0.35  # "[mm:ss]" prefixes count as errors


def test_transcribe_with_db_keeps_chunk_audio_beside_that_database(tmp_path, tone):
    audio = encode(tone(3.0), tmp_path / "tone.flac")
    db = tmp_path / "elsewhere" / "team.duckdb"
    env = {k: v for k, v in os.environ.items() if k != "SCRIBE_DATA_DIR"}
    out = subprocess.run([sys.executable, "-m", "scribe", "transcribe", str(audio), "--backend", "stub",
                          "--db", str(db)], cwd=tmp_path, env={**env, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert list((tmp_path / "elsewhere" / "audio").rglob("*.flac"))
    assert not (tmp_path / "data").exists()


def test_transcribe_policy_flag_takes_the_file_policy_names():
    from scribe.chunking import FILE_POLICY_NAMES, POLICY_NAMES
    from scribe.cli import build_parser

    for name in POLICY_NAMES:
        argv = ["transcribe", "talk.wav", "--policy", name]
        if name in FILE_POLICY_NAMES:
            assert build_parser().parse_args(argv).policy == name
        else:
            with pytest.raises(SystemExit):
                build_parser().parse_args(argv)
