"""Seed a data folder with finished sessions (rows plus real chunk FLAC files) for tests and screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from scribe.audio import SAMPLE_RATE, write_flac_atomic
from scribe.chunking import Chunker, FixedPolicy, policy_label
from scribe.core import ChunkRow, PackedWindows, SegmentRow, SessionRow
from scribe.storage import Storage

CHUNK_MS = 5_000


def seed_session(storage: Storage, audio_dir: Path, lines: Sequence[tuple[str | None, str]], *,
                 title: str, created_at: float, status: str = "done", transcript: str = "live",
                 failed_seqs: Sequence[int] = (), session_id: str | None = None) -> SessionRow:
    """One session whose chunk k holds line k (speaker, text) and a short tone as its audio."""
    session = storage.create_session(title=title, source="upload", backend="stub", model="stub-0-0s",
                                     chunk_seconds=CHUNK_MS / 1000, chunk_policy="fixed:5",
                                     session_id=session_id, status="recording", now=created_at)
    for seq, (speaker, text) in enumerate(lines):
        add_chunk(storage, audio_dir, session.id, seq, speaker, text, failed=seq in failed_seqs,
                  transcript=transcript)
    storage.end_session(session.id, "stopped", now=created_at + len(lines) * CHUNK_MS / 1000)
    if status != "stopped":
        storage.update_session(session.id, status=status)
    return storage.get_session(session.id)


def add_chunk(storage: Storage, audio_dir: Path, session_id: str, seq: int, speaker: str | None, text: str,
              *, failed: bool = False, transcript: str = "live") -> None:
    start, end = seq * CHUNK_MS, (seq + 1) * CHUNK_MS
    path = audio_dir / session_id / f"{seq:06d}.flac"
    t = np.arange(int(SAMPLE_RATE * 0.5)) / SAMPLE_RATE
    write_flac_atomic((0.2 * np.sin(2 * np.pi * (220 + 20 * seq) * t)).astype(np.float32), path)
    storage.insert_chunk(ChunkRow(session_id=session_id, seq=seq, start_ms=start, end_ms=end,
                                  start_sample=start * 16, end_sample=end * 16, audio_path=str(path),
                                  status="pending", captured_at=0.0, enqueued_at=0.0))
    if failed:
        storage.fail_chunk(session_id, seq, "TranscriptionError: 503 from backend", finished_at=1.0)
        return
    row = SegmentRow(session_id=session_id, seq=seq, idx=0, start_ms=start + 200, end_ms=end - 200,
                     text=text, speaker=speaker, confidence=0.9, no_speech_prob=0.02)
    storage.save_segments(session_id, seq, [row] if transcript == "live" else [], finished_at=1.0)
    if transcript != "live":
        existing = storage.list_segments(session_id, transcript)
        storage.replace_transcript(session_id, transcript, [*existing, SegmentRow(**{**row.__dict__,
                                                                                  "transcript": transcript})])


def record_through(storage: Storage, pipeline, audio: np.ndarray, *, stop: bool = True) -> str:
    """A live session of `audio` fed to `pipeline` in 4 s chunks, as the capture feeds it
    (finished through the pipeline unless `stop` is False); its id."""
    policy = FixedPolicy(4.0)
    session = storage.create_session(title="Standup", source="mic", backend="stub", model="stub",
                                     chunk_seconds=policy.seconds, chunk_policy=policy_label(policy))
    chunker = Chunker(session.id, policy)
    for start in range(0, audio.size, 3200):
        for chunk in chunker.push(audio[start:start + 3200]):
            pipeline.submit(chunk)
    for chunk in chunker.finish():
        pipeline.submit(chunk)
    if stop:
        pipeline.finish_session(session.id)
    return session.id


def save_chunk_windows(storage: Storage, session_id: str, seq: int, windows: bytes) -> bool:
    """A done 15 s chunk at `seq` holding `windows` as its voice windows' bytes: synthetic
    windows, for what the database does with them (size, pieces, memory), not for voices."""
    start_ms = seq * 15_000
    storage.insert_chunk(ChunkRow(session_id, seq, start_ms, start_ms + 15_000, 0, 240_000, f"/x/{seq}", "done"))
    return storage.save_voice_windows(session_id, seq, PackedWindows(start_ms, 1500, [0, 1500], [0, 160], windows))
