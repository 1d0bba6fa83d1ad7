"""Hostile text on every page, in a real browser: a title and a transcript full of Markdown,
HTML, LaTeX, shortcodes and bare links must show exactly as typed, never as markup."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fake_mic import CHROMIUM
from scribe_app import ScribeApp
from seed_sessions import seed_session

from scribe.config import Settings
from scribe.storage import Storage
from scribe.summaries import summarize_session

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HOSTILE = ("**bold** _ital_ [link](http://evil.example) <b>tag</b> <img src=x onerror=alert(1)> "
           "$x^2$ :red[red] :material/mic: http://bare.evil.example www.evil.example a@evil.example # not a heading")
MARKUP = """() => {
  const hits = [];
  const text = e => (e.innerText || e.textContent || '').trim();
  for (const a of document.querySelectorAll('a')) if ((a.href || '').includes('evil')) hits.push('link ' + a.href);
  for (const e of document.querySelectorAll('strong, b')) if (['bold', 'tag'].includes(text(e))) hits.push('bold ' + text(e));
  for (const e of document.querySelectorAll('em, i')) if (text(e) === 'ital') hits.push('italic');
  const active = 'img[src="x"], .katex, [data-testid=stMain] script, [data-testid=stSidebar] script';
  for (const e of document.querySelectorAll(active)) hits.push(e.tagName);
  for (const e of document.querySelectorAll('h1, h2, h3, h4, h5, h6')) if (text(e) === 'not a heading') hits.push('heading');
  for (const e of document.querySelectorAll('span[style*="color"]')) if (text(e) === 'red') hits.push('colour');
  return hits;
}"""


def _seed(data_dir: Path) -> str:
    settings = Settings.from_env({}, data_dir=data_dir)
    storage = Storage(settings.db)
    try:
        session = seed_session(storage, settings.audio_dir, [
            ("Dan", HOSTILE), (None, "We agreed the budget for March is approved."),
            (None, "Bob will send the report by Friday.")], title=HOSTILE, created_at=time.time() - 60,
            status="done")
        storage.update_session(session.id, status="interrupted")  # offered for Resume after a "reload"
        storage.cursor().execute("UPDATE sessions SET source = 'mic' WHERE id = ?", [session.id])
        summarize_session(storage, settings, session.id)
    finally:
        storage.close()
    return session.id


def _visible_text(page) -> str:
    return page.inner_text("body").replace("\u2060", "")


def test_hostile_title_and_transcript_show_as_typed_on_every_page(tmp_path):
    from playwright.sync_api import sync_playwright

    session_id = _seed(tmp_path / "data")
    app = ScribeApp(tmp_path / "data", tmp_path / "app.log")
    visits = [("", "Record", f"?recording={session_id}", True), ("sessions", "Sessions", "", False),
              ("sessions", "Export", f"?session={session_id}", True), ("summary", "Summary", f"?session={session_id}", False),
              ("analytics", "Analytics", "", False), ("lab", "Chunking lab", "", False)]
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            for path, heading, query, shows_title in visits:
                page.goto(f"{app.url}/{path}{query}")
                page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
                page.wait_for_timeout(2500)
                assert page.evaluate(MARKUP) == [], (path, query)
                if shows_title:
                    assert HOSTILE in _visible_text(page), (path, query)
            page.goto(app.url + "/sessions")  # search results hold the transcript too
            page.get_by_label("Search every transcript").fill("evil")
            page.get_by_label("Search every transcript").press("Enter")
            page.get_by_text("matching line").wait_for(timeout=30_000)
            page.get_by_role("button", name="00:").first.wait_for(timeout=30_000)  # a hit's button: the title in its label
            assert page.evaluate(MARKUP) == []
            browser.close()
    finally:
        app.stop()
