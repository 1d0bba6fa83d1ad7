"""In a real browser: partial text shows on the Record page while the first chunk is
still open, in its own style, and gives way to the stored transcript.

Local tiny.en, headless Chromium's fake microphone. Chunks of pause:30 keep the first
chunk open for at least 18 s of audio: partial decodes run at a lower priority, and on
a machine loaded by other work they may take several seconds each.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import jiwer
import numpy as np
import pytest

import speech
from fake_mic import CHROMIUM, chromium_args, write_wav_48k
from test_browser_e2e import App, _recorder_button, _wait_idle, _wait_status
from scribe.wer import word_error_rate

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PARTIAL = ".st-key-live_partial_text"
SENT = re.compile(r"(\d+) chunks sent")
RECEIVED = re.compile(r"Received ([\d.]+) s of audio")


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory) -> tuple[Path, str]:
    """2 s of silence, four meeting turns (~17 s), then 20 s of silence (played once)."""
    audio, reference = speech.meeting_audio(speech.MEETING_TURNS[4:8])
    pcm = np.concatenate([np.zeros(32_000, np.float32), audio, np.zeros(20 * 16_000, np.float32)])
    path = tmp_path_factory.mktemp("mic") / "partials.wav"
    write_wav_48k(pcm, path)
    return path, reference


@pytest.fixture
def browser(mic_wav):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(mic_wav[0]))
        yield chromium
        chromium.close()


@pytest.fixture
def app(tmp_path):
    server = App(tmp_path / "data", tmp_path / "app.log", SCRIBE_CHUNK_SECONDS="30",
                 SCRIBE_CHUNK_POLICY="pause")
    yield server
    server.stop()


def _chunks_sent(page) -> int:
    found = SENT.search(page.inner_text('[data-testid="stMain"]'))
    return int(found.group(1)) if found else -1


def _norm(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def _received(page) -> float:
    found = RECEIVED.search(page.inner_text('[data-testid="stMain"]'))
    return float(found.group(1)) if found else 0.0


def test_partial_text_appears_before_the_first_chunk_closes(app, browser, mic_wav, tmp_path):
    wav, reference = mic_wav
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app.url)
    page.get_by_role("heading", name="Record").wait_for(timeout=60_000)
    _wait_idle(page)
    _recorder_button(page, "Start").click(timeout=60_000)
    _wait_status(page, "recording", 30)
    partial = page.locator(PARTIAL)
    deadline = time.monotonic() + 40
    words: list[str] = []
    sent = -1
    while time.monotonic() < deadline and len(words) < 5:
        if partial.count():
            words = partial.inner_text().split()
            sent = _chunks_sent(page)
        time.sleep(0.25)
    assert len(words) >= 5, f"no partial text within 40 s:\n{app.log()[-2000:]}"
    assert sent == 0, "the partial text must come before the first chunk closes"
    partial_line = partial.locator('[data-testid="stText"]').first
    page.wait_for_function("e => getComputedStyle(e).fontStyle === 'italic'", arg=partial_line.element_handle(),
                           timeout=5000)  # visibly not the stored transcript
    page.screenshot(path=str(tmp_path / "partial.png"), full_page=True)
    # A partial is rough at its end (audio cut mid-word); its start is the speech's start,
    # and most of what it heard is in the opening words of what was said.
    # Character error rate against as many opening words (plus one: the cut word), so a word
    # the fast model spelled differently ("re-support" for "agree, support") costs letters only.
    shown = " ".join(_norm(w) for w in words[1:])  # without the [m:ss] stamp
    opening = " ".join(_norm(w) for w in reference.split()[:len(words)])
    assert jiwer.cer(opening, shown) < 0.5, (shown, opening)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _received(page) < 21:  # all the speech went in
        time.sleep(0.5)
    _recorder_button(page, "Stop").click()
    _wait_status(page, "done", 120)
    page.wait_for_timeout(1000)
    assert page.locator(PARTIAL).count() == 0  # stored text replaced it
    stored_line = page.locator('[data-testid="stText"]').filter(has_text=re.compile(r"^\[\d+:\d\d\] ")).first
    assert stored_line.evaluate("e => getComputedStyle(e).fontStyle") == "normal"
    text = page.inner_text('[data-testid="stMain"]')
    stored = " ".join(m.group(1) for m in re.finditer(r"^\[\d+:\d\d\] (.*)$", text, re.MULTILINE))
    assert word_error_rate(reference, stored) < 0.3, stored
