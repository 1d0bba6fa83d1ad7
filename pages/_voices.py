"""The voice-profile controls in a session's Speakers section: "Remember this voice" (a named
profile from a speaker, or more speech for one) and undoing a recognised name.

Both are instant (Storage and numpy on this script thread); every reader sees the new name at
once, and later sessions name the voice by themselves (the `scribe-speakers` thread)."""

from __future__ import annotations

import streamlit as st

from scribe import voices
from scribe.errors import ScribeError


def voice_controls(storage, session_id: str) -> None:
    speakers = storage.list_speakers(session_id)
    if not speakers:
        return
    names = {s.id: s.name for s in speakers}
    tag = f"{session_id}-{abs(hash(tuple(sorted(names.items())))):x}"
    with st.form(f"voice-remember-{session_id}", border=False):
        left, right = st.columns(2)
        who = left.selectbox("Remember this voice", list(names), format_func=names.get, key=f"vr-who-{tag}",
                             help="Later sessions name this voice by themselves")
        name = right.text_input("as", max_chars=60, key=f"vr-name-{tag}",
                                placeholder="a person's name (an existing profile's name adds speech to it)")
        if st.form_submit_button("Remember voice"):
            _remember(storage, session_id, who, name)
    recognised = [s for s in speakers if s.profile_by == "auto"]
    for speaker in recognised:
        left, button = st.columns([4, 1], vertical_alignment="center")
        left.caption(f"Speaker {speaker.id} was recognised as a known voice: {speaker.name}")
        if button.button("Not this person", key=f"vu-{session_id}-{speaker.id}",
                         help="Back to Speaker N; no profile names this speaker again"):
            voices.undo_match(storage, session_id, speaker.id)
            st.rerun()


def _remember(storage, session_id: str, speaker_id: int, name: str) -> None:
    try:
        profile = voices.remember_speaker(storage, session_id, speaker_id, name)
    except ScribeError as exc:
        st.error(str(exc))
        return
    st.toast(f"Remembered: {profile.name} ({profile.seconds:.0f} s of speech).")
    st.rerun()
