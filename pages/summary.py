"""Summary: a session's gist, keywords, decisions and action items, each linked to its moment.

Local summaries need nothing; Gemini summaries need GEMINI_API_KEY. Every run is stored
as a new version. Text that comes from a transcript is shown with st.text or in
dataframes, never as Markdown.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages._shared import principal, runtime
from scribe import backends, history
from scribe.access import can_write
from scribe.config import ENV_VARS
from scribe.errors import ScribeError
from scribe.summaries import SUMMARY_LABELS, TimedItem, from_row, summarize_session, summarizers_open_to
from scribe.timelabels import local_datetime, mmss

RECENT = 200

rt = runtime()
storage = rt.storage
who = principal()
st.title("Summary")


def session_choice() -> str | None:
    """The newest sessions, plus the one named in `?session=` when it is older."""
    sessions = storage.list_sessions(limit=RECENT, visible_to=who)
    wanted = st.query_params.get("session")
    if wanted and wanted not in {s.id for s in sessions} and (
            found := storage.find_readable_session(wanted, who)):
        sessions.insert(0, found)
    if not sessions:
        st.info("No sessions yet. Record or upload one first.")
        st.stop()
    ids = [s.id for s in sessions]
    labels = {s.id: f"{s.title}  ·  {local_datetime(s.created_at)}"
              for s in sessions}
    index = ids.index(wanted) if wanted in ids else 0
    chosen = st.selectbox("Session", ids, index=index, format_func=labels.get) or ids[0]
    if chosen != wanted:
        st.query_params["session"] = chosen
    return chosen


def run_controls(session_id: str, has_versions: bool) -> None:
    left, right = st.columns([3, 2])
    choices = summarizers_open_to(who, rt.settings)
    backend = left.radio("Summarizer", choices, horizontal=True, format_func=SUMMARY_LABELS.get)
    key = f"summary-transcript-{session_id}"
    shown, available = history.choose_transcript(storage, session_id, st.session_state.get(key))
    if len(available) > 1:
        shown = left.radio("Transcript", available, index=available.index(shown), horizontal=True, key=key,
                           format_func=history.transcript_label)
    left.caption(f"Summarizes the {shown} transcript." if available else "This session has no transcript yet.")
    missing = backends.missing_key(backend, rt.settings)
    no_key = missing is not None
    if missing:
        left.info(f"{SUMMARY_LABELS[backend]} summaries need {ENV_VARS[missing]} (environment or "
                  ".streamlit/secrets.toml).")
    label = "Regenerate (keeps earlier versions)" if has_versions else "Summarize"
    if right.button(label, type="primary", disabled=no_key or not available, icon=":material/summarize:",
                    key=f"summarize-{session_id}"):
        run(session_id, backend, shown)
    if flash := st.session_state.pop("flash", None):
        right.success(flash)


def run(session_id: str, backend: str, transcript: str | None = None) -> None:
    with st.status(f"Summarizing with {backend}...", expanded=True) as status:
        bar = st.progress(0.0, text="starting")
        try:
            # Runs on this script thread; the callback updates the bar between steps.
            _summary, row = summarize_session(storage, rt.settings, session_id, backend=backend,
                                              transcript=transcript,
                                              progress=lambda f, m: bar.progress(min(1.0, f), text=m))
        except ScribeError as exc:
            status.update(label="Summary failed", state="error")
            st.error(str(exc))
            return
        status.update(label=f"Saved as version {row.version}", state="complete", expanded=False)
    st.session_state[f"version-{session_id}"] = row.version
    st.session_state.flash = f"Saved as version {row.version}."
    st.rerun()  # redraw the controls and versions from the stored state


def items_table(name: str, items: list[TimedItem], session_id: str, with_owner: bool = False) -> None:
    if not items:
        st.caption(f"No {name.lower()} found.")
        return
    frame = pd.DataFrame([{"at": mmss(i.start_ms), **({"owner": i.owner or "", "due": i.due or ""}
                           if with_owner else {}), "text": i.text} for i in items])
    event = st.dataframe(frame, hide_index=True, on_select="rerun", selection_mode="single-row",
                         key=f"{name}-{session_id}-{st.session_state.get(f'version-{session_id}')}",
                         column_config={"text": st.column_config.TextColumn(width="large")})
    if event.selection.rows:
        item = items[event.selection.rows[0]]
        st.switch_page("pages/sessions.py", query_params={"session": session_id, "t": str(item.start_ms)})


def show_version(session_id: str) -> None:
    rows = storage.list_summaries(session_id)
    if not rows:
        st.info("No summary yet for this session.")
        return
    versions = [r.version for r in rows]
    key = f"version-{session_id}"
    if st.session_state.get(key) not in versions:
        st.session_state[key] = versions[0]
    by_version = {r.version: r for r in rows}
    st.selectbox("Version", versions, key=key, format_func=lambda v: f"v{v} · {by_version[v].backend} "
                 f"{by_version[v].model or ''} · {local_datetime(by_version[v].created_at)}")
    summary = from_row(by_version[st.session_state[key]])
    st.subheader("Suggested title", anchor=False)
    st.text(summary.title)
    if can_write(who, storage.get_session(session_id)) and st.button("Use as session title"):
        history.rename_session(storage, session_id, summary.title)
        st.toast("Session renamed.")
    st.subheader("Overview", anchor=False)
    st.text(summary.overview)
    if summary.keywords:
        st.caption("Keywords")
        st.text(", ".join(summary.keywords))
    cost = summary.usage.get("cost_usd")
    usage = (f" {summary.usage['input_tokens']:,} tokens in, {summary.usage['output_tokens']:,} out"
             + (f" (about USD {cost:.4f} on a paid key)." if cost is not None else ".")) if summary.usage else ""
    st.caption(f"From the {summary.transcript} transcript, {summary.words} words, made in "
               f"{summary.elapsed_s:.2f} s.{usage} Select a line to open the session at that moment.")
    for title, items, owner in (("Key points", summary.key_points, False), ("Decisions", summary.decisions, False),
                                ("Action items", summary.action_items, True)):
        st.subheader(title, anchor=False)
        items_table(title, items, session_id, with_owner=owner)


chosen_id = session_choice()
if chosen_id:
    if can_write(who, storage.get_session(chosen_id)):  # readers read the stored summaries
        run_controls(chosen_id, bool(storage.list_summaries(chosen_id)))
    st.divider()
    show_version(chosen_id)
