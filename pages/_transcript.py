"""The transcript as a document: `[mm:ss]` lines in full, click a time to play from there
in the whole-session player, and corrections a person makes, marked and undoable.

Used by the Sessions page: `play_at = render_transcript(storage, session, shown, segments, jump_ms)`.
Edits go through `Storage.edit_segment` / `undo_edit`; every reader of `list_segments`
(search, summaries, exports, the CLI) then sees the corrected text.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages._text import literal
from scribe import history
from scribe.core import SegmentRow, SessionRow
from scribe.errors import ScribeError
from scribe.storage import Storage
from scribe.timelabels import mmss
from scribe.vocabulary import suggestions

LINES_PER_PAGE = 100
PLAY_AT = "transcript_play_at"
EDITED = "Edited"


def render_transcript(storage: Storage, session: SessionRow, shown: str, segments: list[SegmentRow],
                      jump_ms: int | None) -> None:
    """Player, then the lines (or the editor); a clicked time plays the recording from there."""
    key = f"{PLAY_AT}-{session.id}"
    if jump_ms is not None and st.session_state.get(f"{key}-jumped") != jump_ms:
        st.session_state[f"{key}-jumped"] = jump_ms  # a link's ?t= plays once, then clicks win
        st.session_state[key] = history.segment_start(segments, jump_ms)
    _player(storage, session.id, st.session_state.get(key))
    editing = st.toggle("Correct the transcript", key=f"editing-{session.id}-{shown}",
                        help="Fix wrong words. The machine's text is kept; each line can go back to it.")
    if editing:
        _editor(storage, session.id, shown, segments)
    else:
        _lines(storage, session.id, shown, segments, key)


def _player(storage: Storage, session_id: str, play_at: int | None) -> None:
    try:
        audio = _session_audio(storage, session_id, storage.chunk_counts(session_id)["done"])
    except ScribeError as exc:
        st.caption(f"No player: {exc}.")
        return
    st.audio(audio, format="audio/flac", start_time=(play_at or 0) // 1000, autoplay=play_at is not None)


@st.cache_data(max_entries=4, show_spinner="Joining the recording...")
def _session_audio(_storage: Storage, session_id: str, done_chunks: int) -> bytes:
    """Cached per session and number of done chunks (a growing session is joined again)."""
    return history.session_audio_bytes(_storage, session_id)


def _lines(storage: Storage, session_id: str, shown: str, segments: list[SegmentRow], key: str) -> None:
    doubtful = [history.doubts(s) for s in segments]
    n_doubtful = sum(1 for d in doubtful if d)
    only_doubtful = n_doubtful > 0 and st.toggle(f"Only doubtful lines ({n_doubtful})",
                                                 key=f"doubtful-{session_id}-{shown}")
    rows = [i for i, d in enumerate(doubtful) if d or not only_doubtful]
    page = _page_of(rows, session_id)
    playing = st.session_state.get(key)
    st.caption("Click a time to play the recording from there.")
    for i in page:
        _line(storage, segments[i], doubtful[i], key, playing)


def _page_of(rows: list[int], session_id: str) -> list[int]:
    pages = max(1, -(-len(rows) // LINES_PER_PAGE))
    if pages == 1:
        return rows
    number = st.number_input(f"Lines page (of {pages}, {LINES_PER_PAGE} lines each)", 1, pages,
                             key=f"lines-page-{session_id}")
    start = (int(number) - 1) * LINES_PER_PAGE
    return rows[start:start + LINES_PER_PAGE]


def _line(storage: Storage, seg: SegmentRow, doubts: list[str], key: str, playing: int | None) -> None:
    at, text, extra = st.columns([1, 12, 2], vertical_alignment="center")
    if at.button(f"[{mmss(seg.start_ms)}]", key=f"at-{seg.transcript}-{seg.seq}-{seg.idx}", type="tertiary",
                 help="Play from here"):
        st.session_state[key] = seg.start_ms
        st.rerun()
    speaker = f"**{literal(seg.speaker)}:** " if seg.speaker else ""
    body = literal(seg.text)
    # A highlighted line is the one playing; the text inside ** ** is escaped, so stays literal.
    text.markdown(speaker + (f"**{body}**" if playing == seg.start_ms else body))
    if doubts:
        text.caption("May be wrong: " + ", ".join(d.replace("_", " ") for d in doubts))
    if seg.edited:
        text.caption(f"{EDITED} · the machine heard: {literal(seg.machine_text)}")
        if extra.button("Undo", key=f"undo-{seg.transcript}-{seg.seq}-{seg.idx}", type="tertiary",
                        icon=":material/undo:", help="Back to the machine's text"):
            storage.undo_edit(seg.session_id, seg.transcript, seg.seq, seg.idx)
            st.rerun()


def _editor(storage: Storage, session_id: str, shown: str, segments: list[SegmentRow]) -> None:
    st.caption("Change the text of any line, then save. Emptying a line is not allowed. To go back to "
               "the machine's text, turn *Correct the transcript* off: each corrected line has an Undo button there.")
    frame = pd.DataFrame([{"at": mmss(s.start_ms), "speaker": s.speaker or "", "text": s.text,
                           "edited": s.edited} for s in segments])
    edited = st.data_editor(frame, hide_index=True, width="stretch", num_rows="fixed",
                            disabled=["at", "speaker", "edited"], key=f"editor-{session_id}-{shown}",
                            column_config={"text": st.column_config.TextColumn("text", width="large")})
    if not st.button("Save corrections", type="primary", key=f"save-edits-{session_id}-{shown}"):
        return
    changed = [(seg, new) for seg, new in zip(segments, edited["text"]) if str(new) != seg.text]
    try:
        for seg, new in changed:
            storage.edit_segment(session_id, shown, seg.seq, seg.idx, str(new))
    except ScribeError as exc:
        st.error(f"Not saved: {exc}.")
        return
    st.session_state.pop(f"editor-{session_id}-{shown}", None)
    st.toast(f"Saved {len(changed)} corrected line(s).")
    known = [t.term for t in storage.list_vocabulary()]
    new_terms = {s.term for seg, new in changed for s in suggestions(seg.machine_text or seg.text, str(new), known)}
    if new_terms:  # one click on the Vocabulary page adds them
        st.toast(f"New name(s) for the vocabulary: {', '.join(sorted(new_terms))}. Add them on the Vocabulary page.")
    st.rerun()
