"""Analytics: where each chunk's time goes, throughput, queue depth, backends, failures, health."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from pages._live_latency import render_live_latency
from pages._shared import principal, runtime
from scribe import analytics
from scribe import analytics_charts as charts
from scribe.timelabels import local_date, local_zone, picked_days, time_zone_note, today

rt = runtime()
who = principal()  # a person sees the figures of the sessions they may read
facets = rt.storage.timing_facets(visible_to=who)

# -- sidebar: filters ------------------------------------------------------------
with st.sidebar:
    st.header("Filters")
    first, last = facets["captured_range"]
    now = today()
    lo = local_date(first) if first else now
    hi = local_date(last) if last else now
    days = st.date_input("Chunks captured between", value=(max(lo, hi - dt.timedelta(days=6)), hi),
                         min_value=lo, max_value=max(hi, now), format="YYYY-MM-DD", key="analytics_days")
    st.caption(time_zone_note())
    labels = {s["id"]: f"{s['title']} - {s['id']}" for s in facets["sessions"]}  # options are literal
    session_ids = st.multiselect("Sessions", list(labels), format_func=labels.get,
                                 placeholder="All sessions", key="analytics_sessions")
    backends = st.multiselect("Backends", facets["backends"], placeholder="All backends")
    models = st.multiselect("Models", facets["models"], placeholder="All models")
    st.button("Refresh", icon=":material/refresh:")

st.title("Analytics")
st.caption("Chunk timeline: closed -> stored (disk + DB) -> queue wait -> processing -> text stored. "
           "Times in the server's local time.")

since, until = picked_days(days)
zone = local_zone(rt.settings.time_zone)
df = analytics.load_chunks(rt.storage, session_ids=session_ids, backends=backends, models=models,
                           since=since, until=until, zone=zone, visible_to=who)


# -- health ----------------------------------------------------------------------
@st.fragment(run_every="10s")
def health_panel() -> None:
    """Re-runs every 10 s: the live queue's backlog and the machine's memory, plus the selection."""
    checks = analytics.health(df, backlog=rt.backlog(),  # the Record page's verdict too
                              queue=rt.pipeline.stats())
    st.subheader("Health")
    for column, check in zip(st.columns(len(checks)), checks):
        with column.container(border=True):
            icon = ":material/check_circle:" if check.ok else ":material/warning:"
            colour = "green" if check.ok else "red"
            st.markdown(f":{colour}[{icon} **{check.name}**]")
            st.caption(check.detail)
    if not all(c.ok for c in checks):
        st.warning("Some alert conditions are met: see the panels above.", icon=":material/warning:")


health_panel()

if df.empty:
    st.info("No chunks match these filters yet. Record or upload something, or run "
            "`python -m scribe bench --data-dir data --minutes 2` to generate a load test.")
    st.stop()

# -- headline numbers --------------------------------------------------------------
s = analytics.summary(df)
cols = st.columns(6)
cols[0].metric("Chunks", f"{s['chunks']:,}", help=f"{s['done']:,} done, {s['failed']:,} failed, "
               f"{s['pending'] + s['processing']:,} open")
cols[1].metric("Sessions", f"{s['sessions']:,}")
cols[2].metric("Audio done", f"{s['audio_minutes']:,.0f} min" if s["audio_minutes"] >= 10
               else f"{s['audio_minutes']:.1f} min")
cols[3].metric("End-to-end p50", f"{s['end_to_end_p50_s']:.2f} s")
cols[4].metric("End-to-end p95", f"{s['end_to_end_p95_s']:.2f} s")
cols[5].metric("End-to-end p99", f"{s['end_to_end_p99_s']:.2f} s")


def show(chart) -> None:
    """A figure, or the sentence that replaces an empty one."""
    if isinstance(chart, str):
        st.caption(chart)
    else:
        st.plotly_chart(chart)


latency, throughput, queue, backends_tab, failures_tab, data = st.tabs(
    ["Latency", "Throughput", "Queue depth", "Backends", "Retries & failures", "Data"])


with latency:
    show(charts.latency_timeline(df))
    show(charts.latency_distribution(df))
with throughput:
    show(charts.throughput_chart(analytics.throughput(df)))
with queue:
    show(charts.queue_depth_chart(analytics.queue_depth(df, zone=zone)))
with backends_tab:
    show(charts.rtf_chart(df))
    st.dataframe(charts.readable(analytics.rtf_by_backend(df)), hide_index=True)
with failures_tab:
    fails = analytics.failures(df)
    show(charts.failures_chart(fails))
    st.dataframe(charts.readable(fails), hide_index=True, width="stretch",
                 column_config={"Failure rate": st.column_config.NumberColumn(format="percent")})
    errors = analytics.recent_errors(df)
    if errors.empty:
        st.caption("No chunk failed or needed a retry in this selection.")
    else:
        st.caption("Latest chunks that failed or needed retries")
        st.dataframe(charts.readable(errors), hide_index=True)
with data:
    st.download_button("Download CSV", analytics.to_csv(df), file_name="scribe-chunks.csv",
                       mime="text/csv", icon=":material/download:")
    st.dataframe(charts.readable(df[analytics.CSV_COLUMNS], decimals=3, rename=False), hide_index=True)

render_live_latency(rt.storage, df, session_ids=session_ids, since=since, until=until, visible_to=who)
