"""AppTest for pages/sessions.py on a seeded data folder."""

from __future__ import annotations

import time

import pytest

from pagekit import TRICKY, app, close_runtime, frames, markup_values, seed_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("sessions-page") / "data"
    ids = seed_demo(data_dir)
    yield data_dir, ids
    close_runtime(data_dir)


def test_list_shows_sessions_newest_first_with_chunk_counts(demo, monkeypatch):
    data_dir, _ids = demo
    at = app("sessions", data_dir, monkeypatch)
    assert not at.exception
    table = frames(at)[0]
    assert list(table["title"]) == ["Just started", "Weekly planning", "Support **draft**", "Migration"]
    # "Just started" was left `recording` with no live capture: opening the app marks it interrupted.
    assert list(table["status"]) == ["interrupted", "done", "stopped", "done"]
    row = table[table["title"] == "Support **draft**"].iloc[0]
    assert (row["chunks"], row["failed"]) == ("1/2", 1)


def test_status_filter_narrows_the_list(demo, monkeypatch):
    data_dir, _ids = demo
    at = app("sessions", data_dir, monkeypatch)
    at.multiselect[0].set_value(["stopped"]).run()
    assert list(frames(at)[0]["title"]) == ["Support **draft**"]


def test_date_filter_narrows_the_list(demo, monkeypatch):
    import datetime as dt

    data_dir, _ids = demo
    at = app("sessions", data_dir, monkeypatch)
    three_days_ago = dt.date.fromtimestamp(time.time() - 86_400 * 3)
    at.date_input[0].set_value((three_days_ago - dt.timedelta(days=1), three_days_ago)).run()
    assert list(frames(at)[0]["title"]) == ["Migration"]


def test_search_finds_a_phrase_in_one_session(demo, monkeypatch):
    data_dir, _ids = demo
    at = app("sessions", data_dir, monkeypatch)
    at.text_input(key="q").set_value('"launch date"').run()
    hits = frames(at)[0]
    assert list(hits["session"]) == ["Weekly planning"] and list(hits["at"]) == ["00:05"]
    at.text_input(key="q").set_value('"date launch"').run()
    assert any("No transcript contains" in v for v in markup_values(at)) and not frames(at)


def test_detail_shows_transcript_text_literally(demo, monkeypatch):
    data_dir, ids = demo
    at = app("sessions", data_dir, monkeypatch, session=ids["tricky"])
    assert not at.exception
    transcript = frames(at)[0]
    assert TRICKY in list(transcript["text"])
    assert list(transcript["speaker"])[0] == "Dan"
    for value in markup_values(at):
        assert "<script>" not in value and "**x**" not in value and "**draft**" not in value
    assert at.title[0].value == "Support \\*\\*draft\\*\\*"  # escaped, so it renders as typed
    assert any("1 chunk(s) failed" in w.value for w in at.warning)


def test_detail_defaults_to_the_final_transcript_and_can_switch(demo, monkeypatch):
    data_dir, ids = demo
    at = app("sessions", data_dir, monkeypatch, session=ids["final"])
    assert at.radio[0].value == "final"
    assert list(frames(at)[0]["text"]) == ["Final words about migration."]
    assert any("Showing the **final** transcript" in c.value for c in at.caption)
    at.radio[0].set_value("live").run()
    assert list(frames(at)[0]["text"]) == ["live words about migration"]


def test_jump_selects_the_segment_and_marks_doubtful_ones(demo, monkeypatch):
    data_dir, ids = demo
    at = app("sessions", data_dir, monkeypatch, session=ids["plan"], t="10300")
    assert any("Opened at [00:10]" in i.value for i in at.info)
    table = frames(at)[0]
    assert list(table["doubt"]) == ["", "", "", "repetition"]
    assert at.selectbox[0].value == 2  # the chunk holding 00:10 is ready to play
    assert len(at.get("audio")) == 1
    assert len(at.get("download_button")) == 5
    at.toggle[0].set_value(True).run()
    assert list(frames(at)[0]["doubt"]) == ["repetition"]


def test_rename_from_the_detail_view(demo, monkeypatch):
    data_dir, ids = demo
    at = app("sessions", data_dir, monkeypatch, session=ids["final"])
    at.text_input[0].set_value("Database migration")  # held by the form until submitted
    at.button(key="FormSubmitter:rename-" + ids["final"] + "-Rename").click().run()
    assert at.title[0].value == "Database migration"


def test_delete_needs_confirmation_and_is_refused_while_recording(demo, monkeypatch):
    data_dir, ids = demo
    at = app("sessions", data_dir, monkeypatch, session=ids["recording"])
    # Opening the app marked the orphaned recording interrupted; make it live again, as a
    # capture started after the app opened would.
    from pages._shared import _storage
    from scribe.config import Settings

    _storage(str(Settings.from_env({}, data_dir=data_dir).db)).update_session(ids["recording"], status="recording")
    at = app("sessions", data_dir, monkeypatch, session=ids["recording"])
    assert any("still recording" in c.value for c in at.caption)
    at = app("sessions", data_dir, monkeypatch, session=ids["plan"])
    delete = at.button(key=f"delete-{ids['plan']}")
    assert delete.disabled
    at.checkbox(key=f"sure-{ids['plan']}").check().run()
    at.button(key=f"delete-{ids['plan']}").click().run()
    assert not at.exception
    assert "session" not in at.query_params
    assert "Weekly planning" not in list(frames(at)[0]["title"])
    assert not (data_dir / "audio" / ids["plan"]).exists() and (data_dir / "audio" / ids["tricky"]).is_dir()


def test_unknown_session_is_a_clear_message(demo, monkeypatch):
    data_dir, _ids = demo
    at = app("sessions", data_dir, monkeypatch, session="nope")
    assert any("no session nope" in w.value for w in at.warning)


def test_paging_resets_when_filters_or_query_shrink_the_results(tmp_path, monkeypatch):
    from scribe.config import Settings
    from scribe.storage import Storage
    from seed_sessions import seed_session

    settings = Settings.from_env({}, data_dir=tmp_path / "data")
    storage = Storage(settings.db)
    for n in range(30):
        seed_session(storage, settings.audio_dir, [(None, f"budget item {n}")], title=f"S{n:02d}", created_at=n,
                     status="interrupted" if n < 2 else "done")
    storage.close()
    try:
        at = app("sessions", settings.data_dir, monkeypatch)
        assert len(frames(at)[0]) == 25
        at.number_input(key="list_page").set_value(2).run()
        assert list(frames(at)[0]["title"]) == [f"S{n:02d}" for n in range(4, -1, -1)]
        at.multiselect[0].set_value(["interrupted"]).run()
        assert not at.exception and list(frames(at)[0]["title"]) == ["S01", "S00"]
        at.text_input(key="q").set_value("budget").run()
        at.number_input(key="search_page").set_value(2).run()
        assert len(frames(at)[0]) == 10
        at.text_input(key="q").set_value('"item 7"').run()
        assert not at.exception and list(frames(at)[0]["session"]) == ["S07"]
    finally:
        close_runtime(settings.data_dir)
