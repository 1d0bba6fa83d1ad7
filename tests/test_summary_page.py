"""AppTest for pages/summary.py on a seeded data folder."""

from __future__ import annotations

import pytest
from fake_gemini import DEFAULT_KEY, fake_gemini, fake_gemini_factory, json_reply  # noqa: F401 (fixtures)
from pagekit import app, close_runtime, frames, markup_values, seed_demo

from scribe.config import Settings
from scribe.identity import Principal
from scribe.storage import Storage
from scribe.summaries import SUMMARY_LABELS, summarizers_open_to


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("summary-page") / "data"
    ids = seed_demo(data_dir)
    yield data_dir, ids
    close_runtime(data_dir)


def summarize_button(at):
    return next(b for b in at.button if b.label in ("Summarize", "Regenerate (keeps earlier versions)"))


def test_summarize_then_regenerate_keeps_versions(demo, monkeypatch):
    data_dir, ids = demo
    at = app("summary", data_dir, monkeypatch, session=ids["plan"])
    assert at.selectbox[0].value == ids["plan"]
    assert any("No summary yet" in i.value for i in at.info)
    summarize_button(at).click().run()
    assert not at.exception
    assert at.selectbox(key=f"version-{ids['plan']}").value == 1
    assert summarize_button(at).label.startswith("Regenerate")
    actions = frames(at)[-1]
    row = actions[actions["text"] == "Bob will send the budget spreadsheet by Friday."].iloc[0]
    assert (row["at"], row["owner"], row["due"]) == ("00:10", "Bob", "by Friday")
    decisions = frames(at)[-2]
    assert list(decisions["text"]) == ["We agreed to move the launch date to March."]
    summarize_button(at).click().run()
    assert any("Saved as version 2" in s.value for s in at.success)
    assert [o.split(" · ")[0] for o in at.selectbox(key=f"version-{ids['plan']}").options] == ["v2", "v1"]


def test_summary_text_from_a_transcript_is_shown_literally(demo, monkeypatch):
    data_dir, ids = demo
    at = app("summary", data_dir, monkeypatch, session=ids["tricky"])
    summarize_button(at).click().run()
    assert not at.exception
    shown = " ".join(t.value for t in at.text) + " ".join(" ".join(f["text"]) for f in frames(at))
    assert "<script>alert(1)</script>" in shown and "**x**" in shown
    for value in markup_values(at):
        assert "<script>" not in value and "**x**" not in value


def test_gemini_without_a_key_says_what_is_missing(demo, monkeypatch):
    data_dir, ids = demo
    at = app("summary", data_dir, monkeypatch, session=ids["final"])
    at.radio[0].set_value("gemini").run()
    assert any("GEMINI_API_KEY" in i.value for i in at.info)
    assert summarize_button(at).disabled


def test_a_session_without_transcript_cannot_be_summarized(demo, monkeypatch):
    data_dir, ids = demo
    at = app("summary", data_dir, monkeypatch, session=ids["recording"])
    assert summarize_button(at).disabled
    assert any("no transcript yet" in c.value for c in at.caption)


def test_gemini_summary_from_the_page_through_the_fake_server(tmp_path, monkeypatch, fake_gemini):
    data_dir = tmp_path / "data"
    ids = seed_demo(data_dir)
    env = {"GEMINI_API_KEY": DEFAULT_KEY, "SCRIBE_GEMINI_BASE_URL": fake_gemini.base_url}
    fake_gemini.script(json_reply({
        "title": "Planning", "overview": "Budget and launch were discussed.", "keywords": ["budget"],
        "key_points": [], "decisions": [{"time": "00:05", "text": "Launch moves to March."}],
        "action_items": [{"time": "00:10", "text": "Send the spreadsheet.", "owner": "Bob", "due": "Friday"}]}))
    try:
        at = app("summary", data_dir, monkeypatch, env=env, session=ids["plan"])
        at.radio[0].set_value("gemini").run()
        summarize_button(at).click().run()
        assert not at.exception
        assert at.selectbox(key=f"version-{ids['plan']}").options[0].startswith("v1 · gemini")
        actions = frames(at)[-1]
        assert list(actions["at"]) == ["00:10"] and list(actions["owner"]) == ["Bob"]
        assert len(fake_gemini.requests) == 1
        assert any("100 tokens in, 20 out" in c.value for c in at.caption)
    finally:
        close_runtime(data_dir, env)


def test_reader_picks_which_transcript_is_summarized(demo, monkeypatch):
    data_dir, ids = demo
    at = app("summary", data_dir, monkeypatch, session=ids["final"])
    choice = at.radio(key=f"summary-transcript-{ids['final']}")
    assert choice.value == "final" and any("Summarizes the final transcript" in c.value for c in at.caption)
    choice.set_value("live").run()
    assert any("Summarizes the live transcript" in c.value for c in at.caption)
    summarize_button(at).click().run()
    assert not at.exception
    assert any("From the live transcript" in c.value for c in at.caption)


def test_a_person_is_offered_the_summarizers_the_api_allows(tmp_path, monkeypatch):
    """Signed in, not an administrator, owner of the session: the page offers exactly
    `summarizers_open_to` (the offline one always; Gemini only when the administrators open it),
    the list the API checks (tests/test_access_matrix.py), and the offline one runs."""
    from pages import _shared

    data_dir = tmp_path / "data"
    ids = seed_demo(data_dir)
    person = Principal("issuer|olga", email="olga@example.com", name="Olga", signed_in=True)
    storage = Storage(Settings.from_env({}, data_dir=data_dir).db)
    try:
        storage.record_user(person)
        storage.update_session(ids["plan"], owner_id=person.user_id)
    finally:
        storage.close()
    monkeypatch.setattr(_shared, "principal", lambda: person)
    for opened, offered in (("stub", ("local",)), ("stub,gemini", ("local", "gemini"))):
        env = {"SCRIBE_USER_BACKENDS": opened}
        at = app("summary", data_dir, monkeypatch, env=env, session=ids["plan"])
        assert not at.exception
        assert summarizers_open_to(person, Settings.from_env({"SCRIBE_BACKEND": "stub", **env})) == offered
        assert list(at.radio[0].options) == [SUMMARY_LABELS[s] for s in offered]
        close_runtime(data_dir, env)
    at = app("summary", data_dir, monkeypatch, env={"SCRIBE_USER_BACKENDS": "stub"}, session=ids["plan"])
    summarize_button(at).click().run()
    assert any("Saved as version 1" in s.value for s in at.success)
    close_runtime(data_dir, {"SCRIBE_USER_BACKENDS": "stub"})
