"""The Speakers section of a session's detail: names, merge, split, the speaker count.

Renames and merges are instant (Storage); a split embeds that speaker's audio on
this script thread (seconds); a relabel with a new count is queued to the app's
`scribe-speakers` thread. Every reader sees new names at once: Storage resolves them.
"""

from __future__ import annotations

import zlib

import streamlit as st

from pages._voices import voice_controls
from scribe.diarization import split_speaker
from scribe.errors import ScribeError


def speakers_section(rt, session, shown: str, can_change: bool = True) -> None:
    """`can_change`: the owner or an administrator; a reader sees the speakers only."""
    storage = rt.storage
    stats = storage.speaker_stats(session.id, shown)
    state = storage.diarization_state(session.id) or {}
    title = f"Speakers ({len(stats)})" if stats else "Speakers"
    with st.expander(title, expanded=False):
        if not stats:
            st.caption("No speaker labels yet." if rt.speakers else
                       "Speaker labels are off (SCRIBE_DIARIZATION) or the speaker model is not installed.")
        else:
            stage = "after the whole recording" if state.get("stage") == "final" else "live, per chunk"
            st.caption(f"Labelled {stage}. A new name shows in the transcript, search, summaries and exports.")
            st.dataframe([{"speaker": r["name"], "segments": r["segments"], "seconds": round(r["seconds"], 1)}
                          for r in stats], hide_index=True)
            if not can_change:
                return
            _rename(storage, session.id, stats)
            if len(stats) > 1:
                _merge(storage, session.id, stats)
            _split(storage, session.id, stats)
            voice_controls(storage, session.id)
        if can_change:
            _count(rt, session, state)


def _names(stats) -> dict[int, str]:
    return {r["id"]: r["name"] for r in stats}


def _tag(session_id: str, stats) -> str:
    """Widget keys change with the names, so choices never show a name from before a rename."""
    return f"{session_id}-{zlib.crc32(repr(_names(stats)).encode()):08x}"


def _rename(storage, session_id: str, stats) -> None:
    names = _names(stats)
    with st.form(f"speaker-rename-{session_id}", border=False):
        left, right = st.columns(2)
        who = left.selectbox("Speaker", list(names), format_func=names.get,
                             key=f"sr-who-{_tag(session_id, stats)}")
        name = right.text_input("New name", max_chars=60, key=f"sr-name-{_tag(session_id, stats)}")
        if st.form_submit_button("Rename speaker"):
            _apply(lambda: storage.rename_speaker(session_id, who, name))


def _merge(storage, session_id: str, stats) -> None:
    names = _names(stats)
    left, right, button = st.columns([2, 2, 1], vertical_alignment="bottom")
    drop = left.selectbox("Merge", list(names), format_func=names.get, key=f"sm-drop-{_tag(session_id, stats)}")
    keep_choices = [sid for sid in names if sid != drop]
    keep = right.selectbox("into", keep_choices, format_func=names.get,
                           key=f"sm-keep-{_tag(session_id, stats)}-{drop}")
    if button.button("Merge", key=f"sm-go-{session_id}"):
        _apply(lambda: storage.merge_speakers(session_id, keep, drop))


def _split(storage, session_id: str, stats) -> None:
    names = _names(stats)
    left, button = st.columns([4, 1], vertical_alignment="bottom")
    who = left.selectbox("Split in two (two voices under one label)", list(names), format_func=names.get,
                         key=f"ss-who-{_tag(session_id, stats)}")
    if button.button("Split", key=f"ss-go-{session_id}"):
        with st.spinner("Listening to that speaker's segments..."):
            _apply(lambda: split_speaker(storage, session_id, who))


def _count(rt, session, state: dict) -> None:
    if rt.speakers is None or session.status == "recording":
        return
    left, button = st.columns([4, 1], vertical_alignment="bottom")
    count = left.number_input("People in this meeting (0 = estimate)", min_value=0, max_value=20,
                              value=int(state.get("expected_speakers") or 0), key=f"sc-n-{session.id}")
    if button.button("Relabel", key=f"sc-go-{session.id}"):
        rt.storage.set_expected_speakers(session.id, int(count) or None)
        rt.speakers.request_relabel(session.id)
        st.toast("Relabelling the whole recording; labels update in a few seconds.")


def _apply(action) -> None:
    try:
        action()
    except ScribeError as exc:
        st.error(str(exc))
        return
    st.rerun()
