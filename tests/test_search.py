"""Search: phrases, case, escaping, the transcript a reader sees, stable paging."""

from __future__ import annotations

import pytest
from seed_sessions import seed_session

from scribe.core import SegmentRow
from scribe.search import SearchQueryError, Term, like_pattern, parse_query, regex_pattern, search


@pytest.fixture
def corpus(storage, settings):
    audio = settings.audio_dir
    a = seed_session(storage, audio, [("Ann", "We should move the Launch Date to March."),
                                      ("Ben", "Date of the launch is still open.")], title="A", created_at=100)
    b = seed_session(storage, audio, [(None, "The launch went well; the date was fine."),
                                      (None, "Discount is 50% off, code summer_sale.")], title="B", created_at=200)
    c = seed_session(storage, audio, [(None, "Nothing about that here."),
                                      (None, "Prelaunch dates are elsewhere.")], title="C", created_at=300)
    return a, b, c


def test_quoted_phrase_is_found_in_one_session_only(storage, corpus):
    a, _b, _c = corpus
    page = search(storage, '"launch date"')
    assert [(h.session_id, h.text) for h in page.hits] == [(a.id, "We should move the Launch Date to March.")]
    assert page.total == 1


def test_bare_words_match_anywhere_in_a_segment_in_any_case(storage, corpus):
    a, b, _c = corpus
    page = search(storage, "DATE launch")
    assert {h.session_id for h in page.hits} == {a.id, b.id}
    assert page.total == 3


def test_words_match_at_word_starts_only(storage, corpus):
    _a, _b, c = corpus
    assert search(storage, "launch").total == 3  # "Prelaunch" is not "launch"
    assert search(storage, "dates").hits[0].session_id == c.id  # a prefix: "date" finds "dates" too
    assert search(storage, "date").total == 4


def test_like_wildcards_in_queries_are_literal(storage, corpus):
    _a, b, _c = corpus
    assert [h.session_id for h in search(storage, "50%").hits] == [b.id]
    assert [h.session_id for h in search(storage, "summer_sale").hits] == [b.id]
    assert search(storage, "summerxsale").total == 0
    assert search(storage, "%").total == 1


def test_regex_metacharacters_in_queries_are_literal(storage, corpus):
    assert search(storage, '"launch.went"').total == 0  # "." is not "any character"
    assert search(storage, '"well; the"').total == 1


def test_final_transcript_is_searched_instead_of_live(storage, settings):
    s = seed_session(storage, settings.audio_dir, [(None, "live words only here")], title="F", created_at=5)
    storage.replace_transcript(s.id, "final", [SegmentRow(s.id, 0, 0, 0, 900, "final words only here",
                                                          transcript="final")])
    assert search(storage, '"live words"').total == 0
    hits = search(storage, '"final words"').hits
    assert [(h.session_id, h.transcript) for h in hits] == [(s.id, "final")]


def test_paging_is_stable_and_complete(storage, settings):
    for n in range(4):
        seed_session(storage, settings.audio_dir, [(None, f"budget line {i} of session {n}") for i in range(6)],
                     title=f"S{n}", created_at=1000)  # equal times: the id must break ties
    full = search(storage, "budget", limit=100)
    assert full.total == 24
    pages = [search(storage, "budget", limit=5, offset=o) for o in range(0, 25, 5)]
    keys = [(h.session_id, h.seq, h.idx) for p in pages for h in p.hits]
    assert keys == [(h.session_id, h.seq, h.idx) for h in full.hits]
    assert len(set(keys)) == 24 and pages[0].pages == 5
    past = search(storage, "budget", limit=5, offset=30)
    assert (past.hits, past.total) == ([], 24)
    again = search(storage, "budget", limit=5, offset=10)
    assert [(h.session_id, h.seq) for h in again.hits] == [(h.session_id, h.seq) for h in pages[2].hits]


def test_hits_carry_time_and_session_title(storage, corpus):
    hit = search(storage, "Ben").hits if search(storage, "Ben").total else []
    assert not hit  # speaker names are not transcript text
    hit = search(storage, "open").hits[0]
    assert (hit.title, hit.start_ms, hit.speaker) == ("A", 5_200, "Ben")


def test_query_parsing():
    assert parse_query('budget "launch  date" review,') == [
        Term("budget", False), Term("launch date", True), Term("review", False)]
    assert parse_query('\u201cexact phrase\u201d') == [Term("exact phrase", True)]
    assert parse_query('"unclosed phrase') == [Term("unclosed phrase", True)]
    for bad in ("", "   ", '""', "x" * 500):
        with pytest.raises(SearchQueryError):
            parse_query(bad)


def test_patterns_escape_what_they_must():
    assert like_pattern("50%_a\\b") == "%50\\%\\_a\\\\b%"
    assert regex_pattern(Term("c++ (beta)", True)) == r"\bc\+\+\s+\(beta\)"
    assert regex_pattern(Term("launch date", True)) == r"\blaunch\s+date\b"
    assert regex_pattern(Term("élan", False)) == "élan"  # RE2's \b is ASCII-only
    assert regex_pattern(Term("(beta", True)) == r"\(beta\b"
