"""AppTest of the Analytics page on a seeded database (stub backend, no model load)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from scribe.core import ChunkRow
from scribe.storage import Storage

PAGE = str(Path(__file__).parent.parent / "pages" / "analytics.py")
RATE = 16_000


def _seed(db: Path) -> dict[str, str]:
    """Two sessions: 'Standup' (8 chunks, all done) and 'Review' (6 chunks, 2 failed, 1 retried)."""
    storage = Storage(db)
    now = time.time() - 600
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


def test_session_filter_narrows_every_figure(page: Path) -> None:
    ids = _seed(page)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.multiselect(key="analytics_sessions").select(ids["Standup"]).run()
    assert not at.exception
    assert _metric(at, "Chunks") == "8" and _metric(at, "Sessions") == "1"
    assert any("0 of 8 chunks failed" in c.value for c in at.caption)
    assert not at.warning


def test_empty_database_explains_how_to_get_data(page: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert at.info and "No chunks" in at.info[0].value
    assert not at.get("plotly_chart")
