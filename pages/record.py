"""Record: press Start, talk, watch the transcript grow. Or upload a file."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from pages._chunk_controls import render_backlog_warning, render_chunk_controls
from pages._live_text import render_live_transcript
from pages._shared import chosen_settings, live_registry, runtime
from scribe import capture
from scribe.chunking import make_policy
from scribe.errors import ScribeError
from scribe.export import mmss
from scribe.ingest import check_upload_size, ingest_file
from scribe.pipeline import PipelineStats
from scribe.storage import ChunkRow, SessionRow

STREAMER_KEY = "recorder"
CURRENT = "record_session"  # the session shown below the recorder
CAPTURE = "record_capture"  # this browser's live capture (set on the script thread)

rt = runtime()
config = chosen_settings()
registry = live_registry(rt.settings.max_live_sessions)

st.title("Record")
st.caption(f"Backend `{rt.transcriber.name}` · model `{rt.transcriber.model}` · "
           f"chunks `{config.chunk_policy}:{config.chunk_seconds:g}s`")


def _session_label(session: SessionRow | None) -> str:
    if session is None:
        return "New session"
    return (f"Continue “{session.title}” ({session.status}, "
            f"{mmss(session.duration_ms)}) · {session.id}")


def _on_change() -> None:
    """Script thread (widget callback): the recorder's state changed; a stop by the
    user makes the capture end `stopped` rather than `interrupted`."""
    ctx = st.session_state[STREAMER_KEY]
    live = st.session_state.get(CAPTURE)
    if live is not None and not ctx.state.playing and not ctx.state.signalling:
        live.request_stop()
        st.session_state[CAPTURE] = None


def _recorder(title: str, resume: SessionRow | None) -> None:
    """The WebRTC widget; remembers the capture it opened for this browser session."""
    def factory() -> capture.LiveCapture:  # process_offer thread: no st.* here
        return registry.open(rt.storage, rt.pipeline, title=title or "Untitled recording",
                             policy=make_policy(config.chunk_policy, config.chunk_seconds),
                             resume_id=resume.id if resume else None, partials=rt.partials)

    mine = st.session_state.get(CAPTURE)
    if registry.is_full() and (mine is None or mine.end_status is not None):
        st.error(f"This server is already recording {registry.count()} sessions, its limit "
                 f"(SCRIBE_MAX_LIVE_SESSIONS). Try again when one of them stops.")
        return
    try:
        ctx = capture.mic_streamer(STREAMER_KEY, rt.settings, factory, on_change=_on_change)
    except ScribeError as exc:  # raised by the factory: limit reached, session busy
        st.error(f"Cannot start recording: {exc}")
        return
    processor = ctx.audio_processor
    if ctx.state.playing and isinstance(processor, capture.LiveCapture):
        st.session_state[CAPTURE] = processor
        st.session_state[CURRENT] = processor.session_id


def _upload(title: str) -> None:
    """A file through the same pipeline, with a progress bar while it is read."""
    uploaded = st.file_uploader("Audio or video file", key="upload_file")
    if uploaded is None or not st.button("Transcribe file", type="primary"):
        return
    try:
        check_upload_size(uploaded.size, config.max_upload_mb)
    except ScribeError as exc:
        st.error(f"Cannot use {uploaded.name}: {exc}")
        return
    bar = st.progress(0.0, text=f"Reading {uploaded.name}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(uploaded.name).name
        path.write_bytes(uploaded.getbuffer())
        try:
            result = ingest_file(path, storage=rt.storage, pipeline=rt.pipeline,
                                 policy=make_policy(config.chunk_policy, config.chunk_seconds),
                                 title=title or path.stem, source="upload",
                                 max_audio_hours=config.max_audio_hours,
                                 progress=lambda fraction, message: bar.progress(fraction, text=message))
        except ScribeError as exc:
            bar.empty()
            st.error(f"Cannot transcribe {uploaded.name}: {exc}")
            return
    bar.progress(1.0, text=f"{result.chunks} chunks ({result.audio_seconds:.0f} s) queued for transcription")
    st.session_state[CURRENT] = result.session.id


@st.fragment(run_every=0.5)
def _live_panel() -> None:
    """Re-run every 0.5 s (so the page is not what holds live words back): reads DuckDB
    and in-memory counters only."""
    session_id = st.session_state.get(CURRENT)
    session = rt.storage.find_session(session_id) if session_id else None
    if session is None:
        st.info("Press **Start** to record from your microphone, or upload a file.")
        return
    live = registry.get(session.id)
    stats = live.stats() if live else None
    chunks = rt.storage.list_chunks(session.id)
    queue = rt.pipeline.stats()
    st.subheader(session.title)
    _metrics(session, stats, chunks, queue)
    render_backlog_warning(rt)
    if stats is not None:
        level = stats.level_dbfs
        st.progress(capture.level_fraction(level), text=f"Input level {level:.0f} dBFS")
    transcript, table = st.columns([3, 2])
    with transcript:
        st.markdown("**Transcript**")
        render_live_transcript(rt.storage, session.id, rt.partials, recording=live is not None)
    with table:
        st.markdown("**Chunks**")
        st.dataframe(capture.chunk_table(chunks), hide_index=True, width="stretch")
    if any(c.status == "failed" for c in chunks):
        with st.expander("Failed chunks: retry or re-transcribe", expanded=True):
            render_chunk_controls(rt, session.id)


def _metrics(session: SessionRow, stats: capture.LiveStats | None, chunks: list[ChunkRow],
             queue: PipelineStats) -> None:
    done = sum(c.status == "done" for c in chunks)
    failed = sum(c.status == "failed" for c in chunks)
    elapsed_ms = int(stats.session_seconds * 1000) if stats else session.duration_ms
    status = "recording" if stats and not stats.ended else session.status
    cols = st.columns(4)
    cols[0].metric("Status", status)
    cols[1].metric("Elapsed", mmss(elapsed_ms))
    cols[2].metric("Chunks done", f"{done}/{len(chunks)}" + (f" ({failed} failed)" if failed else ""))
    cols[3].metric("Queue depth", queue.queued + queue.in_flight + queue.intake,
                   help=f"{queue.audio_seconds_waiting:.0f} s of audio waiting")
    if stats is not None:
        st.caption(f"Received {stats.received_seconds:.1f} s of audio in {stats.wall_seconds:.1f} s "
                   f"· {stats.frames} frames · {stats.chunks_submitted} chunks sent · "
                   f"{registry.count()} live sessions on this server")


title = st.text_input("Title", placeholder="Weekly planning", key="record_title")
mic_tab, upload_tab = st.tabs(["Microphone", "Upload a file"])
with mic_tab:
    resumable = {s.id: s for s in rt.storage.resumable_sessions()}
    resume_id = st.selectbox("Session", [None, *resumable], key="record_resume",
                             format_func=lambda sid: _session_label(resumable.get(sid)),
                             help="Continue a stopped or interrupted recording")
    _recorder(title, resumable.get(resume_id))
with upload_tab:
    _upload(title)
_live_panel()
