"""A real full disk (a small tmpfs): the CLI pauses, resumes when space is freed, loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from audio_files import encode
from test_cli import ROOT

from scribe.storage import Storage


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave_bytes: int) -> Path:
    """Take all free space but `leave_bytes`."""
    filler = folder / f"filler-{uuid.uuid4().hex}"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(filler, "wb") as handle:
        handle.truncate(0)
        block = b"\0" * (1 << 16)
        for _ in range(max(0, free - leave_bytes) // len(block)):
            handle.write(block)
    return filler


def test_the_cli_waits_out_a_full_disk_and_finishes_every_chunk(small_disk, tmp_path, tone):
    data = small_disk / "data"
    Storage(data / "scribe.duckdb").close()
    audio = encode(tone(120.0), tmp_path / "meeting.wav")
    filler = fill(small_disk, leave_bytes=400_000)  # room for a few chunks, not for 60
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCRIBE_DATA_DIR": str(data), "SCRIBE_SKIP_SILENCE": "false",
           "SCRIBE_STUB_LATENCY": "0.02-0.05"}
    proc = subprocess.Popen([sys.executable, "-m", "scribe", "transcribe", str(audio), "--backend", "stub",
                             "--policy", "fixed", "--chunk-seconds", "2", "--output", str(tmp_path / "out.txt")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6.0)
    assert proc.poll() is None  # paused, not dead and not exited
    filler.unlink()  # space is freed
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Exception in thread" not in err, err[-3000:]
    assert err.count("storage cannot write") >= 1
    store = Storage(data / "scribe.duckdb")
    (session,) = store.list_sessions()
    chunks = store.list_chunks(session.id)
    assert [c.seq for c in chunks] == list(range(60)) and {c.status for c in chunks} == {"done"}
    assert store.repeated_live_segments([session.id]) == 0 and len(store.list_segments(session.id)) == 60
    assert session.status == "done"
    store.close()
    assert not list(data.rglob("*.tmp")) and not list(data.rglob("*.json"))
    assert (tmp_path / "out.txt").read_text().count("stub audio of 2.00 seconds") == 60


def test_a_disk_that_stays_full_stops_the_cli_after_the_wait_and_says_how_to_finish(small_disk, tmp_path, tone):
    """The health probe writes what failed (a chunk's audio), so small database writes that still
    fit never announce a recovery; the CLI waits SCRIBE_STORAGE_WAIT_SECONDS, then exits non-zero
    naming what is stored and the `retry` command, which finishes the job once space is back."""
    data = small_disk / "data"
    Storage(data / "scribe.duckdb").close()
    audio = encode(tone(360.0), tmp_path / "long.wav")
    filler = fill(small_disk, leave_bytes=400_000)  # room for some chunks, never for six minutes
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCRIBE_DATA_DIR": str(data), "SCRIBE_SKIP_SILENCE": "false",
           "SCRIBE_STUB_LATENCY": "0.02-0.05", "SCRIBE_STORAGE_WAIT_SECONDS": "4"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "scribe", "transcribe", str(audio), "--backend", "stub",
                           "--policy", "fixed", "--chunk-seconds", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    err = proc.stderr
    assert proc.returncode != 0 and took < 100, (proc.returncode, took, err[-2000:])
    assert err.count("storage cannot write") == 1, err[-3000:]
    assert "storage writes again" not in err, err[-3000:]  # no recovery announced that was none
    assert err.count("waiting up to 4 s for storage") == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    store = Storage(data / "scribe.duckdb")
    (session,) = store.list_sessions()
    stored = store.list_chunks(session.id)
    store.close()
    assert 0 < len(stored) < 180
    assert f"python -m scribe retry {session.id}" in err and f"keeps {len(stored)} chunk(s)" in err, err[-2000:]
    assert "the rest of the file was not read" in err

    filler.unlink()
    finish = subprocess.run([sys.executable, "-m", "scribe", "retry", session.id], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert finish.returncode == 0, finish.stderr[-2000:]
    store = Storage(data / "scribe.duckdb")
    chunks = store.list_chunks(session.id)
    store.close()
    assert [c.seq for c in chunks] == [c.seq for c in stored] and {c.status for c in chunks} == {"done"}
