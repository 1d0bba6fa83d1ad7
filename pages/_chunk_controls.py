"""Chunk controls for one session: progress, cost, failures, retry, re-transcribe with another backend.

Used by the Sessions and Record pages: `render_chunk_controls(runtime(), session_id)`;
the Record page also calls `render_backlog_warning(runtime())` inside its polling fragment.
Widgets only; the work is in `scribe.retranscribe`, and the queue does it in the background.
Messages about the Gemini key never contain the key (stored errors are redacted at the source).
"""

from __future__ import annotations

import streamlit as st

from scribe import backends, retranscribe
from scribe.core import ChunkRow
from scribe.costs import session_cost
from scribe.errors import ScribeError
from scribe.runtime import Runtime
from scribe.timelabels import mmss


def render_chunk_controls(rt: Runtime, session_id: str, can_change: bool = True) -> None:
    """Draw the controls for `session_id` (runs on the Streamlit script thread); a reader
    (`can_change` False) sees the overview only, no retry or re-transcription."""
    chunks = rt.storage.list_chunks(session_id)
    if not chunks:
        st.caption("No chunks stored for this session yet.")
        return
    _overview(rt, session_id, chunks)
    if not can_change:
        return
    _failures(rt, session_id)
    with st.expander("Re-transcribe with another backend"):
        _retranscribe(rt, session_id, chunks)


def render_backlog_warning(rt: Runtime) -> None:
    """A warning when transcription is SCRIBE_BACKLOG_WARN_SECONDS or more behind (nothing is dropped)."""
    if (message := rt.backlog().message()) is not None:
        st.warning(message, icon=":material/hourglass_top:")


def _overview(rt: Runtime, session_id: str, chunks: list[ChunkRow]) -> None:
    done = sum(c.status == "done" for c in chunks)
    silent = sum(c.skip_reason == "silence" for c in chunks)
    waiting = sum(c.status in ("pending", "processing") for c in chunks)
    cols = st.columns(4)
    cols[0].metric("Chunks done", f"{done}/{len(chunks)}")
    cols[1].metric("Waiting", waiting)
    cols[2].metric("Silent (not sent)", silent)
    cost = session_cost(rt.storage, session_id)
    cols[3].metric("Estimated cost", f"${cost.dollars:.4f}" if cost.dollars else "none",
                   help=cost.label())


def _failures(rt: Runtime, session_id: str) -> None:
    report = retranscribe.failures(rt, session_id)
    if report.key_rejected:
        st.error("Gemini rejected the API key. Check GEMINI_API_KEY (environment or "
                 ".streamlit/secrets.toml), restart Scribe, then retry the failed chunks.",
                 icon=":material/key_off:")
    if not report.failed:
        return
    st.warning(f"{len(report.failed)} chunk(s) failed.", icon=":material/error:")
    st.dataframe([{"chunk": c.seq, "at": f"{mmss(c.start_ms)}-{mmss(c.end_ms)}", "backend": c.backend,
                   "attempts": c.attempts, "error": c.error or ""} for c in report.failed],
                 hide_index=True, width="stretch")
    label = f"Retry failed chunks ({backends.label(rt.transcriber.name)})"
    if st.button(label, key=f"retry-failed-{session_id}", icon=":material/refresh:"):
        count = retranscribe.retry_failed(rt, session_id)
        st.success(f"Re-queued {count} chunk(s); the transcript updates as they finish.")


def _retranscribe(rt: Runtime, session_id: str, chunks: list[ChunkRow]) -> None:
    choices = retranscribe.backend_choices(rt)
    backend = st.selectbox("Backend", choices, index=min(1, len(choices) - 1),
                           format_func=backends.label,
                           key=f"retranscribe-backend-{session_id}")
    problem = retranscribe.backend_problem(rt, backend)
    if problem:
        st.info(problem, icon=":material/key:")
    by_seq = {c.seq: c for c in chunks if c.status in ("done", "failed")}
    seq = st.selectbox("Chunk", list(by_seq), key=f"retranscribe-seq-{session_id}",
                       format_func=lambda s: _chunk_label(by_seq[s]))
    left, right = st.columns(2)
    if left.button("Re-transcribe whole session", key=f"retranscribe-all-{session_id}",
                   disabled=problem is not None):
        _run(rt, session_id, backend, None)
    if right.button("Re-transcribe this chunk", key=f"retranscribe-one-{session_id}",
                    disabled=problem is not None or seq is None):
        _run(rt, session_id, backend, [seq])


def _chunk_label(chunk: ChunkRow) -> str:
    return f"#{chunk.seq}  {mmss(chunk.start_ms)}-{mmss(chunk.end_ms)}  ({chunk.status}, {chunk.backend or '-'})"


def _run(rt: Runtime, session_id: str, backend: str, seqs: list[int] | None) -> None:
    try:
        with st.spinner("Preparing the backend..."):
            count = retranscribe.retranscribe(rt, session_id, backend=backend, seqs=seqs)
    except ScribeError as exc:
        st.error(str(exc))
        return
    st.success(f"Re-queued {count} chunk(s) for {backends.label(backend)}.")
