"""A user's walk through the stored-session pages in a real browser: read a transcript,
play from a line, see and undo a correction, read the analytics. With
SCRIBE_E2E_SCREENSHOTS=docs/img it also refreshes the README's screenshots."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fake_mic import CHROMIUM
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from scribe_app import ScribeApp
from seed_sessions import seed_session
from test_analytics_page import _seed as seed_timings

from scribe.config import Settings
from scribe.storage import Storage
from scribe.summaries import summarize_session

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MEETING = [("Alice", "Good morning everyone, thanks for joining the weekly planning meeting."),
           ("Bob", "The budget for the finance department is approved for the next quarter."),
           ("Carol", "We agreed to move the product launch to the end of March."),
           ("Bob", "I will send the updated spreadsheet to the engineers by Friday."),
           (None, "Next topic is the office move, which is planned for April.")]


def _seed(data_dir: Path) -> str:
    settings = Settings.from_env({}, data_dir=data_dir)
    storage = Storage(settings.db)
    try:
        session = seed_session(storage, settings.audio_dir, MEETING, title="Weekly planning",
                               created_at=time.time() - 300)
        storage.edit_segment(session.id, "live", 1, 0, "The budget for the finance department is approved "
                                                       "for Q3.")
        summarize_session(storage, settings, session.id)
    finally:
        storage.close()
    seed_timings(settings.db)
    return session.id


def test_a_transcript_reads_as_lines_plays_from_a_line_and_undoes_a_correction(tmp_path):
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("SCRIBE_E2E_SCREENSHOTS", tmp_path))
    session_id = _seed(tmp_path / "data")
    app = ScribeApp(tmp_path / "data", tmp_path / "app.log")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox",
                                                                          "--autoplay-policy=no-user-gesture-required"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app.url + f"/sessions?session={session_id}")
            main = page.get_by_test_id("stMain")
            main.get_by_text("approved for Q3.").wait_for(timeout=60_000)  # the corrected line, in full
            assert main.get_by_text("Edited · the machine heard:").count() == 1
            _play_from(page, main.get_by_role("button", name="[00:10]"))  # Carol's line starts at 00:10.2
            page.wait_for_timeout(800)
            page.screenshot(path=str(shots / "session-transcript.png"))
            main.get_by_role("button", name="Undo").click()
            main.get_by_text("approved for the next quarter.").wait_for(timeout=30_000)
            main.get_by_text("Edited · the machine heard:").wait_for(state="detached", timeout=30_000)

            page.goto(app.url + "/analytics")
            page.get_by_role("heading", name="Analytics").wait_for(timeout=60_000)
            page.get_by_test_id("stPlotlyChart").first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(shots / "analytics-latency.png"))
            charts = page.get_by_test_id("stPlotlyChart")
            charts.nth(1).scroll_into_view_if_needed()
            page.wait_for_timeout(800)
            charts.nth(1).screenshot(path=str(shots / "analytics-latency-percentiles.png"))
            page.get_by_role("tab", name="Retries & failures").click()
            panel = page.get_by_role("tabpanel", name="Retries & failures")
            panel.get_by_text("Latest chunks that failed or needed retries").wait_for(timeout=30_000)
            page.wait_for_timeout(1500)
            panel.screenshot(path=str(shots / "analytics-failures.png"))
            browser.close()
    finally:
        app.stop()


def _play_from(page, time_button, tries: int = 3) -> None:
    """Click a line's time until the player stands there. On a loaded machine a click that lands
    while the page is mid-rerun can be dropped by Streamlit; a person would click again."""
    for attempt in range(tries):
        time_button.click()
        try:
            page.wait_for_function("() => { const a = document.querySelector('audio');"
                                   " return a && a.currentTime >= 10 && a.currentTime < 12; }", timeout=15_000)
            return
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise


def _rename(app: ScribeApp, session_id: str, title: str) -> None:
    import json
    import urllib.request

    request = urllib.request.Request(f"{app.url}/api/sessions/{session_id}", method="PATCH",
                                     data=json.dumps({"title": title}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200


def test_open_pages_redraw_themselves_when_the_session_changes_elsewhere(tmp_path):
    """Background work and other clients change a session; the list and the detail view a person
    has open show it within seconds, without a reload or a click."""
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("SCRIBE_E2E_SCREENSHOTS", tmp_path))
    session_id = _seed(tmp_path / "data")
    app = ScribeApp(tmp_path / "data", tmp_path / "app.log")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
            listing = browser.new_page(viewport={"width": 1400, "height": 900})
            listing.goto(app.url + "/sessions")
            listing.get_by_role("heading", name="Sessions").wait_for(timeout=60_000)
            detail = browser.new_page(viewport={"width": 1400, "height": 900})
            detail.goto(app.url + f"/sessions?session={session_id}")
            detail.get_by_role("heading", name="Weekly planning").wait_for(timeout=60_000)
            _rename(app, session_id, "Planning, renamed elsewhere")
            detail.get_by_role("heading", name="Planning, renamed elsewhere").wait_for(timeout=20_000)
            # The list is a canvas grid: its accessible table carries the cells' text.
            listing.get_by_text("Planning, renamed elsewhere").first.wait_for(timeout=20_000, state="attached")
            listing.screenshot(path=str(shots / "sessions-list.png"))
            browser.close()
    finally:
        app.stop()
