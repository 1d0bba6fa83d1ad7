"""The Analytics page's "Live latency" section: partial text beside the chunk lane."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from scribe import analytics
from scribe.storage import Storage


def _seconds(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f} s"


def render_live_latency(storage: Storage, df: pd.DataFrame, *, session_ids, since, until, visible_to=None) -> None:
    """Headline numbers and a per-session table; a short note when no session had partial text."""
    view = analytics.live_latency(storage, df, session_ids=session_ids, since=since, until=until,
                                  visible_to=visible_to)
    st.subheader("Live latency")
    if view["sessions"].empty:
        st.caption("No live recording with partial text in this selection (SCRIBE_PARTIALS).")
        return
    st.caption("How fast spoken words reach the Record page. **Live words**: grey partial text, from the "
               "audio's arrival to the words on the page. **Stored lines**: a chunk's end to its stored text, "
               "for the same recordings. *Typical* is the median; *slow* is the 95th percentile (1 in 20 is slower).")
    first, second = st.columns(3), st.columns(3)
    first[0].metric("Live words, typical", _seconds(view["partial_lag_p50_s"]), help="Median partial-text lag")
    first[1].metric("Live words, slow", _seconds(view["partial_lag_p95_s"]), help="95th percentile partial-text lag")
    first[2].metric("Stored lines, typical", _seconds(view["chunk_end_to_end_p50_s"]),
                    help="Median time from a chunk's end to its stored text")
    second[0].metric("Stored lines, slow", _seconds(view["chunk_end_to_end_p95_s"]),
                     help="95th percentile time from a chunk's end to its stored text")
    rate = view["decodes_per_audio_s"]
    second[1].metric("Live guesses per second", "-" if math.isnan(rate) else f"{rate:.2f}",
                     help="Partial decodes per second of recorded audio (each costs model time)")
    share = view["skipped_share"]
    second[2].metric("Guesses skipped", "-" if math.isnan(share) else f"{share:.0%}",
                     help=f"Replaced by a newer request before being decoded; {view['paused']} of them "
                          "while the stored lines had chunks waiting")
    st.dataframe(view["sessions"], hide_index=True, width="stretch", column_order=list(SESSION_COLUMNS),
                 column_config=SESSION_COLUMNS)


def _number(label: str, help_text: str, fmt: str = "%.2f s") -> Any:
    return st.column_config.NumberColumn(label, help=help_text, format=fmt)


SESSION_COLUMNS = {
    "title": st.column_config.TextColumn("Session"),
    "decodes": _number("Live guesses", "Partial decodes made for this recording", "%d"),
    "coalesced": _number("Skipped", "Requests replaced by a newer one before being decoded", "%d"),
    "paused": _number("Held back", "Requests skipped while stored lines had chunks waiting", "%d"),
    "lag_p50_s": _number("Words lag, typical", "Median time from audio to its live words on the page"),
    "lag_p95_s": _number("Words lag, slow", "95th percentile time from audio to its live words"),
    "lag_max_s": _number("Words lag, worst", "Longest time from audio to its live words"),
    "decode_mean_s": _number("Model time per guess", "Mean time the model took for one partial decode"),
    "audio_s": _number("Recorded", "Length of the recording", "%.0f s"),
}
"""The per-session table's columns in words, with units and what each measures."""
