"""AppTest for pages/sessions.py on a seeded data folder."""

from __future__ import annotations

import time

import pytest
from pagekit import TRICKY, app, close_runtime, frames, markup_values, seed_demo

from pages._text import literal


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


def test_a_click_on_any_cell_opens_that_session(demo, monkeypatch):
    data_dir, ids = demo
    at = app("sessions", data_dir, monkeypatch)
    at.session_state["sessions-0"] = {"selection": {"rows": [], "columns": [], "cells": [(1, "duration")]}}
    at.run()
    assert at.query_params["session"] == ids["plan"]


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
    assert any("server's local time" in c.value for c in at.caption)


def test_search_finds_a_phrase_in_one_session(demo, monkeypatch):
    data_dir, _ids = demo
    at = app("sessions", data_dir, monkeypatch)
    at.text_input(key="q").set_value('"launch date"').run()
    (hit,) = [b for b in at.button if b.key.startswith("hit-")]
    assert hit.label == "Weekly planning · 00:05"
    # The whole line, the match in bold (the line is text, so the rest stays escaped).
    assert "Bob: We agreed to move the **launch date** to March\\." in markup_values(at)
    hit.click().run()
    assert at.query_params["session"] == _ids["plan"] and at.query_params["t"] == "5200"
    at = app("sessions", data_dir, monkeypatch)
    at.text_input(key="q").set_value('"date launch"').run()
    assert any("No transcript contains" in v for v in markup_values(at)) and not frames(at)


def lines(at) -> list[str]:
    """The transcript lines the detail view drew (Markdown source, escaped by literal())."""
    return [m.value for m in at.markdown if m.value and not m.value.startswith(("Showing", "**Transcript"))]


def test_detail_shows_transcript_text_literally(demo, monkeypatch):
    data_dir, ids = demo
    at = app("sessions", data_dir, monkeypatch, session=ids["tricky"])
    assert not at.exception
    assert f"**{literal('Dan')}:** {literal(TRICKY)}" in lines(at)
    for value in markup_values(at):
        assert "<script>" not in value and "**x**" not in value and "**draft**" not in value
    assert at.title[0].value == literal("Support **draft**")  # escaped, so it renders as typed
    assert any("1 chunk(s) failed" in w.value for w in at.warning)


def test_detail_defaults_to_the_final_transcript_and_can_switch(demo, monkeypatch):
    data_dir, ids = demo
    at = app("sessions", data_dir, monkeypatch, session=ids["final"])
    assert at.radio[0].value == "final"
    assert literal("Final words about migration.") in lines(at)
    assert any("Showing the **final** transcript" in c.value for c in at.caption)
    at.radio[0].set_value("live").run()
    assert literal("live words about migration") in lines(at)


def test_jump_plays_from_that_line_and_marks_doubtful_ones(demo, monkeypatch):
    data_dir, ids = demo
    at = app("sessions", data_dir, monkeypatch, session=ids["plan"], t="10300")
    (audio,) = at.get("audio")
    assert audio.proto.start_time == 10  # one player for the whole session, at the line's start
    playing = [line for line in lines(at) if line.endswith("**")]  # the highlighted line
    assert playing == [f"**Carol:** **{literal('Bob will send the budget spreadsheet by Friday.')}**"]
    assert any(c.value == "May be wrong: repetition" for c in at.caption)
    assert len(at.get("download_button")) == 5
    at.toggle(key=f"doubtful-{ids['plan']}-live").set_value(True).run()
    assert len([b for b in at.button if b.label.startswith("[")]) == 1
    at.toggle(key=f"doubtful-{ids['plan']}-live").set_value(False).run()
    at.button(key="at-live-0-0").click().run()  # click a time: the player moves there
    assert at.get("audio")[0].proto.start_time == 0


def test_a_corrected_line_is_marked_and_undo_restores_the_machine_text(demo, monkeypatch):
    data_dir, ids = demo
    at = app("sessions", data_dir, monkeypatch, session=ids["final"])
    from pages._shared import _storage
    from scribe.config import Settings

    storage = _storage(str(Settings.from_env({}, data_dir=data_dir).db))
    storage.edit_segment(ids["final"], "final", 0, 0, "Final words about the [migration](http://x).")
    at.run()
    assert literal("Final words about the [migration](http://x).") in lines(at)
    assert any(c.value == f"Edited · the machine heard: {literal('Final words about migration.')}"
               for c in at.caption)
    at.button(key="undo-final-0-0").click().run()
    assert literal("Final words about migration.") in lines(at)
    assert not any(c.value.startswith("Edited") for c in at.caption)


def test_correct_mode_says_where_undo_is(demo, monkeypatch):
    data_dir, ids = demo
    at = app("sessions", data_dir, monkeypatch, session=ids["plan"])
    at.toggle(key=f"editing-{ids['plan']}-live").set_value(True).run()
    assert not any(b.label == "Undo" for b in at.button)  # no Undo in correct mode ...
    assert any("turn *Correct the transcript* off: each corrected line has an Undo button there" in c.value
               for c in at.caption)  # ... so the help says where it is


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


def _hit_buttons(at) -> list:
    return [b for b in at.button if b.key.startswith("hit-")]


def test_paging_resets_when_filters_or_query_shrink_the_results(tmp_path, monkeypatch):
    from seed_sessions import seed_session

    from scribe.config import Settings
    from scribe.storage import Storage

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
        assert len(_hit_buttons(at)) == 10
        at.text_input(key="q").set_value('"item 7"').run()
        assert not at.exception and [b.label.split(" · ")[0] for b in _hit_buttons(at)] == ["S07"]
    finally:
        close_runtime(settings.data_dir)


def test_a_session_being_recorded_lists_the_audio_stored_so_far(tmp_path, monkeypatch):
    from pages._shared import _storage
    from scribe.config import Settings
    from scribe.core import ChunkRow

    at = app("sessions", tmp_path / "data", monkeypatch)  # the runtime is up: nothing recovers this session
    storage = _storage(str(Settings.from_env({}, data_dir=tmp_path / "data").db))
    session = storage.create_session(title="Still talking", source="mic", backend="stub", model="m",
                                     chunk_seconds=15, chunk_policy="pause")
    for seq in range(3):
        storage.insert_chunk(ChunkRow(session.id, seq, seq * 18_000, (seq + 1) * 18_000, seq * 288_000,
                                      (seq + 1) * 288_000, "x.flac", "pending", captured_at=1.0))
    at.run()
    row = frames(at)[0].iloc[0]
    assert (row["title"], row["status"], row["duration"]) == ("Still talking", "recording", "00:54")
    close_runtime(tmp_path / "data")
