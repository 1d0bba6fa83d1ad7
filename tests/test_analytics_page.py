"""AppTest of the Analytics page on a seeded database (stub backend, no model load)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import plotly.io
import pytest
from streamlit.testing.v1 import AppTest

from scribe import analytics
from scribe import analytics_charts as charts
from scribe.core import ChunkRow
from scribe.storage import Storage

PAGE = str(Path(__file__).parent.parent / "pages" / "analytics.py")
RATE = 16_000


def _seed(db: Path, now: float | None = None) -> dict[str, str]:
    """Two sessions: 'Standup' (8 chunks, all done) and 'Review' (6 chunks, 2 failed, 1 retried)."""
    storage = Storage(db)
    now = time.time() - 600 if now is None else now
    ids = {}
    try:
        for title, n, failed in (("Standup", 8, set()), ("Review", 6, {1, 4})):
            sid = storage.create_session(title=title, source="mic", backend="stub", model="stub-1-3s",
                                         chunk_seconds=15, chunk_policy="pause:15", now=now).id
            ids[title] = sid
            for seq in range(n):
                captured = now + seq * 15
                storage.insert_chunk(ChunkRow(sid, seq, seq * 15_000, (seq + 1) * 15_000, seq * 15 * RATE,
                                              (seq + 1) * 15 * RATE, "x", "pending",
                                              captured_at=captured, enqueued_at=captured + 0.05))
                storage.claim_chunk(sid, seq, backend="stub", model="stub-1-3s", now=captured + 0.5)
                if seq == 2:
                    storage.record_retry(sid, seq, "503 overloaded")
                if seq in failed:
                    storage.fail_chunk(sid, seq, "400 bad audio", finished_at=captured + 2.5)
                else:
                    storage.save_segments(sid, seq, [], finished_at=captured + 1.5 + seq % 3)
            storage.end_session(sid, "stopped")
    finally:
        storage.close()
    return ids


@pytest.fixture
def page(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SCRIBE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SCRIBE_BACKEND", "stub")
    monkeypatch.delenv("SCRIBE_DB", raising=False)
    return tmp_path / "data" / "scribe.duckdb"


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_page_shows_charts_figures_and_health_for_a_seeded_db(page: Path) -> None:
    _seed(page)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert _metric(at, "Chunks") == "14"
    assert _metric(at, "Sessions") == "2"
    assert [t.label for t in at.tabs] == ["Latency", "Throughput", "Queue depth", "Backends",
                                          "Retries & failures", "Data"]
    assert len(at.get("plotly_chart")) == 6
    # 2 of 14 settled chunks failed: over the 5 % line
    assert any("2 of 14 chunks failed" in c.value for c in at.caption)
    assert at.warning and "alert conditions" in at.warning[0].value


def _expected_figures(db: Path, session_ids: list[str]) -> list[list[dict]]:
    """The traces of the page's six charts, in page order, built from the chunks of
    `session_ids` alone (all sessions when empty)."""
    storage = Storage(db)
    try:
        df = analytics.load_chunks(storage, session_ids=session_ids)
    finally:
        storage.close()
    figures = [charts.latency_timeline(df), charts.latency_distribution(df),
               charts.throughput_chart(analytics.throughput(df)),
               charts.queue_depth_chart(analytics.queue_depth(df)), charts.rtf_chart(df),
               charts.failures_chart(analytics.failures(df))]
    assert not any(isinstance(f, str) for f in figures)  # every chart has something to draw
    return [json.loads(plotly.io.to_json(f, validate=False))["data"] for f in figures]


def _page_figures(at: AppTest) -> list[list[dict]]:
    return [json.loads(chart.proto.spec)["data"] for chart in at.get("plotly_chart")]


def test_session_filter_narrows_every_figure(page: Path, monkeypatch) -> None:
    # The health panel also checks the host's memory; pin it so only the selection decides.
    monkeypatch.setattr(analytics, "machine_memory_percent", lambda: 10.0)
    ids = _seed(page)
    standup = _expected_figures(page, [ids["Standup"]])
    both = _expected_figures(page, [])
    assert all(a != b for a, b in zip(standup, both))  # each chart tells the selections apart
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert _page_figures(at) == both
    at.multiselect(key="analytics_sessions").select(ids["Standup"]).run()
    assert not at.exception
    assert _page_figures(at) == standup
    assert _metric(at, "Chunks") == "8" and _metric(at, "Sessions") == "1"
    for table in at.dataframe:  # rates, failures, latest errors, every chunk: Standup's only
        frame = table.value
        if "Session" in frame or "session_id" in frame:
            assert set(frame.get("Session", frame.get("session_id"))) == {ids["Standup"]}
        if "Chunks" in frame:
            assert frame["Chunks"].sum() == 8
    # the health panel judges the selection: Review's failed chunks no longer raise the alert
    assert any("0 of 8 chunks failed" in c.value for c in at.caption)
    assert not at.warning


def test_empty_database_explains_how_to_get_data(page: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert at.info and "No chunks" in at.info[0].value
    assert not at.get("plotly_chart")


@pytest.fixture
def auckland(local_zone):
    """A zone far from UTC, so that local and UTC days differ for most of the day."""
    local_zone("Pacific/Auckland")


def test_date_filter_picks_local_days_and_says_so(page: Path, auckland) -> None:
    import datetime as dt

    _seed(page, now=1_735_907_400)  # 2025-01-04 01:30 in Auckland, still 2025-01-03 in UTC
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.date_input(key="analytics_days").set_value((dt.date(2025, 1, 4), dt.date(2025, 1, 4))).run()
    assert not at.exception
    assert _metric(at, "Chunks") == "14"
    assert any("server's local time (NZDT)" in c.value for c in at.sidebar.caption)
