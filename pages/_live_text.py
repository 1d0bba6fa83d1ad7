"""The Record page's live transcript: stored lines, then the partial text in grey italics.

Both are `st.text` (literal text: never Markdown or HTML). The style comes from a
fixed stylesheet keyed to the partial container; no transcript text is ever part
of that markup.
"""

from __future__ import annotations

import streamlit as st

from scribe.capture import LiveCapture, live_transcript
from scribe.storage import Storage

PARTIAL_KEY = "live_partial_text"
_PARTIAL_STYLE = f"<style>.st-key-{PARTIAL_KEY} div {{ color: #8a8f98; font-style: italic; }}</style>"


def render_live_transcript(storage: Storage, session_id: str, live: LiveCapture | None) -> None:
    """Stored transcript, then (while recording) the open chunk's partial text."""
    partials = live.partial_text() if live is not None else []  # before the segments: see live_transcript
    view = live_transcript(storage.list_segments(session_id), partials)
    if not view.stored and not view.partial:
        st.text("(waiting for the first words)" if live is not None else "(waiting for the first chunk)")
    if view.stored:
        st.text("\n".join(view.stored))
    if view.partial:
        st.html(_PARTIAL_STYLE)
        with st.container(key=PARTIAL_KEY):
            st.text("\n".join(view.partial), help="Partial text: replaced by the stored transcript "
                    "when its chunk is transcribed")
