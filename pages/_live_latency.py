"""The Analytics page's "Live latency" section: partial text beside the chunk lane."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from scribe import analytics
from scribe.storage import Storage


def _seconds(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f} s"


def render_live_latency(storage: Storage, df: pd.DataFrame, *, session_ids, since, until) -> None:
    """Headline numbers and a per-session table; a short note when no session had partial text."""
    view = analytics.live_latency(storage, df, session_ids=session_ids, since=since, until=until)
    st.subheader("Live latency")
    if view["sessions"].empty:
        st.caption("No live recording with partial text in this selection (SCRIBE_PARTIALS).")
        return
    st.caption("Partial lag: from the audio's arrival to its partial text on the Record page's "
               "next refresh. Chunk lane: chunk closed -> stored text, for the same sessions.")
    cols = st.columns(6)
    cols[0].metric("Partial lag p50", _seconds(view["partial_lag_p50_s"]))
    cols[1].metric("Partial lag p95", _seconds(view["partial_lag_p95_s"]))
    cols[2].metric("Chunk lane p50", _seconds(view["chunk_end_to_end_p50_s"]))
    cols[3].metric("Chunk lane p95", _seconds(view["chunk_end_to_end_p95_s"]))
    rate = view["decodes_per_audio_s"]
    cols[4].metric("Partial decodes per audio s", "-" if math.isnan(rate) else f"{rate:.2f}")
    share = view["skipped_share"]
    cols[5].metric("Partial requests skipped", "-" if math.isnan(share) else f"{share:.0%}",
                   help=f"Replaced by a newer request before being decoded; {view['paused']} of them "
                        "while the chunk lane had chunks waiting")
    st.dataframe(view["sessions"], hide_index=True, width="stretch",
                 column_config={"session_id": "session", "lag_p50_s": st.column_config.NumberColumn(format="%.2f"),
                                "lag_p95_s": st.column_config.NumberColumn(format="%.2f"),
                                "lag_max_s": st.column_config.NumberColumn(format="%.2f"),
                                "decode_mean_s": st.column_config.NumberColumn(format="%.2f"),
                                "audio_s": st.column_config.NumberColumn(format="%.0f")})
