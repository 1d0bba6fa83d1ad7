"""AppTest for pages/vocabulary.py: add and remove terms, refusals shown, and a correction's new
name offered and added in one click (with where it came from)."""

from __future__ import annotations

import pytest
from pagekit import app, close_runtime, frames, markup_values, seed_demo

from scribe.config import Settings
from scribe.core import LIVE
from scribe.storage import Storage


@pytest.fixture
def demo(tmp_path):
    data_dir = tmp_path / "data"
    ids = seed_demo(data_dir)
    storage = Storage(Settings.from_env({}, data_dir=data_dir).db)
    try:  # a person wrote a name over what the machine heard
        first = storage.list_segments(ids["plan"], LIVE)[0]
        storage.edit_segment(ids["plan"], LIVE, first.seq, first.idx,
                             first.text.replace("budget review", "Quorvia review"))
    finally:
        storage.close()
    yield data_dir, ids
    close_runtime(data_dir)


def test_terms_are_added_listed_and_removed(demo, monkeypatch):
    data_dir, _ = demo
    at = app("vocabulary", data_dir, monkeypatch)
    at.text_input[0].input("Siobhan, <b>DuckDB</b>")
    next(b for b in at.button if b.key.startswith("FormSubmitter")).click().run()
    assert not at.exception
    table = frames(at)[-1]
    assert sorted(table["term"]) == ["<b>DuckDB</b>", "Siobhan"] and set(table["source"]) == {"typed"}
    assert all("<b>DuckDB</b>" not in v for v in markup_values(at))  # shown as text, never as Markdown
    at.selectbox(key="vocabulary-remove").select("Siobhan").run()
    next(b for b in at.button if b.label == "Remove").click().run()
    assert list(frames(at)[-1]["term"]) == ["<b>DuckDB</b>"]


def test_an_odd_term_is_refused_with_why_and_nothing_changes(demo, monkeypatch):
    data_dir, _ = demo
    at = app("vocabulary", data_dir, monkeypatch)
    at.text_input[0].input("fine, " + "x" * 45)
    next(b for b in at.button if b.key.startswith("FormSubmitter")).click().run()
    assert any("too long for a term" in e.value for e in at.error)
    assert any("No terms yet" in i.value for i in at.info)


def test_a_correction_suggests_its_new_name_and_one_click_adds_it(demo, monkeypatch):
    data_dir, ids = demo
    at = app("vocabulary", data_dir, monkeypatch)
    assert any("Quorvia" in t.value for t in at.text)
    next(b for b in at.button if "Quorvia" in b.key).click().run()
    row = frames(at)[-1].iloc[0]
    assert row["term"] == "Quorvia" and row["source"] == "correction" and ids["plan"] in row["where from"]
    assert not any("Quorvia" in t.value for t in at.text)  # no longer suggested
