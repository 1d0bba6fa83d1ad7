"""Retake README's hero image with every setting at its default (base model, pause:15): the app
on a scratch data folder, headless Chromium whose fake microphone plays the espeak-ng meeting.

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python scripts/record_screenshot.py docs/img/record-live.png 40
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, "tests")
import speech  # noqa: E402
from fake_mic import CHROMIUM, chromium_args, write_wav_48k  # noqa: E402
from scribe_app import ScribeApp  # noqa: E402

out = Path(sys.argv[1])
tmp = Path(tempfile.mkdtemp(prefix="scribe-shot-"))
audio, _ref = speech.meeting_audio(speech.MEETING_TURNS[:7])
lead = np.zeros(32_000, np.float32)
tail = np.zeros(max(0, 70 * 16_000 - lead.size - audio.size), np.float32)
wav = tmp / "mic.wav"
write_wav_48k(np.concatenate([lead, audio, tail]), wav)
app = ScribeApp(tmp / "data", tmp / "app.log", stub=False, inherit=())
try:
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(wav))
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(app.url)
        page.get_by_role("heading", name="Record").wait_for(timeout=90_000)
        page.get_by_label("Title").fill("Weekly planning")
        page.get_by_label("Title").press("Enter")
        page.wait_for_timeout(1500)
        frame = page.frame_locator('iframe[title="streamlit_webrtc.component.webrtc_streamer"]')
        frame.get_by_role("button", name="Start").click(timeout=90_000)
        page.get_by_text("Listening").first.wait_for(timeout=60_000)
        time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 40)
        page.screenshot(path=str(out), full_page=True)
        frame.get_by_role("button", name="Stop").click()
        page.wait_for_timeout(2000)
        browser.close()
finally:
    app.stop()
