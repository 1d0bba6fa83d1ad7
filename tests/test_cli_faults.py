"""The CLI tells the truth: bad input is one line and a non-zero exit, unfinished work says
so and how to finish it, and a process killed mid-file leaves a session that ends
`interrupted` and can be finished or deleted."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from audio_files import encode
from test_cli import ROOT, run

from scribe.storage import Storage

STUB = {"SCRIBE_SKIP_SILENCE": "false"}


def wav_header_lies(path: Path, rate: int, n_bytes: int = 32_000) -> Path:
    """A PCM WAV whose header declares `rate` (1 Hz turns 32 KB into hours; 2^31-1 breaks resamplers)."""
    data = (np.random.default_rng(0).standard_normal(n_bytes // 2) * 1000).astype("<i2").tobytes()
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, (rate * 2) & 0xFFFFFFFF, 2, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + fmt +
                     b"data" + struct.pack("<I", len(data)) + data)
    return path


def bad_inputs(tmp_path: Path, tone) -> dict[str, Path]:
    whole = encode(tone(40.0), tmp_path / "whole.mp3").read_bytes()
    truncated = tmp_path / "truncated.mp3"
    truncated.write_bytes(whole[: len(whole) // 2])
    return {"truncated mp3": truncated,
            "rate 2^31-1": wav_header_lies(tmp_path / "fast.wav", 2**31 - 1),
            "rate 1 Hz": wav_header_lies(tmp_path / "slow.wav", 1)}


def one_error_line(out: subprocess.CompletedProcess) -> str:
    lines = [line for line in out.stderr.splitlines() if line.strip() and not line.startswith("\r")]
    lines = [line.split("\r")[-1] for line in lines if line.split("\r")[-1].strip()]
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and "duckdb" not in out.stderr.lower()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, out.stderr
    return errors[0]


def test_each_bad_file_is_one_line_and_leaves_no_session_and_no_temp_file(tmp_path, tone):
    db = tmp_path / "data" / "scribe.duckdb"
    for name, path in bad_inputs(tmp_path, tone).items():
        line = one_error_line(run("transcribe", str(path), "--backend", "stub", db=db, env=STUB))
        assert path.name in line, (name, line)
    line = one_error_line(run("transcribe", str(encode(tone(8.0), tmp_path / "long.wav")), "--backend",
                              "stub", db=db, env={**STUB, "SCRIBE_MAX_AUDIO_HOURS": "0.001"}))
    assert "SCRIBE_MAX_AUDIO_HOURS" in line
    store = Storage(db)
    assert store.list_sessions() == []
    assert store.cursor().execute("SELECT count(*) FROM segments").fetchone()[0] == 0
    store.close()
    audio = db.parent / "audio"
    assert not audio.exists() or not any(audio.rglob("*.*"))


def test_the_header_and_the_decoded_length_are_both_checked(tmp_path, tone):
    from scribe.audio import iter_decode
    from scribe.errors import AudioTooLongError

    with pytest.raises(AudioTooLongError):  # header: 8 s > 5 s before any decoding
        next(iter_decode(encode(tone(8.0), tmp_path / "a.wav"), max_seconds=5))
    stream = tmp_path / "stream.wav"  # a streaming writer's header states no length
    data = encode(tone(8.0), tmp_path / "b.wav").read_bytes()
    at = data.index(b"data") + 4
    stream.write_bytes(data[:4] + b"\xff\xff\xff\xff" + data[8:at] + b"\xff\xff\xff\xff" + data[at + 4:])
    blocks = iter_decode(stream, max_seconds=5)
    with pytest.raises(AudioTooLongError):
        for _ in blocks:
            pass


def test_a_file_name_that_is_not_utf8_becomes_a_readable_title(tmp_path, tone):
    db = tmp_path / "data" / "scribe.duckdb"
    src = encode(tone(2.0), tmp_path / "x.wav")
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/r\xe9union.wav"))
    src.rename(odd)
    out = run("transcribe", os.fsdecode(odd), "--backend", "stub", db=db, env=STUB)
    assert out.returncode == 0, out.stderr
    store = Storage(db)
    assert store.list_sessions()[0].title == "r\ufffdunion"
    store.close()


def test_bad_flags_are_one_line_before_any_work(tmp_path, tone):
    db = tmp_path / "data" / "scribe.duckdb"
    audio = encode(tone(2.0), tmp_path / "a.wav")
    line = one_error_line(run("transcribe", str(audio), "--backend", "stub", "--output",
                              str(tmp_path / "missing" / "out.txt"), db=db))
    assert "does not exist" in line
    assert not db.exists() or Storage(db).list_sessions() == []
    assert "--limit" in one_error_line(run("sessions", "--limit", "-1", db=db))
    assert "--page" in one_error_line(run("search", "hello", "--page", str(10**20), db=db))


def test_unfinished_chunks_exit_non_zero_naming_them_and_retry_finishes_them(tmp_path, tone, monkeypatch,
                                                                              capsys):
    from scribe import cli
    from scribe.errors import TranscriptionError
    from scribe.transcribers.stub import StubTranscriber

    db = tmp_path / "data" / "scribe.duckdb"
    audio = encode(tone(6.0), tmp_path / "a.wav")

    def refuses(self, audio):
        raise TranscriptionError("HTTP 400 from backend", retryable=False)

    monkeypatch.setenv("SCRIBE_SKIP_SILENCE", "false")
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(db.parent))
    with monkeypatch.context() as patch:
        patch.setattr(StubTranscriber, "transcribe", refuses)
        code = cli.main(["transcribe", str(audio), "--backend", "stub", "--chunk-seconds", "2",
                         "--policy", "fixed", "--db", str(db)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "3 chunk(s) failed (first seq 0): HTTP 400 from backend" in err
    assert "python -m scribe retry " in err
    sid = err.split("python -m scribe retry ")[1].split()[0]
    again = run("retry", sid, "--backend", "stub", "--format", "txt", db=db, env=STUB)
    assert again.returncode == 0, again.stderr
    assert "stub audio of 2.00 seconds" in again.stdout
    store = Storage(db)
    assert store.chunk_counts(sid)["done"] == 3 and store.get_session(sid).status == "done"
    store.close()


def test_chunks_still_open_when_the_wait_ends_are_named_not_hidden(storage, capsys):
    from scribe.cli.printers import report_unfinished
    from scribe.core import ChunkRow

    sid = storage.create_session(title="t", source="cli", backend="stub", model="m", chunk_seconds=2,
                                 chunk_policy="fixed:2").id
    for seq in range(3):
        storage.insert_chunk(ChunkRow(sid, seq, seq * 2000, seq * 2000 + 2000, seq * 32000,
                                      seq * 32000 + 32000, f"/x/{seq}.flac", "pending"))
    storage.save_segments(sid, 0, [], finished_at=1.0)
    assert report_unfinished(storage.list_chunks(sid), sid) == 1
    err = capsys.readouterr().err
    assert "2 chunk(s) not transcribed yet (seq 1, 2)" in err and f"python -m scribe retry {sid}" in err


KILL_DURING_INGEST = """
import os, signal, sys
from pathlib import Path
from scribe.config import Settings
from scribe.runtime import Runtime
from scribe.ingest import ingest_file
from scribe.chunking import parse_policy
import scribe.intake as intake_module

settings = Settings.from_env(backend="stub", data_dir=Path(sys.argv[2]), skip_silence=False)
runtime = Runtime.build(settings, start=False)  # nothing transcribes: chunks stay pending
submitted = []
real_submit = intake_module.Intake.submit

def submit_then_die(self, chunk):
    if len(submitted) == 3:  # the fourth chunk's files are written, its row never is
        self._write_chunk_files(chunk)
        os.kill(os.getpid(), signal.SIGKILL)
    submitted.append(chunk.seq)
    return real_submit(self, chunk)

intake_module.Intake.submit = submit_then_die
ingest_file(sys.argv[1], storage=runtime.storage, pipeline=runtime.pipeline,
            policy=parse_policy("fixed", 2.0), source="cli")
"""


def test_a_session_killed_while_reading_ends_interrupted_and_can_be_finished_or_deleted(tmp_path, tone):
    data = tmp_path / "data"
    audio = encode(tone(20.0), tmp_path / "meeting.wav")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **STUB}
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_INGEST, str(audio), str(data)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    store = Storage(data / "scribe.duckdb")
    (session,) = store.list_sessions()
    assert session.status == "recording" and len(store.list_chunks(session.id)) == 3
    store.close()
    db = data / "scribe.duckdb"
    listing = run("sessions", db=db)
    assert "interrupted" in listing.stdout and "marked interrupted" in listing.stderr
    finished = run("retry", session.id, "--backend", "stub", db=db, env=STUB)
    assert finished.returncode == 0, finished.stderr
    assert "1 chunk(s) written before a crash stored again" in finished.stderr
    store = Storage(db)
    chunks = store.list_chunks(session.id)
    assert [c.seq for c in chunks] == [0, 1, 2, 3] and {c.status for c in chunks} == {"done"}
    assert store.get_session(session.id).status == "interrupted"
    store.close()
    deleted = run("delete", session.id, db=db)
    assert deleted.returncode == 0, deleted.stderr
    assert not (data / "audio" / session.id).exists()


def test_transcribe_leaves_other_sessions_chunks_alone_and_says_so(tmp_path, tone):
    data = tmp_path / "data"
    audio = encode(tone(20.0), tmp_path / "meeting.wav")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **STUB}
    subprocess.run([sys.executable, "-c", KILL_DURING_INGEST, str(audio), str(data)], cwd=ROOT, env=env,
                   capture_output=True, timeout=120)
    db = data / "scribe.duckdb"
    started = time.monotonic()
    out = run("transcribe", str(encode(tone(2.0), tmp_path / "short.wav")), "--backend", "stub", db=db,
              env=STUB)
    assert out.returncode == 0, out.stderr
    assert "left recording by a process that died marked interrupted" in out.stderr
    assert "unfinished chunk(s) of other sessions left" in out.stderr
    store = Storage(db)
    old = [s for s in store.list_sessions() if s.title == "meeting"][0]
    assert store.chunk_counts(old.id)["pending"] == 3  # not transcribed by someone else's command
    store.close()
    assert time.monotonic() - started < 120
