"""The Record page under AppTest, with `webrtc_streamer` replaced (it needs a live server)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import streamlit as st
import streamlit_webrtc
from pagekit import markup_values as pagekit_values
from streamlit.testing.v1 import AppTest

from pages._live_text import STORED
from pages._text import literal
from scribe.core import ChunkRow, SegmentRow
from scribe.pipeline import Pipeline, PipelineStats
from scribe.storage import Storage

ROOT = Path(__file__).resolve().parent.parent


class FakeStreamer:
    """Stands in for `webrtc_streamer`: records its arguments; with `start=True` it
    behaves as if the browser's offer arrived (calls the processor factory)."""

    def __init__(self, start: bool = False, answered: bool = True) -> None:
        self.calls: list[dict] = []
        self.start = start
        self.answered = answered  # False: the offer is in, no frame yet (the widget signals)
        self.stop = False
        self.processor = None

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        if self.stop and self.processor is not None:  # the user pressed Stop: the widget's callback
            self.stop, self.processor = False, None
            st.session_state[kwargs["key"]] = SimpleNamespace(state=SimpleNamespace(playing=False, signalling=False))
            kwargs["on_change"]()
        if self.start and self.processor is None:
            self.start = False  # one press of Start is one offer, answered or refused
            self.processor = kwargs["audio_processor_factory"]()
        playing = self.processor is not None and self.answered
        signalling = self.processor is not None and not self.answered
        return SimpleNamespace(state=SimpleNamespace(playing=playing, signalling=signalling),
                               audio_processor=self.processor)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SCRIBE_BACKEND", "stub")
    monkeypatch.setenv("SCRIBE_CHUNK_SECONDS", "5")
    monkeypatch.delenv("SCRIBE_DB", raising=False)
    st.cache_resource.clear()
    yield tmp_path / "data"
    st.cache_resource.clear()


def streamer(monkeypatch, **kwargs) -> FakeStreamer:

    fake = FakeStreamer(**kwargs)
    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", fake)  # mic_streamer imports it when called
    return fake


FRAME = f"""
import runpy
from pages._recorder import shared_recorder
shared_recorder()
runpy.run_path({str(ROOT / 'pages' / 'record.py')!r}, run_name="__main__")
"""
"""app.py's frame around the Record page: the shared recorder in the sidebar, then the page.
(AppTest re-runs only the page of an st.navigation app, so the frame is spelled out.)"""


def run_page(path: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=60) if path else \
        AppTest.from_string(FRAME, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_recorder_is_send_only_audio_only_with_raw_microphone(env, monkeypatch):
    fake = streamer(monkeypatch)
    at = run_page()
    assert at.title[0].value == "Record"
    (call,) = fake.calls
    assert call["mode"].name == "SENDONLY"
    assert call["media_stream_constraints"] == {
        "audio": {"echoCancellation": False, "noiseSuppression": False, "autoGainControl": False},
        "video": False}
    assert call["rtc_configuration"] == {"iceServers": []}
    assert call["async_processing"] is True and callable(call["audio_processor_factory"])
    assert "Press **Start**" in at.info[0].value


def test_started_recording_shows_its_session_and_plain_text_transcript(env, monkeypatch):
    fake = streamer(monkeypatch)
    at = run_page()
    fake.start = True  # the user typed a title, then pressed Start
    at.text_input(key="record_title").set_value("Board **meeting**").run()
    capture = fake.processor
    assert capture is not None and not at.exception
    storage: Storage = capture.storage
    assert storage.get_session(capture.session_id).title == "Board **meeting**"
    hostile = "**bold** <b>html</b> [link](http://x)"
    # The page reads stored lines again at once when the pipeline's count of stored chunks
    # moves; this test stores its line itself, past the pipeline, so no read may be reused.
    monkeypatch.setattr(STORED, "max_age_s", 0.0)
    storage.insert_chunk(ChunkRow(capture.session_id, 0, 0, 900, 0, 14_400, "/x/0.flac", "pending"))
    storage.save_segments(capture.session_id, 0, [SegmentRow(capture.session_id, 0, 0, 0, 900, hostile)],
                          finished_at=0.0)
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] == "recording"
    assert [t.value for t in at.text] == [f"[00:00] {hostile}"]  # st.text: never Markdown or HTML
    assert not any(hostile in md.value for md in at.markdown)
    assert at.subheader[0].value == literal("Board **meeting**")  # shown as typed
    capture.request_stop()
    capture.on_ended()


def test_full_server_refuses_a_new_recording_clearly(env, monkeypatch):
    monkeypatch.setenv("SCRIBE_MAX_LIVE_SESSIONS", "1")
    first = streamer(monkeypatch, start=True)
    run_page()
    second = streamer(monkeypatch)
    at = run_page()  # a second browser: a fresh AppTest session
    assert second.calls == []
    assert "SCRIBE_MAX_LIVE_SESSIONS" in at.error[0].value
    first.processor.on_ended()


def test_past_the_live_words_capacity_the_page_says_before_start_that_live_words_will_lag(env, monkeypatch):
    """The partial lane's capacity (fixed here at one session): a second browser still gets
    Start (it records and transcribes), with a warning above it; the first got none."""
    monkeypatch.setenv("SCRIBE_PARTIAL_MODEL", "tiny.en")
    monkeypatch.setenv("SCRIBE_PARTIAL_CAPACITY", "1")
    first = streamer(monkeypatch, start=True)
    at = run_page()
    assert not any("live words will lag" in w.value for w in at.warning)
    second = streamer(monkeypatch)
    at = run_page()  # a second browser while the first records
    assert second.calls, "Start is still offered"
    (note,) = [w.value for w in at.warning if "live words will lag" in w.value]
    assert "recording 1 session(s)" in note and "about 1 at once" in note
    first.processor.on_ended()


def test_a_browser_starting_its_own_recording_is_not_warned_about_it(env, monkeypatch):
    """Between the offer and the first frame this browser's capture is already live: the lag
    warning (capacity one) must not count it as someone else's."""
    monkeypatch.setenv("SCRIBE_PARTIAL_MODEL", "tiny.en")
    monkeypatch.setenv("SCRIBE_PARTIAL_CAPACITY", "1")
    starting = streamer(monkeypatch, start=True, answered=False)
    at = run_page()
    at.run()  # a rerun while the widget still signals
    assert starting.processor is not None
    assert not any("live words will lag" in w.value for w in at.warning)
    starting.processor.on_ended()


def test_backlog_above_the_setting_warns(env, monkeypatch):
    fake = streamer(monkeypatch, start=True)
    monkeypatch.setenv("SCRIBE_BACKLOG_WARN_SECONDS", "60")
    monkeypatch.setattr(Pipeline, "stats", lambda self: PipelineStats(
        queued=30, in_flight=1, intake=0, processed=0, failed=0, retried=0, audio_seconds_done=0.0,
        audio_seconds_waiting=420.0, intake_audio_seconds=30.0))
    at = run_page()
    assert "7 min 30 s of audio waiting" in at.warning[0].value
    depth = next(m for m in at.metric if m.label == "Waiting on this server")
    assert depth.value == "31 chunks" and "450 s of audio waiting" in depth.proto.help
    fake.processor.on_ended()


def _sidebar_script():
    import streamlit as st

    from pages._shared import chosen_settings, sidebar

    sidebar()
    chosen = chosen_settings()
    st.write(f"{chosen.backend} {chosen.chunk_policy}:{chosen.chunk_seconds:g} {chosen.db}")


def sidebar_app() -> AppTest:
    at = AppTest.from_function(_sidebar_script, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_app_renders_the_sidebar_and_the_record_page(env, monkeypatch):
    streamer(monkeypatch)
    at = run_page("app.py")
    assert at.sidebar.selectbox(key="sb_backend").value == "stub"
    assert at.title[0].value == "Record"


def test_sidebar_choices_become_the_chosen_settings(env, tmp_path):
    at = sidebar_app()
    assert at.markdown[0].value == f"stub pause:5 {env / 'scribe.duckdb'}"
    at.sidebar.number_input(key="sb_chunk_seconds").set_value(7.0)
    at.sidebar.selectbox(key="sb_chunk_policy").set_value("fixed")
    at.run()
    # The data folder comes from the environment only: no visitor can point the server elsewhere.
    assert at.markdown[0].value == f"stub fixed:7 {env / 'scribe.duckdb'}"
    assert [t.label for t in at.sidebar.text_input] == ["Model"]


def test_bad_sidebar_value_is_reported_not_applied(env):
    at = sidebar_app()
    at.sidebar.selectbox(key="sb_backend").set_value("gemini").run()  # no GEMINI_API_KEY
    assert "GEMINI_API_KEY" in at.sidebar.error[0].value
    assert at.markdown[0].value.startswith("stub ")


def _showing(session_id: str) -> AppTest:
    at = AppTest.from_string(FRAME, default_timeout=60)
    at.session_state["record_session"] = session_id
    at.run()
    assert not at.exception, at.exception
    return at


def _storage(env) -> Storage:
    from pages._shared import _storage as shared

    return shared(str(env / "scribe.duckdb"))


def test_redraws_with_nothing_new_read_no_rows_and_a_stored_chunk_shows_at_the_next_redraw(env, monkeypatch):
    """While a session records, its stored lines and chunk rows are read (and the transcript's
    text built) again only when the pipeline's marks move: redraws seconds apart with nothing
    new make no database read and build no text, and a chunk the pipeline stores shows at the
    very next redraw."""
    import time

    from test_capture import frames

    import pages._shared
    import scribe.record_view

    monkeypatch.setenv("SCRIBE_SKIP_SILENCE", "false")  # the test's tone is transcribed, not checked for speech
    fake = streamer(monkeypatch)
    at = run_page()
    fake.start = True
    at.text_input(key="record_title").set_value("Standup").run()
    capture = fake.processor
    storage, pipeline = capture.storage, capture.pipeline
    now = [time.monotonic() + 100.0]  # past every earlier read: the next redraw reads, at this clock
    for shared in (STORED, pages._shared.CHUNK_ROWS):
        monkeypatch.setattr(shared, "_clock", lambda: now[0])
    reads: list[str] = []
    for name in ("list_segments", "list_chunks"):
        def counted(*args, _real=getattr(storage, name), _name=name, **kwargs):
            reads.append(_name)
            return _real(*args, **kwargs)
        monkeypatch.setattr(storage, name, counted)
    monkeypatch.setattr(scribe.record_view, "transcript_lines", lambda segments, _real=scribe.record_view.transcript_lines:
                        reads.append("text built") or _real(segments))
    at.run()
    reads.clear()
    for _ in range(3):  # redraws 1.5 s apart for 4.5 s: nothing changed, nothing read
        now[0] += 1.5
        at.run()
        assert not at.exception, at.exception
    assert reads == []
    capture.take(frames(12.0))  # past the 5 s chunk length: a chunk closes and is transcribed
    deadline = time.monotonic() + 60
    while pipeline.stats().processed == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    at.run()  # the clock did not move: the pipeline's mark alone brings the new line
    assert any("stub audio of" in t.value for t in at.text), [t.value for t in at.text]
    assert "list_segments" in reads and "list_chunks" in reads and "text built" in reads
    capture.request_stop()
    capture.on_ended()


def test_a_recording_with_nothing_said_says_no_speech(env, monkeypatch):
    from scribe.core import ChunkRow

    streamer(monkeypatch)
    run_page()  # builds the runtime and its storage
    storage = _storage(env)
    session = storage.create_session(title="Quiet", source="mic", backend="stub", model="m",
                                     chunk_seconds=5, chunk_policy="pause")
    storage.insert_chunk(ChunkRow(session.id, 0, 0, 1500, 0, 24_000, "a.flac", "pending", captured_at=1.0))
    storage.save_silent_chunk(session.id, 0, finished_at=2.0)
    storage.end_session(session.id, "stopped")
    storage.mark_done_if_drained(session.id)
    at = _showing(session.id)
    assert {m.label: m.value for m in at.metric}["Status"] == "no speech"
    assert [t.value for t in at.text] == ["No speech was heard in this recording."]


def test_an_upload_in_progress_shows_chunks_done_of_total_and_no_latency_yet(env, monkeypatch):
    from scribe.core import ChunkRow

    streamer(monkeypatch)
    run_page()
    storage = _storage(env)
    session = storage.create_session(title="Upload", source="upload", backend="stub", model="m",
                                     chunk_seconds=5, chunk_policy="pause", status="stopped")
    for seq in range(3):  # claimed by nobody: the test's pipeline never sees these rows
        storage.insert_chunk(ChunkRow(session.id, seq, seq * 5000, (seq + 1) * 5000, seq * 80_000,
                                      (seq + 1) * 80_000, "missing.flac", "pending", captured_at=1.0))
    storage.update_session(session.id, duration_ms=15_000)
    at = _showing(session.id)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] == "transcribing" and metrics["Length"] == "00:15"
    assert metrics["Chunks done"] == "0/3"
    assert at.get("progress")[0].proto.text == "Transcribed 0 of 3 chunks"
    assert list(at.dataframe[0].value["text after"]) == ["not yet"] * 3  # words, never a raw None


def test_people_in_the_meeting_is_stored_on_the_recorded_session(env, monkeypatch):
    fake = streamer(monkeypatch)
    at = run_page()
    assert at.number_input(key="record_people").value == 0  # optional: 0 means "estimate"
    at.number_input(key="record_people").set_value(3).run()
    fake.start = True  # then the user pressed Start
    at.text_input(key="record_title").set_value("Three of us").run()
    capture = fake.processor
    assert capture is not None and not at.exception
    assert capture.storage.diarization_state(capture.session_id)["expected_speakers"] == 3
    capture.request_stop()
    capture.on_ended()


def _mic_session(storage: Storage, title: str) -> str:
    return storage.create_session(title=title, source="mic", backend="stub", model="m",
                                  chunk_seconds=5, chunk_policy="pause").id


def _pick_as_the_browser_does(monkeypatch, box, session_id: str | None) -> None:
    """The browser sends the label it shows, from the options of the run that drew them, and
    sends that same label again on every later run until the box is redrawn with other
    options; AppTest would format the value anew with the latest run's labels.
    `session_id` None: the browser shows "New session"."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState
    from streamlit.testing.v1.element_tree import Selectbox

    (label,) = [option for option in box.options if session_id in option] if session_id else [box.options[0]]
    widget_id, formatted = box.id, Selectbox._widget_state

    def shown(self) -> WidgetState:
        return WidgetState(id=self.id, string_value=label) if self.id == widget_id else formatted.fget(self)

    monkeypatch.setattr(Selectbox, "_widget_state", property(shown))


def test_continue_picked_before_the_session_settles_records_into_it(env, monkeypatch):
    """Picked from options drawn a moment before Stop settled the session (stopped, then done)."""
    fake = streamer(monkeypatch)
    run_page()
    storage = _storage(env)
    session_id = _mic_session(storage, "Resume repro")  # just stopped: still marked recording, 00:00
    at = run_page()
    storage.end_session(session_id, "stopped")
    storage.update_session(session_id, status="done", duration_ms=90_000)
    _pick_as_the_browser_does(monkeypatch, at.selectbox(key="record_resume"), session_id)
    at.run()
    fake.start = True  # the user presses Start
    at.run()
    assert not at.error, [e.value for e in at.error]
    assert fake.processor is not None and fake.processor.session_id == session_id
    assert storage.get_session(session_id).status == "recording"
    fake.processor.request_stop()
    fake.processor.on_ended()


def test_a_refused_start_says_why_and_leaves_a_fresh_recorder(env, monkeypatch):
    fake = streamer(monkeypatch)
    run_page()
    storage = _storage(env)
    session_id = _mic_session(storage, "Gone soon")
    storage.end_session(session_id, "stopped")
    at = run_page()
    at.selectbox(key="record_resume").set_value(session_id).run()
    storage.delete_session(session_id)  # deleted elsewhere (the Sessions page, the API)
    fake.start = True
    at.run()
    assert not at.exception, at.exception
    (error,) = [e.value for e in at.error]
    assert error.startswith("Cannot start recording") and session_id in error
    assert "STUN" not in " ".join(pagekit_values(at))
    keys = [call["key"] for call in fake.calls]
    assert keys[-1] != keys[0]  # the browser gets a fresh, idle recorder (Start, not Stop)
    assert at.selectbox(key="record_resume").value is None  # the next Start records a new session
    fake.start = True
    at.run()
    assert fake.processor is not None and fake.processor.session_id != session_id
    at.run()
    assert not at.error
    fake.processor.request_stop()
    fake.processor.on_ended()


def test_a_title_over_the_limit_is_refused_with_the_reason(env, monkeypatch):
    fake = streamer(monkeypatch)
    at = run_page()
    at.text_input(key="record_title").set_value("x" * 250).run()
    assert any("at most 200 characters; this one has 250" in e.value for e in at.error)
    fake.start = True
    at.run()
    assert fake.processor is None  # nothing recorded under a cut title
    assert any(e.value.startswith("Cannot start recording: a session title is at most 200") for e in at.error)
    assert _storage(env).list_sessions() == []


def test_stop_clears_the_title_for_the_next_recording(env, monkeypatch):
    fake = streamer(monkeypatch)
    at = run_page()
    fake.start = True
    at.text_input(key="record_title").set_value("Board meeting").run()
    capture = fake.processor
    assert _storage(env).get_session(capture.session_id).title == "Board meeting"
    fake.stop = True
    at.run()
    capture.on_ended()
    assert capture.end_status == "stopped"
    at.run()
    assert at.text_input(key="record_title").value == ""


def _reloaded_after_a_cut(env) -> tuple[AppTest, str]:
    """The page after a reload that cut off a microphone session (its id in the URL)."""
    run_page()
    storage = _storage(env)
    session_id = _mic_session(storage, "Cut off")
    storage.end_session(session_id, "interrupted")
    at = AppTest.from_string(FRAME, default_timeout=60)
    at.query_params["recording"] = session_id
    at.run()
    return at, session_id


def test_after_a_reload_the_page_explains_resume_against_start(env, monkeypatch):
    streamer(monkeypatch)
    at, _ = _reloaded_after_a_cut(env)
    assert not at.exception, at.exception
    assert any(b.label == "Resume recording" for b in at.sidebar.button)
    captions = [c.value for c in at.caption]
    assert any("**Resume recording** in the sidebar continues it" in c and "new session instead" in c
               for c in captions), captions


def test_resume_records_into_the_cut_off_session_when_the_browser_still_reports_new_session(env, monkeypatch):
    """Resume sets the Session box and asks the browser to start the microphone. On a busy
    machine the browser asks for reruns (before and with its offer) before it has drawn the box's
    new value, so they bring the box's old "New session" along, and it may draw a later run's
    recorder before acting on the one that asked. The offer must continue the cut-off session."""
    fake = streamer(monkeypatch)
    at, session_id = _reloaded_after_a_cut(env)
    storage = _storage(env)
    box = at.selectbox(key="record_resume")
    assert box.value is None
    _pick_as_the_browser_does(monkeypatch, box, None)  # what the browser shows before Resume
    at.button(key="recorder_resume").click().run()
    at.run()  # a rerun the browser asks for before its offer
    assert fake.processor is None
    assert fake.calls[-1]["desired_playing_state"] is True  # still asks: the browser may not have acted yet
    fake.start = True  # the autostarted microphone's offer arrives
    at.run()
    assert not at.exception, at.exception
    assert fake.processor is not None and fake.processor.session_id == session_id
    assert [s.id for s in storage.list_sessions()] == [session_id]
    at.run()
    assert fake.calls[-1]["desired_playing_state"] is None  # started: a later Stop stays stopped
    fake.processor.request_stop()
    fake.processor.on_ended()


def test_the_record_page_speaks_plain_words(env, monkeypatch):
    """No setting values, queue jargon or frame counts where people record."""
    fake = streamer(monkeypatch, start=True)
    at = run_page()
    shown = " ".join([c.value for c in at.caption] + [m.label for m in at.metric])
    assert "Transcribed by the test stand-in" in shown and "cut at a pause near every 5 s" in shown
    for jargon in ("Backend `", "model `", "pause:5", "Queue depth", "frames"):
        assert jargon not in shown, jargon
    fake.processor.on_ended()


def test_the_sidebar_says_listening_only_once_audio_arrives(env, monkeypatch):
    """Speech before the first frame is lost (the connection is still being set up), so the
    recorder says when it hears audio."""
    from test_capture import frames

    fake = streamer(monkeypatch, start=True)
    at = run_page()
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    assert "Connecting to the microphone" in sidebar and "Listening" not in sidebar
    fake.processor.take(frames(0.5))
    at.run()
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    assert "**Listening**" in sidebar and "Connecting" not in sidebar
    fake.processor.on_ended()


def _stream_from_a_tool(owner, text: str):
    """A session a tool streams into the realtime socket: a capture of source `realtime` in the
    process's live registry (what `scribe.realtime` opens), with one chunk's text stored."""
    from test_capture import frames

    from pages._shared import live_registry, runtime
    from scribe.chunking import make_policy

    rt = runtime()
    registry = live_registry(rt.settings.max_live_sessions)
    capture = registry.open(rt.storage, rt.pipeline, title=f"Dictation of {owner.user_id}",
                            policy=make_policy("fixed", 5), source="realtime", partials=rt.partials, owner=owner)
    capture.take(frames(0.5))
    sid = capture.session_id
    rt.storage.insert_chunk(ChunkRow(sid, 0, 0, 900, 0, 14_400, "/x/0.flac", "pending"))
    rt.storage.save_segments(sid, 0, [SegmentRow(sid, 0, 0, 0, 900, text)], finished_at=0.0)
    return capture


def _watchable(at: AppTest) -> list[str]:
    boxes = [b for b in at.selectbox if b.key == "api_live_session"]
    return [o for o in boxes[0].options if o != "Choose a session"] if boxes else []


def test_a_session_streamed_from_a_tool_is_watched_on_the_record_page(env, monkeypatch):
    from scribe.identity import LOCAL

    streamer(monkeypatch)
    run_page()  # the runtime and the live registry exist from here on
    capture = _stream_from_a_tool(LOCAL, "the tool dictated this line")
    at = run_page()
    (label,) = _watchable(at)
    assert capture.session_id in label and "Dictation of local" in label
    at.selectbox(key="api_live_session").set_value(capture.session_id).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.text] == ["[00:00] the tool dictated this line"]
    assert {m.label: m.value for m in at.metric}["Status"] == "recording"
    assert at.subheader[0].value == literal("Dictation of local")
    capture.request_stop()
    capture.on_ended()
    at.run()  # ended: no longer offered, the transcript stays in view
    assert not _watchable(at) and [t.value for t in at.text] == ["[00:00] the tool dictated this line"]


def test_in_team_mode_only_the_owner_sees_their_tools_live_session(env, monkeypatch):
    import pages._shared
    from scribe.identity import Principal

    alice = Principal("issuer|alice", email="alice@example.com", signed_in=True)
    bob = Principal("issuer|bob", email="bob@example.com", signed_in=True)
    streamer(monkeypatch)
    run_page()
    capture = _stream_from_a_tool(alice, "alice's private words")
    try:
        monkeypatch.setattr(pages._shared, "principal", lambda: bob)
        at = run_page()
        assert not _watchable(at)
        assert "alice's private words" not in " ".join(t.value for t in at.text)
        monkeypatch.setattr(pages._shared, "principal", lambda: alice)
        at = run_page()
        (label,) = _watchable(at)
        assert capture.session_id in label
    finally:
        capture.request_stop()
        capture.on_ended()


def test_sign_in_is_looked_up_once_when_there_is_no_secrets_file(monkeypatch):
    """Every fragment run asks whether sign-in is on; without a secrets file Streamlit would
    search for one on each question. A secrets object that has `[auth]` is asked as before."""
    from streamlit.runtime.secrets import Secrets

    from pages._shared import sign_in_configured

    class NoFile(Secrets):
        asked = 0

        def _parse(self):
            NoFile.asked += 1
            raise FileNotFoundError("no secrets.toml")

    class WithAuth(Secrets):
        def _parse(self):
            return {"auth": {"redirect_uri": "http://127.0.0.1/oauth2callback"}}

    monkeypatch.setattr(st, "secrets", NoFile())
    assert [sign_in_configured() for _ in range(3)] == [False, False, False]
    assert NoFile.asked == 1
    monkeypatch.setattr(st, "secrets", WithAuth())  # another secrets object (AppTest puts its own in place)
    assert sign_in_configured()
