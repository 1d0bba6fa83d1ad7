"""Summaries: the local extractive one on a one-hour transcript, versions, and Gemini via a fake server."""

from __future__ import annotations

import json

import pytest
from fake_gemini import DEFAULT_KEY, fake_gemini, fake_gemini_factory, forbidden, json_reply, malformed, server_error  # noqa: F401 (fixtures)
from seed_sessions import seed_session
from transcript_gen import ACTIONS, DECISIONS, meeting_segments

from scribe.core import SegmentRow
from scribe.errors import ScribeError
from scribe.export import cited_transcript
from scribe.summaries import (
    Summary,
    find_action_items,
    find_decisions,
    from_row,
    save_summary,
    sentences,
    summarize_local,
    summarize_session,
    summary_from_reply,
)


@pytest.fixture(scope="module")
def hour():
    segments, planted = meeting_segments(10_000)
    return segments, planted, summarize_local(segments)


def test_one_hour_transcript_is_about_ten_thousand_words(hour):
    segments, _planted, summary = hour
    assert 9_900 <= summary.words <= 10_100
    assert segments[-1].end_ms > 3_300_000


def test_action_items_point_to_the_segments_that_said_them(hour):
    segments, planted, summary = hour
    starts = {(s.seq, s.idx): s.start_ms for s in segments}
    for item in summary.action_items + summary.decisions + summary.key_points:
        assert starts[(item.seq, item.idx)] == item.start_ms
    found = {i.text: i for i in summary.action_items}
    for line, owner in ACTIONS:
        assert found[line].start_ms == planted[line].start_ms
        assert found[line].owner == (owner or planted[line].speaker)
    assert found[ACTIONS[0][0]].due == "by Friday"


def test_decisions_are_found_at_their_times(hour):
    _segments, planted, summary = hour
    assert {d.text: d.start_ms for d in summary.decisions} == {d: planted[d].start_ms for d in DECISIONS}


def test_overview_title_and_keywords_come_from_the_transcript(hour):
    segments, _planted, summary = hour
    text = " ".join(s.text for s in segments).lower()
    assert 3 <= len(summary.key_points) <= 8 and summary.overview
    assert all(point.text in summary.overview for point in summary.key_points[:3])
    assert summary.keywords and all(k.lower() in text for k in summary.keywords)
    assert summary.title and summary.title != "Untitled meeting"


def test_sentences_cross_segment_boundaries_and_keep_the_start_time():
    rows = [SegmentRow("s", 0, 0, 0, 900, "We agreed to", speaker="A"),
            SegmentRow("s", 1, 0, 1000, 1900, "ship on Monday. Alice will", speaker="A"),
            SegmentRow("s", 1, 1, 2000, 2900, "test it.", speaker="A"),
            SegmentRow("s", 2, 0, 3000, 3900, "Sounds good", speaker="B")]
    got = [(s.text, s.start_ms) for s in sentences(rows)]
    assert got == [("We agreed to ship on Monday.", 0), ("Alice will test it.", 1000), ("Sounds good", 3000)]


@pytest.mark.parametrize("line,owner", [
    ("Dana will update the roadmap by next Friday.", "Dana"),
    ("Could you send the slides, Erik?", "Erik"),
    ("I'll write the release notes tonight.", "Sam"),
    ("Action item: review the contract.", None),
    ("We need to hire two more engineers.", "team"),
])
def test_action_phrasings_and_owners(line, owner):
    rows = sentences([SegmentRow("s", 0, 0, 0, 10, line, speaker="Sam")])
    assert [i.owner for i in find_action_items(rows)] == [owner]


@pytest.mark.parametrize("line", ["The weather was nice.", "Will it rain tomorrow?", "Monday will be busy."])
def test_chatter_is_not_an_action_item(line):
    assert find_action_items(sentences([SegmentRow("s", 0, 0, 0, 10, line)])) == []


@pytest.mark.parametrize("line,is_decision", [
    ("We decided to drop the beta.", True), ("The plan was approved by legal.", True),
    ("We haven't decided yet.", False), ("Have we agreed on a date?", False)])
def test_decision_phrasings(line, is_decision):
    assert bool(find_decisions(sentences([SegmentRow("s", 0, 0, 0, 10, line)]))) is is_decision


def test_versions_keep_history_and_round_trip(storage, settings):
    s = seed_session(storage, settings.audio_dir, [("A", "We agreed to ship on Monday and Alice will test it."),
                                                   ("B", "Bob will write the announcement by Friday.")],
                     title="t", created_at=1)
    seen = []
    first, row1 = summarize_session(storage, settings, s.id, progress=lambda f, m: seen.append(f))
    _second, row2 = summarize_session(storage, settings, s.id)
    assert (row1.version, row2.version) == (1, 2)
    assert [r.version for r in storage.list_summaries(s.id)] == [2, 1]
    assert seen == sorted(seen) and seen[-1] == 1.0
    restored = from_row(storage.list_summaries(s.id)[-1])
    assert restored.to_dict() == first.to_dict()
    assert [a.owner for a in restored.action_items] == ["Alice", "Bob"]


def test_a_session_without_text_cannot_be_summarized(storage, settings):
    s = storage.create_session(title="empty", source="cli", backend="stub", model="m", chunk_seconds=5,
                               chunk_policy="fixed")
    with pytest.raises(ScribeError, match="no transcript text"):
        summarize_session(storage, settings, s.id)
    with pytest.raises(ScribeError, match="unknown summary backend"):
        summarize_session(storage, settings, s.id, backend="gpt")
    assert storage.list_summaries(s.id) == []


def test_empty_summary_saves_and_loads(storage, settings):
    s = storage.create_session(title="e", source="cli", backend="stub", model="m", chunk_seconds=5,
                               chunk_policy="fixed")
    row = save_summary(storage, s.id, Summary(backend="local", model="m", title="T", overview=""))
    assert from_row(row).title == "T" and from_row(storage.list_summaries(s.id)[0]).title == "T"


# -- Gemini ----------------------------------------------------------------------
def plan_segments() -> list[SegmentRow]:
    lines = [("Alice", "Welcome, let's start with the budget review."),
             ("Bob", "We agreed to move the launch date to March."),
             ("Carol", "Bob will send the budget spreadsheet by Friday.")]
    return [SegmentRow("s", i, 0, i * 5_000 + 400, i * 5_000 + 4_000, text, speaker=who)
            for i, (who, text) in enumerate(lines)]


GEMINI_ANSWER = {
    "title": "Budget and launch", "overview": "The team reviewed the budget and moved the launch.",
    "keywords": ["budget", "launch"],
    "key_points": [{"time": "00:00", "text": "Budget review started."}],
    "decisions": [{"time": "[00:05]", "text": "Launch moves to March."}],
    "action_items": [{"time": "00:10", "text": "Send the budget spreadsheet.", "owner": "Bob", "due": "Friday"},
                     {"time": "later", "text": "Bob will send the budget spreadsheet", "owner": None, "due": "null"}],
}


def test_gemini_reply_items_snap_to_the_segments_they_cite():
    summary = summary_from_reply(GEMINI_ANSWER, plan_segments(), model="m")
    assert [(i.seq, i.start_ms) for i in summary.key_points] == [(0, 400)]
    assert [(i.seq, i.start_ms) for i in summary.decisions] == [(1, 5_400)]  # [00:05] shows a 5.4 s start
    first, second = summary.action_items
    assert (first.seq, first.start_ms, first.owner, first.due, first.speaker) == (2, 10_400, "Bob", "Friday", "Carol")
    assert (second.seq, second.owner, second.due) == (2, None, None)  # no usable time: the matching words win
    assert (summary.title, summary.keywords, summary.backend) == ("Budget and launch", ["budget", "launch"], "gemini")


@pytest.mark.parametrize("bad", [None, [], {"title": "x"}, {"overview": "o", "key_points": "not a list"}])
def test_a_malformed_gemini_reply_is_a_clear_error(bad):
    with pytest.raises(ScribeError, match="Gemini's summary"):
        summary_from_reply(bad, plan_segments(), model="m")


def test_the_cited_transcript_carries_time_and_speaker_on_every_line():
    assert cited_transcript(plan_segments()).splitlines()[2] == \
        "[00:10] Carol: Bob will send the budget spreadsheet by Friday."


def test_the_spoken_test_meeting_yields_its_owners_and_title():
    from speech import MEETING_TURNS

    rows = [SegmentRow("s", i, 0, i * 5_000, i * 5_000 + 4_000, text, speaker="ABC"[i % 3])
            for i, text in enumerate(MEETING_TURNS)]
    summary = summarize_local(rows)
    owners = {i.owner: (i.start_ms, i.due) for i in summary.action_items}
    assert owners["Maria"] == (25_000, "by Friday") and owners["Tom"] == (45_000, None)
    assert summary.title == "Weekly planning and budget review"


# -- Gemini through the fake REST server (tests/fake_gemini.py, the real google-genai SDK) ----
def gemini_settings(settings, fake):
    return settings.with_changes(gemini_api_key=DEFAULT_KEY, gemini_base_url=fake.base_url, gemini_timeout=10)


def seeded_plan(storage, settings):
    return seed_session(storage, settings.audio_dir, [
        ("Alice", "Welcome, let's start with the budget review."),
        ("Bob", "We agreed to move the launch date to March."),
        ("Carol", "Bob will send the budget spreadsheet by Friday.")], title="plan", created_at=1)


def test_gemini_summary_through_the_fake_server(storage, settings, fake_gemini):
    session = seeded_plan(storage, settings)
    fake_gemini.script(json_reply(GEMINI_ANSWER, prompt_tokens=1_000, output_tokens=200))
    seen = []
    summary, row = summarize_session(storage, gemini_settings(settings, fake_gemini), session.id,
                                     backend="gemini", progress=lambda f, m: seen.append(f))
    assert (row.version, row.backend, row.model) == (1, "gemini", settings.gemini_model)
    starts = {s.seq: s.start_ms for s in storage.list_segments(session.id)}
    assert [(i.seq, i.start_ms, i.owner) for i in summary.action_items][0] == (2, starts[2], "Bob")
    assert [(i.seq, i.start_ms) for i in summary.decisions] == [(1, starts[1])]
    assert summary.usage["input_tokens"] == 1_000 and summary.usage["cost_usd"] > 0
    assert from_row(storage.list_summaries(session.id)[0]).to_dict() == summary.to_dict()
    request = fake_gemini.requests[0]
    assert "[00:10] Carol: Bob will send the budget spreadsheet by Friday." in request.prompt
    config = request.body["generationConfig"]
    assert config["responseMimeType"] == "application/json" and "action_items" in json.dumps(config)
    assert seen == sorted(seen) and seen[-1] == 1.0


@pytest.mark.parametrize("answer,message", [
    (forbidden(), "Gemini rejected the API key"),
    (json_reply({"title": "no overview"}), "expected shape"),
    (malformed(), "malformed"),
    (server_error(503), "503"),
])
def test_gemini_failures_are_clear_and_store_nothing(storage, settings, fake_gemini, answer, message):
    session = seeded_plan(storage, settings)
    fake_gemini.script(answer)
    with pytest.raises(ScribeError, match=message) as caught:
        summarize_session(storage, gemini_settings(settings, fake_gemini), session.id, backend="gemini")
    assert str(caught.value).startswith("Gemini summary failed") or "expected shape" in str(caught.value)
    assert DEFAULT_KEY not in str(caught.value)
    assert storage.list_summaries(session.id) == []


def test_gemini_without_a_key_says_which_setting_is_missing(storage, settings):
    session = seeded_plan(storage, settings)
    with pytest.raises(ScribeError, match="GEMINI_API_KEY"):
        summarize_session(storage, settings, session.id, backend="gemini")


# -- whole sentences, one item per task, owners as the speakers are named ----------------------
MISLABELLED = [  # one voice's sentences cut across speakers by the labels, an interrupted start,
    # the same task said twice with two spellings of one name, and a request answered by a speaker
    SegmentRow("s", 0, 0, 0, 4000, "First item is the budget review for the", speaker="Speaker 1"),
    SegmentRow("s", 1, 0, 4000, 9000, "second quarter, which we finished on Monday.", speaker="Speaker 2"),
    SegmentRow("s", 2, 0, 9000, 12000, "And we have decided, um", speaker="Speaker 1"),
    SegmentRow("s", 3, 0, 12000, 17000, "Marcus will send the final budget report to finance by Friday.",
               speaker="Marcus"),
    SegmentRow("s", 4, 0, 17000, 21000, "Can you also book the room for the quarterly review meeting?",
               speaker="Priya"),
    SegmentRow("s", 5, 0, 21000, 24000, "Yes, I can do that.", speaker="Speaker 3"),
    SegmentRow("s", 6, 0, 24000, 30000, "So Markus will send the final budget report to finance.",
               speaker="Priya"),
    SegmentRow("s", 7, 0, 30000, 36000, "The travel budget stays the same as last year for every team.",
               speaker="Marcus"),
]


def test_a_sentence_cut_across_speakers_stays_whole():
    found = sentences(MISLABELLED)
    assert found[0].text == "First item is the budget review for the second quarter, which we finished on Monday."
    assert (found[0].speaker, found[0].start_ms) == ("Speaker 1", 0)
    assert [s.complete for s in found[:2]] == [True, False]  # "And we have decided, um" was cut off


def test_overview_and_key_points_are_whole_sentences():
    summary = summarize_local(MISLABELLED)
    assert summary.key_points and summary.overview
    for point in summary.key_points:
        assert point.text[0].isupper() and point.text.endswith((".", "!", "?")), point.text
        assert point.text in summary.overview or point not in summary.key_points[:3]
    assert "for the And" not in summary.overview and "decided, um" not in summary.overview


def test_action_items_are_whole_owned_and_listed_once():
    items = summarize_local(MISLABELLED).action_items
    assert [(i.owner, i.due, i.start_ms) for i in items] == [("Marcus", "by Friday", 12000),
                                                            ("Speaker 3", None, 17000)]
    assert all(i.owner for i in items)
