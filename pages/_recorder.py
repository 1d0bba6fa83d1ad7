"""The recorder every page shares: microphone widget, recording indicator, Stop, Resume.

app.py calls `shared_recorder()` on every run, before the page, so the WebRTC
widget sits in the sidebar at the same place whatever page is open: moving to
Sessions or Analytics does not unmount it, and the recording goes on. The Record
page sets what the next recording is called and which session it continues
(`set_next_recording`) and shows the session being recorded (`current_session_id`).

A reload closes the browser's connection, which ends the capture `interrupted`.
The session id stays in the URL (`?recording=<id>`), so the reloaded page offers
"Resume recording" for that session: one click starts the microphone again and
continues the same session where its audio stopped.
"""

from __future__ import annotations

import time
from typing import NoReturn

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from pages._shared import chosen_settings, live_registry, principal, readable_session, runtime
from pages._text import literal
from scribe import capture, history
from scribe.access import can_write
from scribe.chunking import make_policy
from scribe.core import SessionRow
from scribe.errors import ScribeError
from scribe.record_view import live_words_note
from scribe.runtime import Runtime
from scribe.timelabels import mmss

STREAMER_KEY = "recorder"
STREAMER_GENERATION = "recorder_generation"
"""Bumped after a Start the app refused: a fresh widget key gives the browser a fresh, idle
recorder (the old one would wait for an answer that never comes, then blame STUN/TURN)."""
START_ERROR = "recorder_start_error"
CAPTURE = "record_capture"
"""This browser's live capture (set on the script thread)."""
CURRENT = "record_session"
"""The session the Record page shows: the one recorded or uploaded last in this browser."""
NEXT_TITLE = "recorder_next_title"
NEXT_RESUME = "recorder_next_resume"
AUTOSTART = "recorder_autostart"
"""When Resume asked the browser to start the microphone. Asked again on every run until the offer
is in (at most AUTOSTART_S): a busy browser can take the next run's recorder, which no longer asks,
before it has acted on the one that did, and the start would be lost."""
AUTOSTART_S = 15.0
TITLE_WIDGET = "record_title"
PEOPLE_WIDGET = "record_people"
"""The Record page's "People in the meeting" box (0: not given)."""
RESUME_WIDGET = "record_resume"
"""The Record page's "Session" box: Resume sets it, so the page does not undo the choice."""
RESUMING = "recorder_resuming"
"""The session Resume starts the microphone for, as long as AUTOSTART. The box alone cannot carry
it: a rerun the browser asks for before it has drawn the box's new value (a busy machine) brings
the box's old "New session" along, which overrides the value Resume set, and the offer would then
record a new session."""
URL_KEY = "recording"
RESUME_WINDOW_S = 15 * 60
"""A reload offers to resume a session interrupted at most this long ago."""


def set_next_recording(title: str, resume_id: str | None) -> None:
    """What Start records next (called by the Record page on every run)."""
    st.session_state[NEXT_TITLE] = title
    st.session_state[NEXT_RESUME] = resume_id


def current_session_id() -> str | None:
    return st.session_state.get(CURRENT)


def show_session(session_id: str) -> None:
    """Make `session_id` the one the Record page shows (an upload, a resumed session)."""
    st.session_state[CURRENT] = session_id


def live_capture() -> capture.LiveCapture | None:
    """This browser's capture while it records, else None."""
    live = st.session_state.get(CAPTURE)
    return live if live is not None and live.end_status is None else None


def shared_recorder(slot: DeltaGenerator | None = None) -> None:
    """The recorder block, in `slot` (a sidebar container) or the sidebar; called by
    app.py on every page."""
    rt = runtime()
    registry = live_registry(rt.settings.max_live_sessions)
    with slot if slot is not None else st.sidebar:
        indicator = st.container()
        _widget(rt, registry)
        with indicator:
            _indicator(rt)


def _streamer_key() -> str:
    generation = st.session_state.get(STREAMER_GENERATION, 0)
    return f"{STREAMER_KEY}-{generation}" if generation else STREAMER_KEY


def _on_change() -> None:
    """Script thread (widget callback): the recorder's state changed; a stop by the
    user makes the capture end `stopped` rather than `interrupted`."""
    ctx = st.session_state[_streamer_key()]
    live = st.session_state.get(CAPTURE) or _registry().get(st.session_state.get(CURRENT) or "")
    if live is not None and not ctx.state.playing and not ctx.state.signalling:
        live.request_stop()
        st.session_state[CAPTURE] = None
        st.session_state[TITLE_WIDGET] = ""  # the next recording is another meeting


def _registry() -> capture.LiveRegistry:
    return live_registry(runtime().settings.max_live_sessions)


def _widget(rt: Runtime, registry: capture.LiveRegistry) -> None:
    """The WebRTC widget; remembers the capture it opened for this browser session."""
    config = chosen_settings()
    # The Record page's boxes hold this run's values while it is open (it draws them after
    # this runs); on other pages, what it last set.
    state = st.session_state
    title = state.get(TITLE_WIDGET, state.get(NEXT_TITLE)) or "Untitled recording"
    resume_id = state.get(RESUMING) or (state[RESUME_WIDGET] if RESUME_WIDGET in state else state.get(NEXT_RESUME))
    owner = principal()

    people = int(state.get(PEOPLE_WIDGET) or 0)

    def factory() -> capture.LiveCapture:  # process_offer thread: no st.* here
        live = registry.open(rt.storage, rt.pipeline, title=history.check_title(title),
                             policy=make_policy(config.chunk_policy, config.chunk_seconds),
                             resume_id=resume_id, partials=rt.partials, owner=owner)
        if people:  # before the first chunk settles, so live labels use it too
            rt.storage.set_expected_speakers(live.session_id, people)
        return live

    mine = st.session_state.get(CAPTURE)
    if registry.is_full() and (mine is None or mine.end_status is not None):
        st.error(f"This server is already recording {registry.count()} sessions, its limit "
                 f"(SCRIBE_MAX_LIVE_SESSIONS). Try again when one of them stops.")
        return
    idle = mine is None or mine.end_status is not None
    note_slot = st.empty()  # filled below, once it is known that this browser is not starting
    asked = st.session_state.get(AUTOSTART)
    recorder = st.session_state.get(_streamer_key())  # as the browser last reported it
    started = recorder is not None and (recorder.state.playing or recorder.state.signalling)
    autostart = asked is not None and time.time() - asked < AUTOSTART_S and not started
    if (error := st.session_state.get(START_ERROR)) is not None:
        st.error(f"Cannot start recording: {error}", icon=":material/error:")
    try:
        ctx = capture.mic_streamer(_streamer_key(), rt.settings, factory, on_change=_on_change,
                                   desired_playing_state=True if autostart else None)
    except ScribeError as exc:  # raised by the factory: limit reached, session busy or gone
        _refused(exc)
    if not autostart or ctx.state.signalling or ctx.state.playing:
        _forget_resume_start()  # the offer is in (its factory, above, has the choice), or none came in time
    processor = ctx.audio_processor
    # Between the offer and the first frame this browser's own capture is already counted:
    # warn only while it neither records nor signals.
    if idle and rt.partials is not None and not (ctx.state.playing or ctx.state.signalling):
        if note := live_words_note(rt.partials.load(), registry.count()):
            note_slot.warning(note)
    if ctx.state.playing or ctx.state.signalling:
        st.session_state.pop(START_ERROR, None)
    if ctx.state.playing and isinstance(processor, capture.LiveCapture):
        st.session_state[CAPTURE] = processor
        st.session_state[CURRENT] = processor.session_id
        if st.query_params.get(URL_KEY) != processor.session_id:
            st.query_params[URL_KEY] = processor.session_id


def _forget_resume_start() -> None:
    """Resume's start is over: Start and the Session box decide the next recording again."""
    st.session_state.pop(AUTOSTART, None)
    st.session_state.pop(RESUMING, None)


def _refused(exc: ScribeError) -> NoReturn:
    """The app refused a Start: say why, and give the browser a fresh recorder (the refused one
    would show Stop and wait for a connection that is never answered)."""
    st.session_state[START_ERROR] = str(exc)
    _forget_resume_start()  # the fresh recorder waits for Start instead of starting again
    st.session_state[STREAMER_GENERATION] = st.session_state.get(STREAMER_GENERATION, 0) + 1
    st.rerun()


def _indicator(rt: Runtime) -> None:
    """A red dot, the title and the clock while recording; a Resume offer after a reload."""
    live = live_capture()
    if live is not None:
        _recording_badge(rt, live)
    elif (session := _interrupted_by_reload(rt)) is not None:
        _resume_offer(session)


@st.fragment(run_every=1.0)
def _recording_badge(rt: Runtime, live: capture.LiveCapture) -> None:
    stats = live.stats()
    if stats.ended:
        st.caption("Recording ended.")
        return
    session = readable_session(live.session_id, rt)  # the row the Record page's fragments read too
    name = session.title if session else live.session_id
    if stats.frames == 0:  # the connection is up but no audio has arrived: speech now would be lost
        st.markdown(":orange[:material/hourglass_top: **Connecting to the microphone…**]")
        st.caption(f"{literal(name)} · start speaking when this says *Listening*")
        return
    st.markdown(f":red[:material/radio_button_checked: **Recording**] {mmss(int(stats.session_seconds * 1000))} "
                "· :green[**Listening**]")
    st.caption(literal(name))


def resume_offered() -> SessionRow | None:
    """The session the sidebar offers to resume after a reload, if any (the Record page
    explains the choice between it and a new recording)."""
    return _interrupted_by_reload(runtime())


def _interrupted_by_reload(rt: Runtime) -> SessionRow | None:
    """The session named in the URL, if it was cut off recently and nobody records it now."""
    wanted = st.query_params.get(URL_KEY)
    if not wanted:
        return None
    session = rt.storage.find_readable_session(wanted, principal())
    if session is None or not can_write(principal(), session) or session.status != "interrupted" \
            or session.source != "mic":
        return None
    if session.ended_at is not None and time.time() - session.ended_at > RESUME_WINDOW_S:
        return None
    if live_registry(rt.settings.max_live_sessions).get(session.id) is not None:
        return None
    return session


def _resume_offer(session: SessionRow) -> None:
    st.warning(f"The recording “{literal(session.title)}” stopped at {mmss(session.duration_ms)} when "
               "the page reloaded or lost its connection. Its audio so far is kept.",
               icon=":material/pause_circle:")
    left, right = st.columns(2)
    if left.button("Resume recording", type="primary", key="recorder_resume", icon=":material/mic:"):
        st.session_state[NEXT_RESUME] = session.id
        st.session_state[RESUME_WIDGET] = session.id
        st.session_state[RESUMING] = session.id
        st.session_state[NEXT_TITLE] = session.title
        st.session_state[CURRENT] = session.id
        st.session_state[AUTOSTART] = time.time()
        st.rerun()
    if right.button("Dismiss", key="recorder_dismiss"):
        del st.query_params[URL_KEY]
        st.rerun()
