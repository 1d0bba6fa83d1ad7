"""Files into sessions: decode, chunk and submit through the same path as live audio."""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from scribe.audio import SAMPLE_RATE, iter_decode, probe_duration
from scribe.chunking import Chunker, ChunkPolicy, policy_label
from scribe.config import Settings
from scribe.core import DecodeOptions, SessionRow
from scribe.errors import AudioDecodeError, AudioTooLongError, StorageOutageError, UploadTooLargeError
from scribe.identity import LOCAL_ID
from scribe.pipeline import Pipeline
from scribe.storage import Storage

log = logging.getLogger("scribe.ingest")

DEFAULT_MAX_AUDIO_HOURS = 4.0
"""SCRIBE_MAX_AUDIO_HOURS' default, for callers without Settings at hand."""
MAX_WHOLE_SECONDS = 1800.0
"""Longest file `policy=whole` takes: it holds the whole recording in memory as one chunk
(about 230 MB of samples per hour, several times that while it is cut, written and decoded)."""

Progress = Callable[[float, str], object]
"""Told (fraction done, message); whatever it returns is ignored (a page may hand in a widget call)."""
"""Called with (fraction 0..1, message) from the thread doing the work."""


@dataclass
class IngestResult:
    session: SessionRow
    chunks: int
    audio_seconds: float


@dataclass(frozen=True)
class CheckedUpload:
    """What `check_upload` allowed: the title to store (None: the file's name) and the longest
    recording the file may decode to."""

    title: str | None
    max_audio_hours: float
    file_name: str = "upload"
    """The upload's own name made safe to create in a scratch folder (no folders, `..`, NUL or
    control characters, at most MAX_NAME_CHARS, suffix kept for the decoder)."""


MAX_NAME_CHARS = 120


def safe_file_name(name: str | None) -> str:
    """A client's file name as a single harmless path component (`upload` when nothing is left)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable() and not "\ud800" <= c <= "\udfff").strip()
    if base.strip(".") == "":
        return "upload"
    stem, dot, suffix = base.rpartition(".")
    if not dot or len(suffix) > 10:
        stem, suffix = base, ""
    keep = MAX_NAME_CHARS - len(suffix) - 1
    return (stem[:keep] or "upload") + (f".{suffix}" if suffix else "")


def check_upload(settings: Settings, *, size: int, title: str | None = None,
                 file_name: str | None = None) -> CheckedUpload:
    """The limits on a file before anything is stored, the same for every way in (the API's and
    `/v1`'s uploads, the Record page and the lab, `python -m scribe transcribe`): its size
    (SCRIBE_MAX_UPLOAD_MB; empty refused), its title (one line, at most MAX_TITLE_CHARS), and how
    long it may be (SCRIBE_MAX_AUDIO_HOURS), which `ingest_file(max_audio_hours=...)` enforces from
    the header or the packets before storing, and again while decoding (with MAX_WHOLE_SECONDS for
    `policy=whole`); and the file's name, made safe. Raises UploadTooLargeError, AudioDecodeError
    (empty) or ScribeError (title)."""
    from scribe.history import check_title

    check_upload_size(size, settings.max_upload_mb)
    clean = check_title(title) if title else None
    return CheckedUpload(clean or None, settings.max_audio_hours, safe_file_name(file_name))


def check_upload_size(n_bytes: int, max_mb: int) -> None:
    if n_bytes > max_mb * 1024 * 1024:
        raise UploadTooLargeError(
            f"file is {n_bytes / 1024 / 1024:.0f} MB; the limit is {max_mb} MB (SCRIBE_MAX_UPLOAD_MB)")
    if n_bytes == 0:
        raise AudioDecodeError("file is empty")


def ingest_file(path: str | Path, *, storage: Storage, pipeline: Pipeline, policy: ChunkPolicy,
                title: str | None = None, source: str = "cli",
                progress: Progress | None = None,
                max_audio_hours: float = DEFAULT_MAX_AUDIO_HOURS,
                expected_speakers: int | None = None,
                storage_wait_seconds: float | None = None, vocabulary: Sequence[str] = (),
                owner_id: str = LOCAL_ID, options: DecodeOptions | None = None) -> IngestResult:
    """Create a session (owned by `owner_id`) from a file and submit all its chunks; returns once
    they are durable.

    `expected_speakers` (the number of people, when the user knows it) is stored on the
    session before any chunk is queued, so the speaker labels use it from the first chunk.

    On a decode error (or a file longer than `max_audio_hours`) the half-made session
    (rows and audio) is removed again, so a bad file leaves the database as it was, and
    the error propagates; chunks of it still being transcribed find their rows gone and
    store nothing. Any other interruption (Ctrl-C, a bug) ends the session
    `interrupted`, keeping what was stored. A storage outage is waited out, for at most
    `storage_wait_seconds` if given (then StorageOutageError, naming the session, and the
    session ends `interrupted` with the chunks stored so far).
    """
    path = Path(path)
    max_seconds = max_audio_hours * 3600
    if policy.name == "whole":  # one chunk of everything, in memory: see MAX_WHOLE_SECONDS
        max_seconds = min(max_seconds, MAX_WHOLE_SECONDS)
    # Opens and validates the container (and its length) before anything is stored.
    iterator = iter_decode(path, max_seconds=max_seconds)
    try:
        first_block = next(iterator)
    except AudioTooLongError as exc:
        if policy.name == "whole" and max_seconds == MAX_WHOLE_SECONDS:
            raise AudioTooLongError(f"{path.name}: policy whole keeps the whole recording in memory, so it "
                                    f"takes at most {MAX_WHOLE_SECONDS / 60:.0f} min; use pause or fixed "
                                    "for longer files") from exc
        raise
    session = storage.create_session(
        title=title or readable_stem(path), source=source, backend=pipeline.transcriber.name,
        model=pipeline.transcriber.model, chunk_seconds=policy.seconds,
        chunk_policy=policy_label(policy), owner_id=owner_id)
    if expected_speakers:
        storage.set_expected_speakers(session.id, expected_speakers)
    if vocabulary:  # words for this file only, on top of the team's (before any chunk is queued)
        storage.set_session_terms(session.id, vocabulary)
    if options is not None and options.asked():  # the caller's language, prompt, temperature
        storage.set_session_options(session.id, options)
    try:
        chunks, samples = _feed(session.id, policy, pipeline, first_block, iterator,
                                probe_duration(path), progress, storage_wait_seconds)
    except StorageOutageError as exc:
        exc.session_id = session.id
        _interrupt(session.id, pipeline)
        raise
    except AudioDecodeError:
        _discard(session.id, storage, pipeline)
        raise
    except BaseException:
        _interrupt(session.id, pipeline)
        raise
    pipeline.finish_session(session.id, "stopped")
    return IngestResult(storage.get_session(session.id), chunks, samples / SAMPLE_RATE)


def readable_stem(path: Path) -> str:
    """The file name without suffix as text a database stores: bytes that are not UTF-8
    (a name from another system) become U+FFFD instead of failing the insert."""
    return os.fsencode(path.stem).decode("utf-8", errors="replace")


def _interrupt(session_id: str, pipeline: Pipeline) -> None:
    try:
        pipeline.finish_session(session_id, "interrupted")
    except Exception as exc:  # e.g. the disk is full; the next start marks it interrupted instead
        log.warning("session=%s could not be marked interrupted now (%s); the next start does it",
                    session_id, exc)


def _feed(session_id, policy, pipeline, first_block, rest, total_s, progress,
          wait_s: float | None = None) -> tuple[int, int]:
    chunker = Chunker(session_id, policy)
    submitted = 0
    for block in _chain(first_block, rest):
        for chunk in chunker.push(block):
            pipeline.submit_waiting_out_faults(chunk, wait_s)
            submitted += 1
        if progress and total_s:
            done = chunker.position / SAMPLE_RATE
            progress(min(1.0, done / total_s), f"read {done:.0f} s of {total_s:.0f} s")
    for chunk in chunker.finish():
        pipeline.submit_waiting_out_faults(chunk, wait_s)
        submitted += 1
    return submitted, chunker.samples_in


def _chain(first, rest):
    yield first
    yield from rest


def _discard(session_id: str, storage: Storage, pipeline: Pipeline) -> None:
    storage.delete_session(session_id)
    shutil.rmtree(pipeline.audio_dir / session_id, ignore_errors=True)


def wait_for_session(storage: Storage, session_id: str, *, timeout: float = 3600.0,
                     progress: Progress | None = None, poll: float = 0.2,
                     check: Callable[[], None] | None = None) -> dict[str, int]:
    """Block until no chunk of the session is pending or processing; return status counts
    (still-open chunks are counted when the timeout passes first: the caller must check).
    `check` runs every poll and may raise to stop waiting (a storage outage too long)."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        counts = storage.chunk_counts(session_id)
        total = sum(counts.values())
        settled = counts["done"] + counts["failed"]
        if progress and total:
            progress(settled / total, f"transcribed {settled}/{total} chunks")
        if settled == total or time.monotonic() > deadline:
            return counts
        time.sleep(poll)
