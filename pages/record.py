"""Record: press Start, talk, watch the transcript grow. Or upload a file."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from pages._chunk_controls import render_backlog_warning, render_chunk_controls
from pages._live_text import STORED, render_live_transcript
from pages._recorder import (
    PEOPLE_WIDGET,
    RESUME_WIDGET,
    TITLE_WIDGET,
    current_session_id,
    live_capture,
    resume_offered,
    set_next_recording,
    show_session,
)
from pages._shared import (
    SESSION_ROWS,
    chosen_settings,
    live_registry,
    principal,
    readable_session,
    runtime,
    session_chunks,
)
from pages._text import literal
from scribe import capture, history, record_view
from scribe.chunking import make_policy
from scribe.core import ChunkRow, SessionRow
from scribe.errors import ScribeError
from scribe.ingest import check_upload, ingest_file
from scribe.pipeline import PipelineStats
from scribe.storage import MAX_EXPECTED_SPEAKERS
from scribe.timelabels import local_datetime, mmss

rt = runtime()
config = chosen_settings()
registry = live_registry(rt.settings.max_live_sessions)

st.title("Record")
st.caption(f"{record_view.setup_words(rt.transcriber.name, rt.transcriber.model, config.chunk_policy, config.chunk_seconds)} "
           "Start and Stop are in the sidebar, so a recording goes on while you look at other pages.",
           help="Change these in the sidebar (backend, model, chunk length) or with the SCRIBE_* settings.")


def _session_label(session: SessionRow | None) -> str:
    """The picker's label for a session: only what does not change while the page is open
    (Streamlit keeps a choice by its label, so a label that changed would lose the choice)."""
    if session is None:
        return "New session"
    return f"Continue “{session.title}” · started {local_datetime(session.created_at)} · {session.id}"


def _keep_choice_valid(resumable: dict[str, SessionRow]) -> None:
    """A chosen session that can no longer be continued (deleted, recording elsewhere, or
    renamed) goes back to a new session, before the box is drawn."""
    chosen = st.session_state.get(RESUME_WIDGET)
    if chosen is not None and chosen not in resumable:
        st.session_state[RESUME_WIDGET] = None


def _resumable() -> dict[str, SessionRow]:
    """Sessions Start can continue: any recent microphone session nobody records now
    (one stopped a moment ago is still marked recording until its last chunk is stored)."""
    sessions = rt.storage.resumable_sessions(include_recording=True, owner_id=principal().user_id)
    return {s.id: s for s in sessions if _not_recording(registry.get(s.id))}


def _not_recording(live: capture.LiveCapture | None) -> bool:
    """No capture, or one whose Stop was pressed (it ends within a moment)."""
    return live is None or live.stop_requested or live.end_status is not None


def _upload(title: str, people: int) -> None:
    """A file through the same pipeline, with a progress bar while it is read."""
    uploaded = st.file_uploader("Audio or video file", key="upload_file")
    if uploaded is None or not st.button("Transcribe file", type="primary"):
        return
    policy = make_policy(config.chunk_policy, config.chunk_seconds)
    try:
        checked = check_upload(config, size=uploaded.size, title=title, file_name=uploaded.name)
    except ScribeError as exc:
        st.error(f"Cannot use {uploaded.name}: {exc}")
        return
    bar = st.progress(0.0, text=f"Reading {uploaded.name}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / checked.file_name
        path.write_bytes(uploaded.getbuffer())
        try:
            result = ingest_file(path, storage=rt.storage, pipeline=rt.pipeline, policy=policy,
                                 title=checked.title or path.stem, source="upload", owner_id=principal().user_id,
                                 max_audio_hours=checked.max_audio_hours, expected_speakers=people or None,
                                 progress=lambda fraction, message: bar.progress(fraction, text=message))
        except ScribeError as exc:
            bar.empty()
            show_session(None)  # not the previous session's transcript under this error
            reason = str(exc).removeprefix(f"{path.name}: ")
            st.error(f"Cannot transcribe {uploaded.name}: {reason}")
            return
    bar.empty()
    st.success(f"{uploaded.name}: {result.chunks} chunks ({mmss(int(result.audio_seconds * 1000))}) "
               "queued for transcription; progress below.")
    show_session(result.session.id)


def _shown_session() -> SessionRow | None:
    session_id = current_session_id()
    return readable_session(session_id, rt) if session_id else None


def _status(session: SessionRow, chunks: list[ChunkRow], n_segments: int) -> str:
    live = registry.get(session.id)
    stats = live.stats() if live else None
    return history.progress_status(session, chunks, n_segments, recording=stats is not None and not stats.ended)


@st.fragment(run_every=1.0)
def _live_status() -> None:
    """Once a second: title, counters, input level (DuckDB and in-memory counters only)."""
    session = _shown_session()
    if session is None:
        st.info("Press **Start** in the sidebar to record from your microphone, or upload a file.")
        return
    live = registry.get(session.id)
    stats = live.stats() if live else None
    chunks = session_chunks(session.id, rt)
    status = _status(session, chunks, STORED.count(rt.storage, session.id, _chunks_finished()))
    st.subheader(literal(session.title), anchor=False)
    _metrics(session, stats, chunks, rt.pipeline.stats(), status)
    render_backlog_warning(rt)
    if stats is not None:
        level = stats.level_dbfs
        st.progress(record_view.level_fraction(level), text=f"Input level {level:.0f} dBFS")


# While the shown session records (here or from a tool), the transcript redraws four times
# a second so the page is not what holds a live word back; otherwise (an upload, a finished session) only whole chunks
# arrive, and once a second is enough for them and easier on a server with many viewers.
WORDS_PACE_RECORDING = 0.25
WORDS_PACE_OTHERWISE = 1.0


def _live_words() -> None:
    """The transcript alone (stored lines, then partial text): cheap enough to repeat often."""
    session = _shown_session()
    if session is None:
        return
    st.markdown("**Transcript**")
    render_live_transcript(rt.storage, session.id, rt.partials,
                           lambda: _no_transcript_yet(_status(session, session_chunks(session.id, rt), 0)),
                           _chunks_finished)


def _chunks_finished() -> tuple[int, int, int]:
    """Moves whenever any chunk's text is stored (or fails) or labelled: the stored lines' mark."""
    return record_view.stored_mark(rt.pipeline.stats(), rt.speakers)


@st.fragment(run_every=1.0)
def _live_chunks() -> None:
    """Once a second, the chunk table (a table re-render is the heaviest part of the page)."""
    session = _shown_session()
    if session is None:
        return
    chunks = session_chunks(session.id, rt)
    st.markdown("**Chunks**")
    st.dataframe(record_view.chunk_table(chunks), hide_index=True, width="stretch",
                 column_config={record_view.LATENCY: st.column_config.TextColumn(
                     help="From the end of the chunk's audio to its text being stored")})
    if any(c.status == "failed" for c in chunks):
        with st.expander("Failed chunks: retry or re-transcribe", expanded=True):
            render_chunk_controls(rt, session.id)


def _no_transcript_yet(status: str) -> str:
    if status == history.NO_SPEECH:
        return "No speech was heard in this recording."
    if status == "recording":
        return "(listening: words appear here as they are recognised)"
    return "(transcribing: lines appear as chunks finish)"


def _metrics(session: SessionRow, stats: capture.LiveStats | None, chunks: list[ChunkRow],
             queue: PipelineStats, status: str) -> None:
    done = sum(c.status == "done" for c in chunks)
    failed = sum(c.status == "failed" for c in chunks)
    elapsed_ms = int(stats.session_seconds * 1000) if stats else session.duration_ms
    cols = st.columns(4)
    cols[0].metric("Status", status)
    cols[1].metric("Elapsed" if status == "recording" else "Length", mmss(elapsed_ms))
    cols[2].metric("Chunks done", f"{done}/{len(chunks)}" + (f" ({failed} failed)" if failed else ""))
    waiting = queue.queued + queue.in_flight + queue.intake
    cols[3].metric("Waiting on this server", f"{waiting} chunk" + ("" if waiting == 1 else "s"),
                   help=f"Chunks of every session on this server not transcribed yet: "
                        f"{queue.backlog_seconds:.0f} s of audio waiting")
    # The bar's and the caption's places are drawn on every run, filled or empty: an element a
    # run leaves out stays on the page until the browser clears stale elements (seconds later on a
    # busy server), which would show "Transcribed 5 of 6" beside "done 6/6"; an empty slot
    # replaces it as soon as this run reaches it.
    bar, heard = st.empty(), st.empty()
    if status == history.TRANSCRIBING and chunks:
        settled = done + failed
        bar.progress(settled / len(chunks), text=f"Transcribed {settled} of {len(chunks)} chunks")
    if stats is not None:
        heard.caption(f"Heard {stats.received_seconds:.1f} s of audio in {stats.wall_seconds:.1f} s "
                      f"· {stats.chunks_submitted} chunks sent for transcription · "
                      f"{registry.count()} live sessions on this server")


API_LIVE_WIDGET = "api_live_session"


def _watch_api_session() -> None:
    """The picker's choice becomes the session shown below (only when it changes, so an
    upload or a recording started afterwards is shown instead)."""
    if (chosen := st.session_state.get(API_LIVE_WIDGET)) is not None:
        show_session(chosen)


@st.fragment(run_every=2.0)
def _api_live() -> None:
    """Sessions a tool streams into `/v1/realtime` now, to watch here read-only: the tool
    starts and ends them, so no Start or Stop here. Redrawn every 2 s, so a tool that starts
    streaming after the page opened shows up without a reload."""
    sessions = {s.id: s for s in record_view.api_live_sessions(registry, rt.storage, principal(), SESSION_ROWS)}
    if st.session_state.get(API_LIVE_WIDGET) not in sessions:
        st.session_state[API_LIVE_WIDGET] = None  # it ended: the box resets before it is drawn
    if not sessions:
        st.caption("No tool is streaming audio of yours to this server's realtime API (`/v1/realtime`) now.")
        return
    st.selectbox("Live session", [None, *sessions], key=API_LIVE_WIDGET, on_change=_watch_api_session,
                 placeholder="Choose a session",
                 format_func=lambda sid: "Choose a session" if sid is None else
                 f"“{sessions[sid].title}” · started {local_datetime(sessions[sid].created_at)} · {sid}",
                 help="A session a tool streams into the realtime API: its transcript shows below")
    st.caption("The tool that streams it starts and ends it; here you watch its transcript.")


def _title_default() -> None:
    """After a reload the box starts with the title of the session being recorded or resumed."""
    if TITLE_WIDGET not in st.session_state and (sid := current_session_id() or st.query_params.get("recording")):
        if (session := rt.storage.find_readable_session(sid, principal())) is not None:
            st.session_state[TITLE_WIDGET] = session.title


_title_default()
title = st.text_input("Title", placeholder="Weekly planning", key=TITLE_WIDGET)
try:
    history.check_title(title)
except ScribeError as exc:  # a longer title is refused with the reason, never cut silently
    st.error(f"Title too long: {exc}. Shorten it before pressing Start.", icon=":material/title:")
people = 0
if rt.speakers is not None:  # speaker labels are on
    people = st.number_input("People in the meeting (optional)", min_value=0, max_value=MAX_EXPECTED_SPEAKERS,
                             step=1, key=PEOPLE_WIDGET,
                             help="Speaker labels then find exactly this many voices instead of guessing "
                                  "the number. Leave 0 if you are not sure.")
mic_tab, upload_tab, api_tab = st.tabs(["Microphone", "Upload a file", "Live from the API"])
with mic_tab:
    resumable = _resumable()
    _keep_choice_valid(resumable)
    resume_id = st.selectbox("Session", [None, *resumable], key=RESUME_WIDGET,
                             format_func=lambda sid: _session_label(resumable.get(sid)),
                             help="Continue a stopped or interrupted recording")
    if resume_id not in resumable:
        resume_id = None  # a label from a moment ago (renamed since): the box shows it reset next run
    if live_capture() is not None:
        st.caption("Recording now. Press **Stop** in the sidebar to end it.")
    elif resume_id is None and (offered := resume_offered()) is not None:
        st.caption(f"The reload cut off “{literal(offered.title)}”: **Resume recording** in the sidebar "
                   "continues it; **Start** records a new session instead.")
    elif resume_id is not None:
        st.caption(f"Press **Start** in the sidebar to continue “{literal(resumable[resume_id].title)}” "
                   "where it ended.")
    else:
        st.caption("Press **Start** in the sidebar to record a new session.")
    set_next_recording(title, resume_id)
with upload_tab:
    _upload(title, int(people))
with api_tab:
    _api_live()
_live_status()
words_column, chunks_column = st.columns([3, 2])
with words_column:
    streaming = live_capture() is not None or registry.get(current_session_id() or "") is not None
    st.fragment(_live_words, run_every=WORDS_PACE_RECORDING if streaming else WORDS_PACE_OTHERWISE)()
with chunks_column:
    _live_chunks()
