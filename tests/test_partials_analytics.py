"""The Analytics page's live-latency view: partial lag beside the chunk lane, from a seeded DB."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_analytics_page import PAGE, _metric, _seed, page  # noqa: F401 (fixture)

from scribe import analytics
from scribe.core import percentile
from scribe.partials import PartialDecode
from scribe.storage import Storage

LAGS = [0.4, 0.6, 0.8, 1.1, 1.3, 2.9, 0.7, 0.5]


def _seed_partials(db: Path) -> dict[str, str]:
    ids = _seed(db)
    storage = Storage(db)
    now = time.time() - 590
    try:
        storage.update_session(ids["Standup"], duration_ms=120_000)
        storage.save_partial_decodes([
            PartialDecode(ids["Standup"], n // 4, now + n, 1000 * (n + 1), lag, 0.3, 5, n % 2, 1 if n == 3 else 0)
            for n, lag in enumerate(LAGS)])
    finally:
        storage.close()
    return ids


def test_live_latency_reads_partial_lag_and_the_chunk_lane_of_the_same_sessions(page: Path) -> None:
    ids = _seed_partials(page)
    storage = Storage(page)
    try:
        df = analytics.load_chunks(storage)
        view = analytics.live_latency(storage, df)
    finally:
        storage.close()
    standup = df[df["session_id"] == ids["Standup"]]["end_to_end_s"].dropna()
    assert view["partial_lag_p50_s"] == pytest.approx(np.percentile(LAGS, 50))
    assert view["partial_lag_p95_s"] == pytest.approx(np.percentile(LAGS, 95))
    # Storage's per-session figures (DuckDB's quantile_cont) are the same definition as core.percentile.
    row = view["sessions"].iloc[0]
    assert (row["lag_p50_s"], row["lag_p95_s"]) == pytest.approx((percentile(LAGS, 50), percentile(LAGS, 95)))
    assert view["chunk_end_to_end_p95_s"] == pytest.approx(np.percentile(standup, 95))  # Review had no partials
    assert view["decodes_per_audio_s"] == pytest.approx(len(LAGS) / 120)
    skipped = sum(n % 2 for n in range(len(LAGS)))
    assert view["skipped_share"] == pytest.approx(skipped / (len(LAGS) + skipped)) and view["paused"] == 1
    assert list(view["sessions"]["session_id"]) == [ids["Standup"]]


def test_analytics_page_shows_the_live_latency_view(page: Path) -> None:
    _seed_partials(page)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any(s.value == "Live latency" for s in at.subheader)
    assert _metric(at, "Live words, slow") == f"{np.percentile(LAGS, 95):.2f} s"
    assert _metric(at, "Live guesses per second") == f"{len(LAGS) / 120:.2f}"
    table = next(d for d in at.dataframe if "lag_p50_s" in d.value.columns)
    config = json.loads(table.proto.columns)  # every column shown by a label in words, with help
    shown = list(table.proto.column_order)
    assert all(config[name]["label"] and config[name].get("help") or name == "title" for name in shown), config
    assert config["lag_p50_s"]["label"] == "Words lag, typical" and "session_id" not in shown


def test_without_partial_text_the_view_says_so(page: Path) -> None:
    _seed(page)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("No live recording with partial text" in c.value for c in at.caption)
