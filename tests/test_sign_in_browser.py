"""Sign-in, ownership and sharing in a real browser against a real OpenID Connect provider.

`oidc-provider-mock` (PyPI) runs on 127.0.0.1 with four people; the app (stub backend) has
`[auth]` pointing at it and admits only example.com. Olga signs in and uploads a recording;
sharing with Rita before Rita ever signed in is refused with a clear message; Rita signs in,
Olga shares, Rita sees it in Sessions and in search but cannot delete it; Sam sees nothing
(list, search, the session's URL, the export link); Olga unshares and Rita loses it; signing
out returns to the sign-in screen; eve@elsewhere.org is refused; a forged cookie is not a
sign-in. Sam records from Chromium's fake microphone (espeak-ng speech, tiny.en): the session is
his, through the API with his personal token, and invisible to Rita's; its player's media URL
answers his browser and nobody without a sign-in. Each browser context is one person; the app
transcribes with the tests' Whisper model."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import speech
from fake_mic import CHROMIUM, chromium_args, write_wav_48k
from oidc_provider import OidcProvider
from scribe_app import ScribeApp, free_port, get_json

from scribe.wer import word_error_rate

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PEOPLE = {"olga": {"email": "olga@example.com", "name": "Olga Owner"},
          "rita": {"email": "Rita@Example.com", "name": "Rita Reader"},
          "sam": {"email": "sam@example.com", "name": "Sam Stranger"},
          "eve": {"email": "eve@elsewhere.org", "name": "Eve Outsider"}}
TITLE = "Hiring panel notes"
UPLOADED = "Let's start with the budget review for the third quarter."
SPOKEN = speech.MEETING_TURNS[4:7]  # what the fake microphone plays, after 2 s of silence
WAIT = 60_000
IFRAME = 'iframe[title="streamlit_webrtc.component.webrtc_streamer"]'
STOPPED = re.compile(r"session=(\S+) stopped \(")

if not Path(CHROMIUM).exists() or not speech.have_espeak():
    pytest.skip("needs /usr/bin/chromium and espeak-ng", allow_module_level=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("signin")
    provider = OidcProvider(PEOPLE, root / "oidc.log")
    port = free_port()
    home = root / "home"
    (home / ".streamlit").mkdir(parents=True)
    (home / ".streamlit" / "secrets.toml").write_text(provider.secrets_toml(f"http://127.0.0.1:{port}"))
    try:
        app = ScribeApp(root / "data", root / "app.log", stub=False, port=port, HOME=str(home),
                        SCRIBE_ALLOWED_EMAIL_DOMAINS="example.com", SCRIBE_PARTIALS="false",
                        SCRIBE_DIARIZATION="false", SCRIBE_FINAL_PASS="false", SCRIBE_CHUNK_SECONDS="5",
                        SCRIBE_MODEL_DIR=os.environ.get("SCRIBE_MODEL_DIR", str(home / "models")))
    except BaseException:
        provider.stop()
        raise
    yield app, provider, root
    app.stop()
    provider.stop()


@pytest.fixture(scope="module")
def mic(tmp_path_factory) -> Path:
    """Chromium's microphone: 2 s of silence, SPOKEN (three voices), silence to 30 s; it plays
    once, from the first recording the browser starts (no test before the recording one does)."""
    audio, _ = speech.meeting_audio(SPOKEN)
    lead = np.zeros(2 * 16_000, np.float32)
    tail = np.zeros(max(0, 30 * 16_000 - lead.size - audio.size), np.float32)
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    write_wav_48k(np.concatenate([lead, audio, tail]), path)
    return path


@pytest.fixture(scope="module")
def browser(mic):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(mic))
        yield chromium
        chromium.close()


def _sign_in(browser, app, sub: str):
    """A new browser context (one person) signed in through the provider's form."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(WAIT)  # a shared, busy machine
    page = context.new_page()
    page.goto(app.url)
    page.get_by_role("button", name="Sign in").click(timeout=WAIT)
    page.get_by_role("button", name=sub, exact=True).click(timeout=WAIT)  # the provider's form
    page.wait_for_url(f"{app.url}/**", timeout=WAIT)
    return context, page


def _sessions(page, app, query: str = "") -> None:
    page.goto(f"{app.url}/sessions{query}")
    main = page.get_by_test_id("stMain")
    main.get_by_role("heading").or_(main.get_by_role("button", name="All sessions")).first.wait_for(timeout=WAIT)


def test_sign_in_share_unshare_and_refusals(served, browser, tmp_path):
    app, *_ = served
    shots = Path(os.environ.get("SCRIBE_E2E_SCREENSHOTS", tmp_path))

    # Nothing before sign-in: no recorder, no settings, no pages.
    stranger = browser.new_context().new_page()
    stranger.goto(app.url)
    stranger.get_by_role("button", name="Sign in").wait_for(timeout=WAIT)
    stranger.screenshot(path=str(shots / "sign-in.png"))
    assert stranger.get_by_text("Settings").count() == 0 and stranger.get_by_role("button", name="Start").count() == 0
    stranger.context.close()

    # Olga signs in and uploads a recording.
    olga_ctx, olga = _sign_in(browser, app, "olga")
    olga.get_by_text("Signed in as olga@example.com").wait_for(timeout=WAIT)
    olga.goto(app.url)  # the Record page
    main = olga.get_by_test_id("stMain")
    main.get_by_label("Title").fill(TITLE)
    main.get_by_label("Title").press("Enter")
    main.get_by_role("tab", name="Upload a file").click()
    main.locator("input[type=file]").set_input_files(str(speech.write_wav(speech.synthesize(UPLOADED), tmp_path / "panel.wav")))
    main.get_by_role("button", name="Transcribe file").click(timeout=WAIT)
    main.get_by_text("queued for transcription").wait_for(timeout=WAIT)

    _sessions(olga, app)
    _listed(olga, TITLE)
    session_id = _session_id(app)
    _sessions(olga, app, f"?session={session_id}")
    sharing = olga.get_by_test_id("stMain").get_by_text("Sharing: private")
    sharing.click(timeout=WAIT)

    # Sharing with someone who never signed in: a clear message, nothing changes.
    _share(olga, "rita@example.com", "no one has signed in to Scribe as rita@example.com yet")

    rita_ctx, rita = _sign_in(browser, app, "rita")
    rita.get_by_text("Signed in as rita@example.com").wait_for(timeout=WAIT)
    _sessions(rita, app)
    assert rita.get_by_text(TITLE).count() == 0

    _sessions(olga, app, f"?session={session_id}")
    olga.get_by_test_id("stMain").get_by_text("Sharing: private").click(timeout=WAIT)
    _share(olga, " RITA@example.com ", "Sharing: shared")
    olga.screenshot(path=str(shots / "session-sharing.png"))

    # Rita reads it: in Sessions, under "Shared with me", in search; she cannot delete it.
    _sessions(rita, app)
    _listed(rita, TITLE)
    rita.get_by_text("Shared with me").click()
    _listed(rita, TITLE)
    _search(rita, "budget")
    rita.get_by_text("1 matching line(s)").wait_for(timeout=WAIT)
    _sessions(rita, app, f"?session={session_id}")
    rita_main = rita.get_by_test_id("stMain")
    rita_main.get_by_role("heading", name=TITLE).wait_for(timeout=WAIT)
    assert rita_main.get_by_text("Rename, summarize or delete").count() == 0
    assert rita_main.get_by_role("button", name="Delete session").count() == 0
    rita_main.get_by_text("Sharing: shared").click()
    rita_main.get_by_text("Only the owner or an administrator may change").wait_for(timeout=WAIT)

    # Sam sees nothing of it: list, search, its URL, its export link.
    sam_ctx, sam = _sign_in(browser, app, "sam")
    _sessions(sam, app)
    sam.get_by_text("No sessions yet").wait_for(timeout=WAIT)
    _search(sam, "budget")
    sam.get_by_text("No transcript contains that.").wait_for(timeout=WAIT)
    _sessions(sam, app, f"?session={session_id}")
    sam.get_by_text(f"There is no session {session_id}").wait_for(timeout=WAIT)
    assert sam.get_by_text(TITLE).count() == 0
    export = sam.request.get(f"{app.url}/api/sessions/{session_id}/transcript?format=txt")
    assert export.status == 401 and TITLE not in export.text()

    # Olga unshares; Rita no longer sees it.
    _sessions(olga, app, f"?session={session_id}")
    olga_main = olga.get_by_test_id("stMain")
    olga_main.get_by_text("Sharing: shared").click(timeout=WAIT)
    olga.wait_for_timeout(300)
    # Nobody left to share with: private. Unsharing is idempotent (the button goes with the last share).
    _until_shown(olga, "Sharing: private",
                 lambda: olga_main.get_by_role("button", name="Unshare").click(timeout=WAIT))
    _sessions(rita, app)
    rita.get_by_text("No session").first.wait_for(timeout=WAIT)
    assert rita.get_by_text(TITLE).count() == 0

    # Signing out returns to the sign-in screen.
    olga.get_by_role("button", name="Sign out").click(timeout=WAIT)
    olga.get_by_role("button", name="End session").click(timeout=WAIT)  # the provider's own step
    olga.get_by_role("button", name="Sign in").wait_for(timeout=WAIT)
    olga.goto(f"{app.url}/sessions?session={session_id}")
    olga.get_by_role("button", name="Sign in").wait_for(timeout=WAIT)
    assert olga.get_by_text(TITLE).count() == 0
    for context in (olga_ctx, rita_ctx, sam_ctx):
        context.close()


def test_an_email_outside_the_allowed_domain_is_refused(served, browser, tmp_path):
    app, *_ = served
    context, page = _sign_in(browser, app, "eve")
    page.get_by_text("eve@elsewhere.org may not use this Scribe").wait_for(timeout=WAIT)
    page.screenshot(path=str(Path(os.environ.get("SCRIBE_E2E_SCREENSHOTS", tmp_path)) / "sign-in-refused.png"))
    assert page.get_by_role("button", name="Start").count() == 0
    page.goto(f"{app.url}/sessions")
    page.get_by_text("eve@elsewhere.org may not use this Scribe").wait_for(timeout=WAIT)
    assert page.get_by_text("Search every transcript").count() == 0
    context.close()


def test_a_forged_sign_in_cookie_is_not_a_sign_in(served, browser):
    app, *_ = served
    context = browser.new_context()
    context.add_cookies([{"name": "_streamlit_user", "url": app.url,
                          "value": '{"email": "olga@example.com", "is_logged_in": true}'}])
    page = context.new_page()
    page.goto(f"{app.url}/sessions")
    page.get_by_role("button", name="Sign in").wait_for(timeout=WAIT)
    assert page.get_by_text("Search every transcript").count() == 0
    context.close()


def test_a_recording_from_the_microphone_is_its_recorders_alone(served, browser):
    app, *_ = served
    sam_ctx, sam = _sign_in(browser, app, "sam")
    main = sam.get_by_test_id("stMain")
    main.get_by_label("Title").fill("Support staffing")
    main.get_by_label("Title").press("Enter")
    sam.wait_for_timeout(300)
    recorder = sam.frame_locator(IFRAME)
    start = recorder.get_by_role("button", name="Start")
    start.wait_for(timeout=WAIT)
    _until_shown(sam, main.get_by_test_id("stMetricValue").filter(has_text=re.compile(r"^recording$")),
                 lambda: start.click(timeout=WAIT) if start.is_visible() else None)  # Start, not Stop, again
    time.sleep(16)  # 2 s of silence, ~12 s of speech, a margin
    recorder.get_by_role("button", name="Stop").click()
    (stopped,) = app.wait_log(STOPPED, 30)
    session_id = stopped.group(1)

    sam_token = _token(sam, app)
    rita_ctx, rita = _sign_in(browser, app, "rita")
    rita_token = _token(rita, app)
    as_sam, as_rita = ({"Authorization": f"Bearer {t}"} for t in (sam_token, rita_token))

    deadline = time.monotonic() + 120
    while (status := get_json(f"{app.url}/api/sessions/{session_id}", as_sam))[1].get("status") != "done":
        assert time.monotonic() < deadline, status
        time.sleep(1)
    assert status[0] == 200 and status[1]["source"] == "mic" and status[1]["title"] == "Support staffing"
    assert status[1]["owner_id"] == get_json(f"{app.url}/api/me", as_sam)[1]["user_id"]
    listed = get_json(f"{app.url}/api/sessions", as_sam)[1]["sessions"]
    assert session_id in [s["id"] for s in listed]
    code, exported = get_json(f"{app.url}/api/sessions/{session_id}/transcript?format=json", as_sam)
    wer = word_error_rate(" ".join(SPOKEN), exported["text"])
    print(f"WER of the recorded session through the API {wer:.3f}")
    assert code == 200 and wer < 0.35, exported["text"]

    # Rita is signed in too, but it is not hers: as if it did not exist.
    assert get_json(f"{app.url}/api/sessions/{session_id}", as_rita)[0] == 404
    assert get_json(f"{app.url}/api/sessions/{session_id}/transcript?format=json", as_rita)[0] == 404
    assert session_id not in [s["id"] for s in get_json(f"{app.url}/api/sessions", as_rita)[1]["sessions"]]
    assert get_json(f"{app.url}/api/me", as_rita)[1]["email"] == "rita@example.com"

    # The player's media URL plays in Sam's signed-in browser, and for no one without a sign-in.
    _sessions(sam, app, f"?session={session_id}")
    player = sam.get_by_test_id("stMain").locator("audio").first
    player.wait_for(state="attached", timeout=WAIT)
    media = f"{app.url}/{player.get_attribute('src').lstrip('/')}"
    assert sam.request.get(media).status == 200
    forged = '{"email": "sam@example.com", "is_logged_in": true}'
    nobody = browser.new_context()  # no cookies at all
    for cookie in ("", f"_streamlit_user={forged}"):
        refused = nobody.request.get(media, headers={"Cookie": cookie} if cookie else {})
        assert refused.status == 401 and "sign in" in refused.text(), (refused.status, cookie)
    for context in (sam_ctx, rita_ctx, nobody):
        context.close()


def _token(page, app) -> str:
    """A personal API token made on the Account page (shown once, in a code block)."""
    page.goto(f"{app.url}/account")
    main = page.get_by_test_id("stMain")
    main.get_by_text("No tokens yet.").wait_for(timeout=WAIT)  # the page has run to its end

    def create() -> None:
        main.get_by_label("Name of a new token").fill("browser test")
        main.get_by_role("button", name="Create token").click(timeout=WAIT)

    _until_shown(page, main.get_by_test_id("stCode"), create)
    return main.get_by_test_id("stCode").inner_text(timeout=WAIT).strip()


def _listed(page, title: str) -> None:
    """A row of the Sessions table (the grid draws on a canvas: its cells are in the DOM, hidden)."""
    page.get_by_text(title).first.wait_for(state="attached", timeout=WAIT)


def _share(page, email: str, answer: str) -> None:
    """Share with `email` until the page shows `answer`; sharing the same email again changes
    nothing, so a lost try is simply made again."""
    main = page.get_by_test_id("stMain")

    def share() -> None:
        main.get_by_label("Share with (email)").fill(email)
        main.get_by_role("button", name="Share", exact=True).click(timeout=WAIT)

    _until_shown(page, answer, share)


def _until_shown(page, answer, act, attempts: int = 3) -> None:
    """Do `act` (an idempotent click) until `answer` (a text or a locator) shows in the page.
    The session page redraws itself every few seconds (its watch fragment), and a click or
    typing that lands in a redraw on a busy machine is lost: the try is made again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    main = page.get_by_test_id("stMain")
    shown = main.get_by_text(answer) if isinstance(answer, str) else answer
    for attempt in range(attempts):
        page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=WAIT)
        if attempt and shown.first.is_visible():
            return  # the last try landed, only late
        act()
        try:
            shown.first.wait_for(timeout=WAIT // attempts)
            return
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise


def _search(page, words: str) -> None:
    box = page.get_by_test_id("stMain").get_by_label("Search every transcript")
    box.fill(words)
    box.press("Enter")


def _session_id(app) -> str:
    """The uploaded session's id, from the app's log (its pipeline names each session it
    transcribes; the first job also loads the model, which can take a while on a busy machine)."""
    (match,) = app.wait_log(re.compile(r"session=(\d{8}-\d{6}-[0-9a-f]{6})"), 120)
    return match.group(1)
