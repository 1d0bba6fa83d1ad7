"""Sessions: every session (paged, filtered), search across transcripts, and one session's detail.

`?session=<id>&t=<ms>` opens a session at a moment (search hits and summary items link here).
Transcript text only ever goes into literal elements (dataframes, st.text, st.code), never Markdown.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd
import streamlit as st

from pages._chunk_controls import render_chunk_controls
from pages._shared import principal, runtime
from pages._sharing import sharing_section
from pages._speakers import speakers_section
from pages._text import literal, literal_marked
from pages._transcript import render_transcript
from scribe import export, history
from scribe.access import can_write
from scribe.core import SESSION_STATUSES
from scribe.errors import ScribeError
from scribe.search import SearchQueryError, highlight, search
from scribe.timelabels import local_datetime, mmss, picked_days, time_zone_note

PER_PAGE_CHOICES = (25, 50, 100)
SEARCH_PAGE = 20

rt = runtime()
storage = rt.storage
who = principal()
if "table_nonce" not in st.session_state:
    st.session_state.table_nonce = 0  # a new key resets a table's row selection


def open_session(session_id: str, at_ms: int | None = None) -> None:
    st.session_state.table_nonce += 1
    st.query_params.from_dict({"session": session_id, **({"t": str(at_ms)} if at_ms is not None else {})})
    st.rerun()


REFRESH_SECONDS = 2.0


def refresh_when_changed(key: str, mark: Callable[[], tuple]) -> None:
    """Redraw the page when background work (transcription, recording, speaker labels) changed
    what it shows: a small fragment compares `mark()` every REFRESH_SECONDS."""
    st.session_state[key] = mark()

    @st.fragment(run_every=REFRESH_SECONDS)
    def watch() -> None:
        now = mark()
        if st.session_state.get(key) != now:
            st.session_state[key] = now
            st.rerun(scope="app")

    watch()


def selected_row(event) -> int | None:
    """The row picked by its checkbox or by a click on any of its cells."""
    if event is None:
        return None
    rows = event.selection.rows or [row for row, _column in event.selection.cells]
    return rows[0] if rows else None


# -- list view ------------------------------------------------------------------
def search_section() -> bool:
    """Search box and results; True when a search is showing."""
    query = st.text_input("Search every transcript", placeholder='words or "an exact phrase"', key="q")
    if not query.strip():
        return False
    if st.session_state.get("last_query") != query:  # a new query starts on its first page
        st.session_state.last_query = query
        st.session_state.search_page = 1
    page_no = int(st.session_state.get("search_page", 1))
    try:
        result = search(storage, query, limit=SEARCH_PAGE, offset=(page_no - 1) * SEARCH_PAGE, visible_to=who)
    except SearchQueryError as exc:
        st.warning(str(exc))
        return True
    if not result.total:
        st.info("No transcript contains that.")
        return True
    st.caption(f"{result.total} matching line(s), the words found in bold. Open one to hear it in its session.")
    for hit in result.hits:
        opener, text = st.columns([1, 4], vertical_alignment="center")
        if opener.button(f"{literal(hit.title)} · {mmss(hit.start_ms)}", key=f"hit-{hit.session_id}-{hit.transcript}-"
                         f"{hit.seq}-{hit.idx}", type="tertiary", icon=":material/play_arrow:",
                         help=f"Open the session at {mmss(hit.start_ms)} ({local_datetime(hit.created_at)})"):
            open_session(hit.session_id, hit.start_ms)
        speaker = f"{literal(hit.speaker)}: " if hit.speaker else ""
        text.markdown(speaker + literal_marked(highlight(hit.text, result.terms)))
    if result.pages > 1:
        st.number_input(f"Results page (of {result.pages})", 1, result.pages, key="search_page")
    return True


def list_view() -> None:
    st.title("Sessions")
    if search_section():
        return
    left, middle, right = st.columns([2, 2, 1])
    statuses = left.multiselect("Status", SESSION_STATUSES, placeholder="any status")
    picked = middle.date_input("Created between", value=(), format="YYYY-MM-DD")
    middle.caption(time_zone_note())
    per_page = right.selectbox("Per page", PER_PAGE_CHOICES)
    toggles = st.columns(2)
    hide_silent = toggles[0].toggle("Hide sessions with no speech", key="hide_no_speech")
    shared = toggles[1].toggle("Shared with me", key="shared_with_me",
                               help="Only other people's sessions they shared with you or the team")
    since, until = picked_days(picked)
    filters = dict(statuses=statuses, since=since, until=until, hide_no_speech=hide_silent,
                   visible_to=who, shared_with_me=shared)
    total = storage.count_sessions(**filters)
    if not total:
        st.info("No sessions yet. Record one on the Record page, or run "
                "`python -m scribe transcribe FILE`." if not (statuses or since or hide_silent or shared)
                else "No session matches.")
        return
    pages = max(1, -(-total // per_page))
    if int(st.session_state.get("list_page", 1)) > pages:  # filters shrank the list
        st.session_state.list_page = 1
    page_no = int(st.session_state.get("list_page", 1))
    def page() -> tuple[list[history.SessionListing], int]:
        return history.list_page(storage, page=page_no, per_page=per_page, **filters)

    listings, total = page()
    refresh_when_changed("list-mark", lambda: history.listing_mark(page()[0]))
    st.caption(f"{total} session(s), newest first. Click one to open it.")
    event = st.dataframe(sessions_frame(listings), hide_index=True, on_select="rerun",
                         selection_mode=["single-row", "single-cell"], key=f"sessions-{st.session_state.table_nonce}")
    if (row := selected_row(event)) is not None:
        open_session(listings[row].session.id)
    if pages > 1:
        st.number_input(f"Page (of {pages})", 1, pages, key="list_page")


def sessions_frame(listings: list[history.SessionListing]) -> pd.DataFrame:
    return pd.DataFrame([{
        "title": item.session.title, "date": local_datetime(item.session.created_at),
        "duration": mmss(item.duration_ms), "status": item.status,
        "backend": item.session.backend,
        "chunks": f"{item.chunks['done']}/{item.total_chunks}",
        "failed": item.chunks["failed"],
    } for item in listings])


# -- detail view ----------------------------------------------------------------
def detail_view(session_id: str, jump_ms: int | None) -> None:
    if st.button("All sessions", icon=":material/arrow_back:"):
        st.session_state.table_nonce += 1
        st.query_params.clear()
        st.rerun()
    session = storage.find_readable_session(session_id, who)
    if session is None:  # missing or not this person's to read: the same answer
        st.warning(f"There is no session {literal(session_id)} (it may have been deleted).")
        return
    st.title(literal(session.title), anchor=False)
    refresh_when_changed(f"mark-{session.id}", lambda: history.session_mark(storage, session.id))
    counts = storage.chunk_counts(session.id)
    shown, available = history.choose_transcript(storage, session.id,
                                                 st.session_state.get(f"transcript-{session.id}"))
    segments = storage.list_segments(session.id, shown)
    status = history.progress_status(session, storage.list_chunks(session.id), len(segments))
    length_ms = max(session.duration_ms, storage.stored_audio_ms_many([session.id]).get(session.id, 0))
    st.caption(f"{local_datetime(session.created_at)} · {mmss(length_ms)} · {status} · "
               f"{session.source} · {session.backend} / {literal(session.model)} · "
               f"{counts['done']}/{sum(counts.values())} chunks done · id {session.id}")
    mine = can_write(who, session)
    transcript_section(session, shown, available, segments, status, jump_ms, mine)
    st.divider()
    export_section(session, shown, segments)
    sharing_section(storage, who, session)
    speakers_section(rt, session, shown, can_change=mine)
    chunk_section(session, counts, mine)
    if mine:
        manage_section(session)


def transcript_section(session, shown: str, available: list[str], segments, status: str,
                       jump_ms: int | None, can_change: bool) -> None:
    if len(available) > 1:
        st.radio("Transcript", available, index=available.index(shown), horizontal=True,
                 key=f"transcript-{session.id}", format_func=history.transcript_label)
    others = [name for name in available if name != shown]
    st.caption(f"Showing the **{shown}** transcript" + (f"; the {others[0]} one is also stored." if others else ".")
               + history.final_note(segments if shown == "final" else []))
    if not segments:
        st.info({history.NO_SPEECH: "No speech was heard in this recording.",
                 history.TRANSCRIBING: "No transcript yet: its chunks are still being transcribed.",
                 "recording": "No transcript yet: it is still being recorded."}.get(
            status, "No transcript: its chunks failed. Retry them under Chunks below."))
        return
    render_transcript(storage, session, shown, segments, jump_ms, can_change)


def export_section(session, shown: str, segments) -> None:
    st.subheader("Export", anchor=False)
    st.caption(f"The {shown} transcript, {len(segments)} segments.")
    columns = st.columns(len(export.FORMATS))
    for column, fmt in zip(columns, export.FORMATS):
        column.download_button(fmt.upper(), export.render(fmt, session, segments),
                               file_name=export.download_name(session, fmt, shown),
                               mime=export.MIME_TYPES[fmt], key=f"dl-{fmt}", disabled=not segments)


def chunk_section(session, counts: dict[str, int], can_change: bool) -> None:
    """Progress, cost, failed chunks with their errors, retry and re-transcription."""
    with st.expander("Chunks", expanded=bool(counts["failed"])):
        render_chunk_controls(rt, session.id, can_change)


def manage_section(session) -> None:
    with st.expander("Rename, summarize or delete"):
        with st.form(f"rename-{session.id}", border=False):
            title = st.text_input("Title", value=session.title)  # a longer one is refused with the reason
            if st.form_submit_button("Rename"):
                try:
                    history.rename_session(storage, session.id, title)
                    st.rerun()
                except ScribeError as exc:
                    st.error(str(exc))
        if st.button("Summarize this session", icon=":material/summarize:"):
            st.switch_page("pages/summary.py", query_params={"session": session.id})
        st.divider()
        delete_controls(session)


def delete_controls(session) -> None:
    blocker = history.delete_blocker(storage, session.id)
    if blocker:
        st.caption(f"Delete is unavailable: {blocker}.")
        return
    sure = st.checkbox("Delete this session's transcript, summaries and audio files for good",
                       key=f"sure-{session.id}")
    if st.button("Delete session", type="primary", disabled=not sure, key=f"delete-{session.id}"):
        try:
            report = history.delete_session(storage, rt.settings.audio_dir, session.id, actor=who)
        except ScribeError as exc:
            st.error(str(exc))
            return
        st.session_state.table_nonce += 1
        st.query_params.clear()
        st.toast(f"Deleted “{literal(session.title)}”: {report.segments} lines, {report.audio_files} audio files.")
        st.rerun()


def jump_param() -> int | None:
    raw = st.query_params.get("t")
    try:
        return max(0, int(raw)) if raw is not None else None
    except ValueError:
        return None


if session_param := st.query_params.get("session"):
    detail_view(session_param, jump_param())
else:
    list_view()
