"""Running a session's chunks again: retry failures, or re-transcribe with another backend.

Used by the chunk controls on the Sessions and Record pages. Every function
returns at once; the pipeline's workers do the work and the pages poll storage.
"""

from __future__ import annotations

from dataclasses import dataclass

from scribe import backends
from scribe.core import ChunkRow
from scribe.errors import ScribeError
from scribe.gemini_client import KEY_MISSING, KEY_REJECTED
from scribe.runtime import Runtime


@dataclass
class FailureReport:
    failed: list[ChunkRow]
    key_rejected: bool
    """Some chunk failed because Gemini refused the API key."""


def failures(rt: Runtime, session_id: str) -> FailureReport:
    """The session's failed chunks and whether the key was the problem."""
    failed = rt.storage.failed_chunks(session_id)
    return FailureReport(failed, any((c.error or "").startswith(KEY_REJECTED) for c in failed))


def retry_failed(rt: Runtime, session_id: str) -> int:
    """Re-queue the session's failed chunks on the pipeline's backend; returns how many."""
    return rt.pipeline.requeue(session_id)


def backend_choices(rt: Runtime) -> list[str]:
    """Backends to offer (the registry's `offered`: not the test stand-in), the pipeline's own first."""
    current = rt.transcriber.name
    return [current, *[name for name in backends.offered() if name != current]]


def backend_problem(rt: Runtime, name: str) -> str | None:
    """Why `name` cannot be used right now (missing key), or None. Never contains the key."""
    backends.spec(name)  # an unknown name is a SettingsError naming the known ones
    return KEY_MISSING if backends.missing_key(name, rt.settings) else None


def retranscribe(rt: Runtime, session_id: str, *, backend: str, seqs: list[int] | None = None) -> int:
    """Run the whole session (`seqs=None`) or chosen chunks again on `backend`.

    Chunks still pending or processing are skipped. A chosen chunk is sent even
    if it looked silent (someone asked for it); a whole session skips silence
    again. The new segments replace each chunk's old ones only on success.
    Raises ScribeError (e.g. no GEMINI_API_KEY) before anything is queued.
    """
    if (problem := backend_problem(rt, backend)) is not None:
        raise ScribeError(problem)
    chosen = seqs if seqs is not None else [c.seq for c in rt.storage.list_chunks(session_id)
                                            if c.status in ("done", "failed")]
    target = rt.backend(backend)
    count = rt.pipeline.requeue(session_id, chosen, backend=target, check_speech=seqs is None)
    if seqs is None and count:
        rt.storage.update_session(session_id, backend=target.transcriber.name,
                                  model=target.transcriber.model)
    return count
