"""The Record page's progress after an upload, read in a real browser as a person sees it: once
the status says done, no "Transcribed N of M chunks" bar from an earlier refresh is left beside it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import speech
from fake_mic import CHROMIUM
from scribe_app import ScribeApp

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not Path(CHROMIUM).exists() or not speech.have_espeak():
    pytest.skip("needs /usr/bin/chromium and espeak-ng", allow_module_level=True)

SNAPSHOT = """() => ({
    metrics: [...document.querySelectorAll('[data-testid="stMetricValue"]')].map(e => e.innerText),
    bars: [...document.querySelectorAll('[data-testid="stProgress"]')].map(e => e.innerText),
})"""
"""What the page shows at one instant (one evaluation: the metrics and bars can't be read apart)."""


def test_done_upload_shows_no_progress_bar_left_from_an_earlier_refresh(tmp_path):
    from playwright.sync_api import sync_playwright

    audio, _reference = speech.meeting_audio(speech.MEETING_TURNS[:8])
    wav = speech.write_wav(audio, tmp_path / "meeting.wav")
    # Chunks finish one by one over ~10 s (2 at a time, 1.5-3 s each), as on a busy server.
    app = ScribeApp(tmp_path / "data", tmp_path / "app.log", SCRIBE_CHUNK_SECONDS="6",
                    SCRIBE_CHUNK_POLICY="fixed", SCRIBE_STUB_LATENCY="1.5-3.0", SCRIBE_MAX_CONCURRENCY="2",
                    SCRIBE_FINAL_PASS="false")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(app.url)
            page.get_by_role("heading", name="Record").wait_for(timeout=60_000)
            page.get_by_role("tab", name="Upload a file").click()
            page.locator("input[type=file]").set_input_files(str(wav))
            page.get_by_test_id("stFileUploader").get_by_text(wav.name).wait_for(timeout=30_000)
            page.wait_for_timeout(500)
            page.get_by_role("button", name="Transcribe file").click()
            seen, done_at, deadline = [], None, time.monotonic() + 120
            while time.monotonic() < deadline and (done_at is None or time.monotonic() - done_at < 6):
                shown = page.evaluate(SNAPSHOT)
                seen.append(shown)
                if shown["metrics"][:1] == ["done"]:
                    done_at = done_at or time.monotonic()
                page.wait_for_timeout(100)
            browser.close()
    finally:
        app.stop()
    assert done_at is not None, seen[-3:]
    transcribing = [s for s in seen if s["metrics"][:1] == ["transcribing"]]
    assert any(s["bars"] for s in transcribing)  # the bar is there while chunks wait
    assert [s for s in seen if s["metrics"][:1] == ["done"] and s["bars"]] == []
