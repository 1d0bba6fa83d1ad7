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
from scribe_app import ScribeApp
from test_browser_e2e import _page_wer, _recorder_button, _wait_idle, _wait_status

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
    server = ScribeApp(tmp_path / "data", tmp_path / "app.log", stub=False, SCRIBE_CHUNK_SECONDS="30",
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


def _opening_cer(words: list[str], reference: str) -> float:
    """Character error rate of a partial against as many opening words of the reference.

    Characters, not words, so a word the fast model spelled differently ("re-support" for
    "agree, support") costs letters only. The first shown word is the [m:ss] stamp.
    """
    shown = " ".join(_norm(w) for w in words[1:])
    opening = " ".join(_norm(w) for w in reference.split()[:len(words)])
    return jiwer.cer(opening, shown)


def test_partial_text_appears_before_the_first_chunk_closes(app, browser, mic_wav, tmp_path):
    wav, reference = mic_wav
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app.url)
    page.get_by_role("heading", name="Record").wait_for(timeout=60_000)
    _wait_idle(page)
    _recorder_button(page, "Start").click(timeout=60_000)
    _wait_status(page, "recording", 30)
    partial = page.locator(PARTIAL)
    # A partial is rough at its end (audio cut mid-word) and the fast model's first guesses
    # on 2-3 s of speech can be far off; each later hypothesis hears more. So read partials
    # until one of at least five words matches the opening of what was said, while the first
    # chunk is still open.
    deadline = time.monotonic() + 40
    seen: list[tuple[float, str, int]] = []
    while time.monotonic() < deadline:
        words = " ".join(partial.all_inner_texts()).split()  # no wait: absent means none yet
        sent = _chunks_sent(page)  # -1: not readable in this redraw
        if len(words) >= 5 and sent >= 0:
            seen.append((_opening_cer(words, reference), " ".join(words), sent))
            if seen[-1][0] < 0.5 or sent > 0:
                break
        time.sleep(0.25)
    assert seen, f"no partial text within 40 s:\n{app.log()[-2000:]}"
    assert seen[0][2] == 0, "the partial text must come before the first chunk closes"
    best_cer, best, sent = min(seen)
    assert best_cer < 0.5 and sent == 0, (best_cer, best, reference)
    partial_line = partial.locator('[data-testid="stText"]').first
    page.wait_for_function("e => getComputedStyle(e).fontStyle === 'italic'", arg=partial_line.element_handle(),
                           timeout=5000)  # visibly not the stored transcript
    page.screenshot(path=str(tmp_path / "partial.png"), full_page=True)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _received(page) < 21:  # all the speech went in
        time.sleep(0.5)
    _recorder_button(page, "Stop").click()
    _wait_status(page, "done", 120)
    page.locator(PARTIAL).wait_for(state="detached", timeout=15_000)  # stored text replaced it
    stored_line = page.locator('[data-testid="stText"]').filter(has_text=re.compile(r"^\[\d+:\d\d\] ")).first
    assert stored_line.evaluate("e => getComputedStyle(e).fontStyle") == "normal"
    stored_wer, stored = _page_wer(page, reference, 0.3)
    assert stored_wer < 0.3, stored
