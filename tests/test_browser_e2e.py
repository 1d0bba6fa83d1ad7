"""End to end in a real browser: headless Chromium's fake microphone plays espeak-ng
speech into the Record page over WebRTC; the app transcribes it with tiny.en.

Each test starts its own `streamlit run app.py` on a free port with its own data
folder, and reads DuckDB only after that process has stopped (one writer per file).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import speech
from fake_mic import CHROMIUM, chromium_args, write_wav_48k
from scribe_app import ScribeApp

from scribe.wer import word_error_rate

pytestmark = [pytest.mark.browser, pytest.mark.slow]

IFRAME = 'iframe[title="streamlit_webrtc.component.webrtc_streamer"]'
CHUNK_SECONDS = 5
LEAD_S = 2.0  # silence before speech: covers the ~1 s between getUserMedia and the first frame
CAPTURE_LOG = re.compile(r"session=(\S+) (stopped|interrupted) \((.+?)\): received ([\d.]+) s of audio "
                         r"over ([\d.]+) s wall in (\d+) frames, (\d+) chunks; (\d+) gaps, ([\d.]+) s missing")

if not Path(CHROMIUM).exists() or not speech.have_espeak():
    pytest.skip("needs /usr/bin/chromium and espeak-ng", allow_module_level=True)


@dataclass
class Mic:
    wav: Path
    meeting: speech.Meeting  # played after LEAD_S of silence

    @property
    def reference(self) -> str:
        return self.meeting.reference

    def begun_by(self, seconds: float) -> str:
        """The turns that had begun `seconds` into the WAV: what a recording that long heard."""
        return self.meeting.begun_by(seconds - LEAD_S)


@pytest.fixture(scope="module")
def mic(tmp_path_factory) -> Mic:
    """A 48 kHz 16-bit WAV for Chromium's fake microphone: 2 s silence, seven
    meeting turns (~33 s), then silence to 60 s (`%noloop` plays it once)."""
    meeting = speech.meeting(speech.MEETING_TURNS[:7])
    lead = np.zeros(int(LEAD_S * 16_000), np.float32)
    tail = np.zeros(max(0, 60 * 16_000 - lead.size - meeting.audio.size), np.float32)
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    write_wav_48k(np.concatenate([lead, meeting.audio, tail]), path)
    return Mic(path, meeting)


@pytest.fixture
def app(tmp_path):
    server = ScribeApp(tmp_path / "data", tmp_path / "app.log", stub=False,
                       SCRIBE_CHUNK_SECONDS=str(CHUNK_SECONDS), SCRIBE_MAX_UPLOAD_MB="1")
    yield server
    server.stop()


@pytest.fixture
def browser(mic):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(mic.wav))
        yield chromium
        chromium.close()


def _open(browser, app: ScribeApp):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(app.url)
    page.get_by_role("heading", name="Record").wait_for(timeout=60_000)
    return page


def _recorder_button(page, name: str):
    return page.frame_locator(IFRAME).get_by_role("button", name=name)


def _wait_status(page, status: str, timeout: float) -> None:
    """The page's Status metric reads `status` (the panel refreshes every second)."""
    page.get_by_test_id("stMetricValue").filter(has_text=re.compile(rf"^{status}$")).first.wait_for(
        timeout=timeout * 1000)


def _wait_idle(page, timeout: float = 30) -> None:
    """No script run in progress (a click during a rerun can be lost)."""
    page.wait_for_timeout(300)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=timeout * 1000)


def _page_transcript(page) -> str:
    # Elements a rerun has not redrawn yet stay on the page, faded and marked data-stale, until
    # it has; a reader looks past them, and so does the test (they would count lines twice).
    text = "\n".join(page.locator('[data-testid="stElementContainer"]:not([data-stale="true"]) '
                                  '[data-testid="stText"]').all_inner_texts())
    # The speaker label at a turn ("Speaker 2: ") is not transcript text.
    return " ".join(m.group(1) for m in re.finditer(r"^\[\d+:\d\d\] (?:Speaker \d+: )?(.*)$", text, re.MULTILINE))


def _page_wer(page, reference: str, bound: float, timeout: float = 15) -> tuple[float, str]:
    """WER of the page's transcript against `reference`, read until it is under `bound` or
    `timeout` runs out. The transcript fragment redraws every 0.25-1 s, so one read can land
    while every line is marked stale (on a loaded machine, many reads do)."""
    deadline = time.monotonic() + timeout
    while True:
        text = _page_transcript(page)
        wer = word_error_rate(reference, text)
        if wer < bound or time.monotonic() > deadline:
            return wer, text
        page.wait_for_timeout(250)


def _chunks(db) -> list[tuple]:
    return db.execute("SELECT session_id, seq, start_sample, end_sample, status FROM chunks "
                      "ORDER BY session_id, seq").fetchall()


def _assert_contiguous(chunks: list[tuple]) -> None:
    seqs = [c[1] for c in chunks]
    assert seqs == list(range(len(seqs))), f"seq has gaps or duplicates: {seqs}"
    for before, after in zip(chunks, chunks[1:]):
        assert after[2] == before[3], f"chunk {after[1]} starts at {after[2]}, previous ended at {before[3]}"


def test_live_recording_transcribes_what_the_microphone_heard(app, browser, mic, tmp_path):
    shots = Path(os.environ.get("SCRIBE_E2E_SCREENSHOTS", tmp_path))  # docs/img for the README
    page = _open(browser, app)
    page.get_by_label("Title").fill("Weekly planning")
    page.get_by_label("Title").press("Enter")
    _wait_idle(page)
    _recorder_button(page, "Start").click(timeout=60_000)
    started = time.monotonic()
    _wait_status(page, "recording", 30)
    time.sleep(max(0.0, 20 - (time.monotonic() - started)))
    page.screenshot(path=str(shots / "record-live-e2e.png"), full_page=True)  # README's: benchmarks/record_screenshot.py
    time.sleep(max(0.0, 40 - (time.monotonic() - started)))
    _recorder_button(page, "Stop").click()
    test_wall = time.monotonic() - started

    (_, status, _, received, wall, frames, n_chunks, gaps, missing), = [m.groups() for m in app.wait_log(CAPTURE_LOG, 30)]
    received, wall = float(received), float(wall)
    print(f"capture: received {received} s, wall {wall} s, {frames} frames, {gaps} gaps ({missing} s), "
          f"test wall {test_wall:.2f} s")
    # Every frame the browser sent arrived (no jump in RTP timestamps), and audio kept
    # pace with wall time (a starved machine's fake microphone can fall behind: see notes).
    assert int(gaps) == 0, f"{gaps} gaps, {missing} s of audio lost"
    assert abs(received - wall) / wall < 0.05, (received, wall)
    assert test_wall - 6 < received <= test_wall + 0.5, (received, test_wall)  # minus connection setup

    _wait_status(page, "done", 120)
    page.wait_for_timeout(1500)  # the chunk table's grid redraws a moment after the metrics
    page.screenshot(path=str(shots / "record-done.png"), full_page=True)
    page_wer, page_text = _page_wer(page, mic.reference, 0.3)
    print(f"WER on the page {page_wer:.3f}")
    assert page_wer < 0.3, page_text
    page.close()
    app.stop()

    with app.db() as db:
        session = db.execute("SELECT id, status, duration_ms, source FROM sessions").fetchall()
        db_title = db.execute("SELECT title FROM sessions").fetchall()
        chunks = _chunks(db)
        text = " ".join(r[0] for r in db.execute(
            "SELECT text FROM segments WHERE transcript = 'live' ORDER BY seq, idx").fetchall())
    assert [(s[1], s[3]) for s in session] == [("done", "mic")]
    assert db_title == [("Weekly planning",)]
    assert len(chunks) == int(n_chunks) and all(c[4] == "done" for c in chunks)
    _assert_contiguous(chunks)
    stored_s = chunks[-1][3] / 16_000
    assert abs(stored_s - received) < 0.1, (stored_s, received)  # everything received was stored
    db_wer = word_error_rate(mic.reference, text)
    print(f"WER in DuckDB {db_wer:.3f}, {len(chunks)} chunks, {stored_s:.2f} s stored")
    assert db_wer < 0.3, text


def test_closed_page_keeps_its_audio_and_the_session_resumes(app, browser, mic):
    page = _open(browser, app)
    _wait_idle(page)  # the first run done: a click during it can be lost
    _recorder_button(page, "Start").click(timeout=60_000)
    _wait_status(page, "recording", 30)
    time.sleep(14)
    page.close()  # the tab goes away mid-recording: no Stop
    (first,) = app.wait_log(CAPTURE_LOG, 40)
    session_id, status, _, received, *_ = first.groups()
    assert status == "interrupted"

    page = _open(browser, app)
    page.get_by_test_id("stSelectbox").filter(has_text="Session").click()
    option = page.get_by_role("option", name=re.compile(r"^Continue "))
    option.click(timeout=30_000)
    _wait_idle(page, 60)  # choosing the session redraws the recorder; Start is clicked in the new one
    _recorder_button(page, "Start").click(timeout=60_000)
    _wait_status(page, "recording", 30)
    time.sleep(8)
    _recorder_button(page, "Stop").click()
    second = app.wait_log(CAPTURE_LOG, 30, count=2)[1]
    assert second.group(1) == session_id
    _wait_status(page, "done", 120)
    page.close()
    app.stop()

    with app.db() as db:
        sessions = db.execute("SELECT id, status FROM sessions").fetchall()
        chunks = _chunks(db)
        spoken = db.execute("SELECT count(DISTINCT seq) FROM segments WHERE session_id = ?",
                            [session_id]).fetchone()[0]
    assert sessions == [(session_id, "done")]  # resumed into the same session
    assert all(c[4] == "done" for c in chunks), chunks  # every received chunk was transcribed
    _assert_contiguous(chunks)
    first_part = float(received)
    assert any(abs(c[3] / 16_000 - first_part) < 0.1 for c in chunks), "resume did not continue the session time"
    assert spoken >= 3


def test_upload_goes_through_the_pipeline_and_bad_files_are_refused(app, browser, tmp_path):
    good = speech.write_wav(speech.synthesize(speech.MEETING_TURNS[1]), tmp_path / "budget.wav")
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio\n" * 100)
    big = speech.write_wav(np.zeros(40 * 16_000, np.float32), tmp_path / "long.wav")  # 1.2 MB > 1 MB
    page = _open(browser, app)
    page.get_by_role("tab", name="Upload a file").click()
    upload = page.locator("input[type=file]")

    def choose(path: Path) -> None:
        upload.set_input_files(str(path))
        page.get_by_test_id("stFileUploader").get_by_text(path.name).wait_for(timeout=30_000)
        _wait_idle(page)

    for path, message in ((bad, "Cannot transcribe notes.wav: not a readable audio file. Check that it plays"),
                          (big, "Cannot use long.wav: file is 1 MB; the limit is 1 MB")):
        choose(path)
        page.get_by_role("button", name="Transcribe file").click()
        page.get_by_text(message).wait_for(timeout=30_000)

    choose(good)
    page.get_by_role("button", name="Transcribe file").click()
    _wait_status(page, "done", 90)
    page_wer, page_text = _page_wer(page, speech.MEETING_TURNS[1], 0.3)
    assert page_wer < 0.3, page_text
    page.close()
    app.stop()
    with app.db() as db:
        sessions = db.execute("SELECT title, source, status FROM sessions").fetchall()
    assert sessions == [("budget", "upload", "done")]  # the refused files left nothing behind


def test_a_deep_link_as_the_first_request_still_gets_the_apps_navigation(app, browser):
    """The first request after a start opens /sessions directly: the page must come with
    app.py's navigation and sidebar, not Streamlit's pages/ folder listing."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app.url + "/sessions")
    page.get_by_role("heading", name="Sessions").wait_for(timeout=60_000)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Chunking lab").wait_for(timeout=30_000)
    assert sidebar.get_by_text("Settings").is_visible()
    assert sidebar.get_by_text("shared", exact=True).count() == 0  # no pages/_shared.py entry


PAGES = ("Sessions", "Summary", "Analytics", "Chunking lab", "Record")


def _sidebar_recording(page, timeout: float = 30) -> None:
    """The sidebar's indicator says a recording is running (it is on every page)."""
    page.locator('[data-testid="stSidebar"]').get_by_text("Recording", exact=True).first.wait_for(
        timeout=timeout * 1000)


def test_recording_goes_on_while_visiting_every_page(app, browser, mic, tmp_path):
    shots = Path(os.environ.get("SCRIBE_E2E_SCREENSHOTS", tmp_path))
    page = _open(browser, app)
    page.get_by_label("Title").fill("Walk through the pages")
    page.get_by_label("Title").press("Enter")
    _wait_idle(page)
    _recorder_button(page, "Start").click(timeout=60_000)
    started = time.monotonic()
    _wait_status(page, "recording", 30)
    page.wait_for_timeout(3000)  # past the WebRTC handshake
    for name in PAGES:
        page.locator('[data-testid="stSidebarNav"]').get_by_text(name, exact=True).click()
        page.get_by_role("heading", name=name).first.wait_for(timeout=60_000)
        _sidebar_recording(page)
        page.wait_for_timeout(2500)
        _recorder_button(page, "Stop").wait_for(timeout=10_000)
        if name == "Sessions":
            page.screenshot(path=str(shots / "recording-while-browsing.png"))
    _wait_status(page, "recording", 30)  # back on Record, still the same recording
    time.sleep(max(0.0, 30 - (time.monotonic() - started)))
    _recorder_button(page, "Stop").click()
    test_wall = time.monotonic() - started
    captures = app.wait_log(CAPTURE_LOG, 30)
    (_, status, _, received, wall, _, n_chunks, gaps, _), = [m.groups() for m in captures]
    assert status == "stopped" and int(gaps) == 0  # one capture to the end, no packet lost
    # Frames kept arriving for the whole walk (on a starved machine the fake microphone may
    # deliver less audio than wall time, but never stop).
    assert test_wall - 6 < float(wall) <= test_wall + 0.5, (wall, test_wall)
    _wait_status(page, "done", 120)
    page.close()
    app.stop()
    assert len(CAPTURE_LOG.findall(app.log())) == 1  # one capture: nothing ended it early
    with app.db() as db:
        sessions = db.execute("SELECT title, status FROM sessions").fetchall()
        chunks = _chunks(db)
        text = " ".join(r[0] for r in db.execute(  # the live lane's text (a final pass may follow)
            "SELECT text FROM segments WHERE transcript = 'live' ORDER BY seq, idx").fetchall())
    assert sessions == [("Walk through the pages", "done")]
    assert len(chunks) == int(n_chunks) and all(c[4] == "done" for c in chunks)
    _assert_contiguous(chunks)
    assert abs(chunks[-1][3] / 16_000 - float(received)) < 0.1
    heard = mic.begun_by(float(received))  # ~30 s, longer when a busy machine slowed the walk
    assert word_error_rate(heard, text) < 0.45, text


def test_a_reload_offers_to_resume_the_same_session_in_one_click(app, browser, mic):
    page = _open(browser, app)
    _wait_idle(page)  # the first run done: a click during it can be lost
    _recorder_button(page, "Start").click(timeout=60_000)
    _wait_status(page, "recording", 30)
    time.sleep(8)
    page.reload()
    (first,) = app.wait_log(CAPTURE_LOG, 40)
    session_id, status, _, received, *_ = first.groups()
    assert status == "interrupted"
    resume = page.get_by_role("button", name="Resume recording")
    resume.click(timeout=60_000)
    _wait_status(page, "recording", 60)
    time.sleep(6)
    _recorder_button(page, "Stop").click()
    second = app.wait_log(CAPTURE_LOG, 30, count=2)[1]
    assert second.group(1) == session_id and second.group(2) == "stopped"
    _wait_status(page, "done", 120)
    page.close()
    app.stop()
    with app.db() as db:
        sessions = db.execute("SELECT id, status FROM sessions").fetchall()
        chunks = _chunks(db)
    assert sessions == [(session_id, "done")]
    _assert_contiguous(chunks)
    assert any(abs(c[3] / 16_000 - float(received)) < 0.1 for c in chunks)
