"""Retake README's hero image with every setting at its default (base model, pause:15): the app
on a scratch data folder, headless Chromium whose fake microphone plays the built-in demo meeting
(`scribe/demo`, espeak-ng voices).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/record_screenshot.py docs/img/record-live.png 40
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.tools import CHROMIUM, ScribeApp, chromium_args, write_wav_48k  # noqa: E402
from scribe.audio import SAMPLE_RATE, decode_file  # noqa: E402
from scribe.lab import demo_recording  # noqa: E402

LEAD_SECONDS = 2.0
"""Quiet before the meeting starts, as when a person presses Start and then speaks."""


def microphone_wav(folder: Path) -> Path:
    """The demo meeting after a short quiet lead, as the 48 kHz WAV Chromium plays."""
    audio = decode_file(demo_recording()[0])
    wav = folder / "mic.wav"
    write_wav_48k(np.concatenate([np.zeros(int(LEAD_SECONDS * SAMPLE_RATE), np.float32), audio]), wav)
    return wav


def record(out: Path, seconds: float) -> None:
    """Start a recording titled "Weekly planning", let it run `seconds`, screenshot the page."""
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="scribe-shot-"))
    wav = microphone_wav(tmp)
    app = ScribeApp(tmp / "data", tmp / "app.log", stub=False, inherit=())
    try:
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
            time.sleep(seconds)
            page.screenshot(path=str(out), full_page=True)
            frame.get_by_role("button", name="Stop").click()
            page.wait_for_timeout(2000)
            browser.close()
    finally:
        app.stop()


if __name__ == "__main__":
    record(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 40)
