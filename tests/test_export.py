"""Exports parse with real subtitle parsers, keep times in order, and round-trip."""

from __future__ import annotations

import io
import json
import time

import pytest
import srt
import webvtt

from scribe.core import SegmentRow, SessionRow
from scribe.export import FORMATS, cited_transcript, download_name, md_escape, render, transcript_lines

TRICKY = ["Hello <b>there</b> & welcome.", "Line one\n\nline two --> arrow", "**x** and <script>alert(1)</script>",
          "Ünïcödé — fine.", "Last words."]


def session_row() -> SessionRow:
    return SessionRow(id="20260101-000000-abcdef", title="Demo *meeting*", source="upload", status="done",
                      backend="stub", model="stub", chunk_seconds=15, chunk_policy="fixed", created_at=0.0,
                      duration_ms=3_725_000)


def segments() -> list[SegmentRow]:
    rows = []
    for i, text in enumerate(TRICKY):
        start = i * 61_250 + (3_600_000 if i == len(TRICKY) - 1 else 0)  # the last one past an hour
        rows.append(SegmentRow(session_id="s", seq=i, idx=0, start_ms=start, end_ms=start + 4_321, text=text,
                               speaker="Alice" if i % 2 else None))
    return rows


def test_srt_parses_and_times_match_segments():
    segs = segments()
    subs = list(srt.parse(render("srt", session_row(), segs)))
    assert len(subs) == len(segs)
    starts = [s.start.total_seconds() for s in subs]
    assert starts == sorted(starts)
    for sub, seg in zip(subs, segs):
        assert sub.start.total_seconds() == pytest.approx(seg.start_ms / 1000)
        assert sub.end.total_seconds() == pytest.approx(seg.end_ms / 1000)
        assert sub.end > sub.start
    assert "line two" in subs[1].content and "\n\n" not in subs[1].content


def test_vtt_parses_and_times_match_segments():
    segs = segments()
    captions = list(webvtt.from_buffer(io.StringIO(render("vtt", session_row(), segs))))
    assert len(captions) == len(segs)
    starts = [to_ms(c.start) for c in captions]
    assert starts == sorted(starts)
    for caption, seg in zip(captions, segs):
        assert (to_ms(caption.start), to_ms(caption.end)) == (seg.start_ms, seg.end_ms)
    assert "&lt;script&gt;" in captions[2].raw_text  # escaped, so a player shows it as text


def to_ms(stamp: str) -> int:
    """`HH:MM:SS.mmm` as parsed by webvtt-py (its *_in_seconds drop the milliseconds)."""
    hours, minutes, seconds = stamp.split(":")
    return round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000)


def test_json_round_trips_segments_in_seconds():
    segs = segments()
    payload = json.loads(render("json", session_row(), segs))
    assert payload["session_id"] == session_row().id
    back = [SegmentRow(session_id="s", seq=d["seq"], idx=0, start_ms=round(d["start"] * 1000),
                       end_ms=round(d["end"] * 1000), text=d["text"], speaker=d["speaker"])
            for d in payload["segments"]]
    assert back == segs
    assert payload["text"].startswith("Hello <b>there</b>")


def test_markdown_export_escapes_transcript_markup():
    text = render("md", session_row(), segments())
    assert "\\*\\*x\\*\\*" in text and "\\<script\\>" in text
    assert md_escape("a_b*c") == "a\\_b\\*c"


def test_txt_has_title_date_clock_times_and_speakers():
    lines = render("txt", session_row(), segments()).splitlines()
    assert lines[0] == "Demo *meeting*"
    assert lines[1] == f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(0.0))} · 1:02:05"
    assert lines[3].startswith("[00:00] Hello")
    assert lines[4].startswith("[01:01] Alice: ")
    assert lines[-1].startswith("[1:04:05] ")


def test_markdown_export_leaves_full_stops_and_inner_dashes_alone():
    row = SegmentRow("s", 0, 0, 0, 1000, "Thanks, everyone. Q3 - done. 1. not a list")
    text = render("md", session_row(), [row])
    assert "Thanks, everyone. Q3 - done. 1. not a list" in text
    assert md_escape("1. first") == "1\\. first" and md_escape("# x") == "\\# x"


def test_json_has_date_duration_and_confidence():
    payload = json.loads(render("json", session_row(), segments()))
    assert payload["recorded_at"] == "1970-01-01T00:00:00Z" and payload["duration"] == 3725.0
    assert all("confidence" in s and s["edited"] is False for s in payload["segments"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_an_empty_transcript(fmt):
    assert isinstance(render(fmt, session_row(), []), str)


def test_unknown_format_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown format"):
        render("docx", session_row(), [])


def test_download_name_is_a_safe_file_name():
    name = download_name(session_row(), "srt", "final")
    assert name == "demo-meeting-20260101-000000-abcdef-final.srt"
    assert "/" not in download_name(SessionRow(**{**session_row().__dict__, "title": "../../etc"}), "txt")


def test_transcript_is_in_seq_order_whatever_order_chunks_finished():
    segs = [SegmentRow("s", 2, 0, 10_000, 11_000, " third"), SegmentRow("s", 0, 1, 1_000, 2_000, "second"),
            SegmentRow("s", 0, 0, 0, 1_000, "first "), SegmentRow("s", 1, 0, 5_000, 6_000, "  ")]
    assert transcript_lines(segs) == ["[00:00] first", "[00:01] second", "[00:10] third"]


def test_transcript_lines_name_the_speaker_at_turns_and_the_cited_form_on_every_line():
    segs = [SegmentRow("s", 0, 0, 0, 1_000, "Hi.", speaker="Ann"), SegmentRow("s", 0, 1, 1_000, 2_000, " ", speaker="Bob"),
            SegmentRow("s", 0, 2, 2_000, 3_000, "Still me.", speaker="Ann"),
            SegmentRow("s", 1, 0, 5_000, 6_000, "Hello\n  Ann.", speaker="Bob")]
    assert transcript_lines(segs) == ["[00:00] Ann: Hi.", "[00:02] Still me.", "[00:05] Bob: Hello\n  Ann."]
    assert cited_transcript(segs).splitlines() == ["[00:00] Ann: Hi.", "[00:02] Ann: Still me.",
                                                   "[00:05] Bob: Hello Ann."]
