"""Recovery happens when a process starts (Runtime.build), not when a page is viewed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from test_cli import ROOT

from scribe.runtime import Runtime
from scribe.storage import Storage

CRASHING_APP = """
import os, signal, sys, time
from pathlib import Path
import numpy as np
from scribe.chunking import Chunk
from scribe.config import Settings
from scribe.runtime import Runtime

settings = Settings.from_env(backend="stub", data_dir=Path(sys.argv[1]), skip_silence=False)
rt = Runtime.build(settings, start=False)  # the queue never runs: chunks stay pending
live = rt.storage.create_session(title="standup", source="mic", backend="stub", model="stub",
                                 chunk_seconds=2, chunk_policy="fixed:2")
for seq in range(3):
    pcm = np.full(32000, 0.2, dtype=np.float32)
    chunk = Chunk(live.id, seq, seq * 32000, (seq + 1) * 32000, pcm, captured_at=time.time())
    if seq < 2:
        rt.pipeline.submit(chunk)
    else:
        rt.pipeline.intake._write_chunk_files(chunk)  # the process dies before this row commits
print(live.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_new_runtime_recovers_a_crashed_processs_database_without_any_page(settings):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    crashed = subprocess.run([sys.executable, "-c", CRASHING_APP, str(settings.data_dir)], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    sid = crashed.stdout.split()[0]
    rt = Runtime.build(settings.with_changes(backend="stub", skip_silence=False))
    try:
        assert rt.recovery.interrupted == [sid]
        assert rt.recovery.adopted == 1 and rt.recovery.requeued == 3
        assert rt.pipeline.wait_idle(30)
        chunks = rt.storage.list_chunks(sid)
        assert [c.seq for c in chunks] == [0, 1, 2] and {c.status for c in chunks} == {"done"}
        assert rt.storage.get_session(sid).status == "interrupted"
        assert rt.storage.repeated_live_segments([sid]) == 0
        assert not list((settings.audio_dir / sid).glob("*.json"))
    finally:
        rt.close()


def test_a_second_runtime_on_the_same_storage_never_ends_a_live_session(settings):
    storage = Storage(settings.db)
    first = Runtime.build(settings.with_changes(backend="stub"), storage=storage)
    live = storage.create_session(title="live", source="mic", backend="stub", model="stub",
                                  chunk_seconds=2, chunk_policy="fixed:2")
    second = Runtime.build(settings.with_changes(backend="stub", whisper_model="other"), storage=storage)
    try:
        assert storage.get_session(live.id).status == "recording"
        assert second.recovery.interrupted == []
    finally:
        second.pipeline.stop()
        first.close()
