"""The Record page's views as plain values: chunk table, live transcript, level meter."""

from scribe.core import ChunkRow, SegmentRow
from scribe.partials import PartialText
from scribe.record_view import chunk_table, level_fraction, live_transcript


def test_chunk_table_shows_latency_only_once_a_chunk_is_done():
    rows = chunk_table([ChunkRow("s", 0, 0, 5_000, 0, 80_000, "a", "done", attempts=1, captured_at=10.0,
                                 finished_at=12.5),
                        ChunkRow("s", 1, 5_000, 65_500, 80_000, 1, "b", "pending", captured_at=20.0)])
    assert rows == [{"chunk": 0, "time": "00:00-00:05", "status": "done", "text after": "2.5 s"},
                    {"chunk": 1, "time": "00:05-01:05", "status": "pending", "text after": "not yet"}]
    failed = ChunkRow("s", 2, 0, 1, 0, 1, "c", "failed", attempts=5, error="HTTP 500", captured_at=1.0,
                      finished_at=2.0)
    assert chunk_table([failed])[0]["error"] == "HTTP 500"


def test_level_meter_maps_dbfs_to_a_fraction():
    assert level_fraction(-120) == 0.0 and level_fraction(0) == 1.0 and level_fraction(-30) == 0.5


def test_live_transcript_hides_partial_text_once_its_chunk_is_stored():
    stored = [SegmentRow("s", 0, 0, 0, 1_000, "stored words")]
    partials = [PartialText("s", 0, 0, 1_000, "old guess", ""), PartialText("s", 1, 15_000, 16_000, "open", "chunk")]
    view = live_transcript(stored, partials)
    assert view.stored == ["[00:00] stored words"]
    assert view.partial == ["[00:15] open chunk"]
