"""The Record page's live transcript: stored lines, then the partial text in grey italics.

Both are `st.text` (literal text: never Markdown or HTML). The style comes from a
fixed stylesheet keyed to the partial container; no transcript text is ever part
of that markup.
"""

from __future__ import annotations

from typing import Callable

import streamlit as st

from scribe.partials import PartialLane
from scribe.record_view import StoredLines, live_transcript
from scribe.storage import Storage

PARTIAL_KEY = "live_partial_text"
_PARTIAL_STYLE = f"<style>.st-key-{PARTIAL_KEY} div {{ color: #8a8f98; font-style: italic; }}</style>"
STORED = StoredLines()
"""Shared by every page of this process: N people watching a session cost one read and one
build of its text per change."""


def render_live_transcript(storage: Storage, session_id: str, partials: PartialLane | None,
                           empty_text: Callable[[], str], stored_mark: Callable[[], object]) -> None:
    """Stored transcript, then the partial text not yet replaced by it (the open chunk's
    while recording, and after Stop the last chunks' until they are stored); with neither,
    `empty_text()` (asked only then). `stored_mark()` changes whenever a chunk is stored
    (`StoredLines`)."""
    shown = partials.partials(session_id) if partials is not None else []  # before the mark and segments
    view = live_transcript(STORED.transcript(storage, session_id, stored_mark()), shown)
    st.html(_PARTIAL_STYLE)  # on every run, so it is in place before the first partial line is
    if not view.stored and not view.partial:
        st.text(empty_text())
    if view.stored:
        st.text(view.stored)
    if view.partial:
        with st.container(key=PARTIAL_KEY):
            st.text("\n".join(view.partial), help="Partial text: replaced by the stored transcript "
                    "when its chunk is transcribed")
