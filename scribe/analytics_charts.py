"""Plotly figures for the Analytics page, built from `scribe.analytics` frames.

Kept out of `pages/` so the page stays layout only and the figures can be
tested (and reused by the bench) without Streamlit. Every chart has a title,
axis titles with units and hover text; times are shown in the server's local time. A chart with
nothing to show is not drawn: its builder returns a sentence saying so
(so each returns `go.Figure | str`), and `readable()` gives tables human column names,
units and rounded numbers.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from scribe import analytics

HOP_COLOURS = {"Store (disk + DB)": "#9aa5b1", "Queue wait": "#f0a202", "Processing": "#2a6f97"}
PCT_COLOURS = {"p50": "#2a9d8f", "p95": "#e76f51", "p99": "#9b2226"}
MAX_BARS = 1500

COLUMN_NAMES = {
    "session_id": "Session", "seq": "Chunk", "status": "Status", "attempts": "Attempts", "error": "Last error",
    "backend": "Backend", "model": "Model", "finished_time": "Finished (local time)", "chunks": "Chunks",
    "audio_min": "Audio (min)", "rtf_p50": "Real-time factor p50", "rtf_p95": "Real-time factor p95",
    "processing_p50_s": "Processing p50 (s)", "retries": "Retries (calls)",
    "chunks_retried": "Chunks retried", "failed": "Chunks failed", "failure_rate": "Failure rate",
}


def readable(table: pd.DataFrame, decimals: int = 2, rename: bool = True) -> pd.DataFrame:
    """A table for people: named columns with units, numbers rounded, no "None"."""
    out = table.copy()
    for column in out.select_dtypes("number").columns:
        if column != "failure_rate":
            out[column] = out[column].round(decimals)
    out[out.select_dtypes("object").columns] = out.select_dtypes("object").fillna("")
    return out.rename(columns=COLUMN_NAMES) if rename else out


def _layout(fig: go.Figure, title: str, x: str, y: str, *, height: int = 360) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0, xanchor="left"), height=height,
                      margin=dict(l=10, r=10, t=60, b=10), xaxis_title=x, yaxis_title=y,
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1),
                      hovermode="closest")
    return fig


def _empty(title: str, message: str) -> str:
    """The sentence shown instead of an empty chart (an axis from -1 to 1 says nothing)."""
    return f"{title.split(' (')[0]}: {message[0].lower()}{message[1:]}."


def latency_timeline(df: pd.DataFrame, max_bars: int = MAX_BARS) -> go.Figure | str:
    """One stacked bar per chunk, in capture order: store + queue wait + processing =
    end-to-end. By chunk rather than clock time, so bars stay wide whatever the gaps
    between sessions, and an upload's chunks (captured in the same second) never overlap."""
    title = "Where each chunk's time went (stacked = end-to-end latency)"
    done = df[df["status"] == "done"].dropna(subset=["end_to_end_s"])
    if done.empty:
        return _empty(title, "No transcribed chunks in this selection")
    if len(done) > max_bars:
        title += f" - latest {max_bars:,} of {len(done):,} chunks"
        done = done.nlargest(max_bars, "captured_at")
    done = done.sort_values(["captured_at", "session_id", "seq"]).reset_index(drop=True)
    done = done.assign(order=done.index + 1, closed=done["captured_time"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    long = done.melt(id_vars=["order", "closed", "title", "seq", "end_to_end_s"],
                     value_vars=["store_s", "queue_wait_s", "processing_s"], var_name="hop",
                     value_name="seconds")
    long["hop"] = long["hop"].map({"store_s": "Store (disk + DB)", "queue_wait_s": "Queue wait",
                                   "processing_s": "Processing"})
    fig = px.bar(long, x="order", y="seconds", color="hop", color_discrete_map=HOP_COLOURS,
                 custom_data=["title", "seq", "closed", "end_to_end_s"])
    fig.update_traces(hovertemplate="%{customdata[0]}, chunk %{customdata[1]}<br>closed %{customdata[2]} local time"
                                    "<br>%{fullData.name}: %{y:.2f} s<br>end to end %{customdata[3]:.2f} s"
                                    "<extra></extra>")
    fig.update_layout(barmode="stack", bargap=0.15, legend_title_text="")
    return _layout(fig, title, "Chunk, in the order chunks closed (hover for session and time)", "Seconds")


def latency_distribution(df: pd.DataFrame) -> go.Figure | str:
    """Histogram of end-to-end latency with p50/p95/p99 marked."""
    title = "End-to-end latency (chunk closed -> text stored)"
    values = df["end_to_end_s"].dropna()
    if values.empty:
        return _empty(title, "No transcribed chunks in this selection")
    fig = px.histogram(values.to_frame(), x="end_to_end_s", nbins=min(80, max(10, len(values) // 5)),
                       color_discrete_sequence=["#2a6f97"])
    stats = analytics.percentiles(values)
    for row, (name, colour) in enumerate(PCT_COLOURS.items()):
        fig.add_vline(x=stats[name], line_dash="dash", line_color=colour)
        # One label per row: close percentiles would otherwise print over each other.
        fig.add_annotation(x=stats[name], y=1.0 - 0.09 * row, xref="x", yref="paper", xanchor="left",
                           text=f" {name} {stats[name]:.2f} s", showarrow=False, font=dict(color=colour),
                           bgcolor="rgba(255,255,255,0.8)")
    fig.update_traces(hovertemplate="%{x:.2f} s: %{y} chunks<extra></extra>")
    fig.update_layout(bargap=0.02)
    return _layout(fig, title, "End-to-end latency (s)", "Chunks")


def throughput_chart(tp: pd.DataFrame) -> go.Figure | str:
    """Chunks per minute (top) and audio minutes per wall minute (bottom) over time."""
    title = "Throughput"
    if tp.empty:
        return _empty(title, "No transcribed chunks in this selection")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.14,
                        subplot_titles=("Chunks transcribed per minute",
                                        "Audio minutes transcribed per wall-clock minute"))
    fig.add_trace(go.Bar(x=tp["time"], y=tp["chunks_per_min"], name="Chunks / min",
                         marker_color="#2a6f97", hovertemplate="%{x}: %{y:.1f} chunks/min<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Bar(x=tp["time"], y=tp["audio_min_per_min"], name="Audio min / wall min",
                         marker_color="#e76f51",
                         hovertemplate="%{x}: %{y:.2f} audio min per min<extra></extra>"), row=2, col=1)
    _layout(fig, title, "", "", height=480)
    fig.update_yaxes(title_text="chunks / min", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="audio min / min", rangemode="tozero", row=2, col=1)
    fig.update_layout(showlegend=False, bargap=0.1)
    fig.update_xaxes(title_text="Finished at (local time)", row=2, col=1)
    return fig


def queue_depth_chart(depth: pd.DataFrame) -> go.Figure | str:
    """Waiting and in-flight chunks (top) and the audio waiting (bottom), as steps."""
    title = "Queue depth (reconstructed from chunk times)"
    if depth.empty:
        return _empty(title, "No queued chunks in this selection")
    depth = analytics.downsample_steps(depth)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.14, row_heights=[0.6, 0.4],
                        subplot_titles=("Chunks waiting and being transcribed", "Audio waiting (minutes)"))
    fig.add_trace(go.Scatter(x=depth["time"], y=depth["waiting"], name="Waiting", mode="lines",
                             line=dict(shape="hv", color="#f0a202"), fill="tozeroy"), row=1, col=1)
    fig.add_trace(go.Scatter(x=depth["time"], y=depth["processing"], name="Being transcribed",
                             mode="lines", line=dict(shape="hv", color="#2a6f97")), row=1, col=1)
    fig.add_trace(go.Scatter(x=depth["time"], y=depth["waiting_audio_s"] / 60, name="Audio waiting",
                             mode="lines", line=dict(shape="hv", color="#9b2226"), fill="tozeroy",
                             showlegend=False), row=2, col=1)
    _layout(fig, title, "", "", height=480)
    fig.update_yaxes(title_text="chunks", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="minutes", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="Time (local time)", row=2, col=1)
    return fig


def rtf_chart(df: pd.DataFrame) -> go.Figure | str:
    """Real-time factor distribution per backend and model (box plot, lower is faster)."""
    title = "Real-time factor by backend and model (processing / audio; below 1 = faster than real time)"
    done = df[(df["status"] == "done") & df["rtf"].notna()]
    if done.empty:
        return _empty(title, "No transcribed chunks in this selection")
    done = done.assign(backend_model=done["backend"].astype(str) + " / " + done["model"].astype(str))
    fig = px.box(done, x="backend_model", y="rtf", color="backend", points=False)
    fig.add_hline(y=1.0, line_dash="dot", line_color="#9b2226", annotation_text="real time",
                  annotation_position="top left")
    fig.update_layout(showlegend=False)
    return _layout(fig, title, "Backend / model", "Real-time factor")


def failures_chart(fails: pd.DataFrame) -> go.Figure | str:
    """Retries and failed chunks per backend and model."""
    title = "Retries and failures by backend and model"
    if fails.empty:
        return _empty(title, "No chunks in this selection")
    if not fails[["retries", "chunks_retried", "failed"]].to_numpy().any():
        return _empty(title, "No retries and no failures in this selection")
    frame = fails.assign(backend_model=fails["backend"].astype(str) + " / " + fails["model"].astype(str))
    long = frame.melt(id_vars=["backend_model", "chunks", "failure_rate"],
                      value_vars=["retries", "chunks_retried", "failed"], var_name="kind",
                      value_name="count")
    long["kind"] = long["kind"].map({"retries": "Retries (calls)", "chunks_retried": "Chunks retried",
                                     "failed": "Chunks failed"})
    fig = px.bar(long, x="backend_model", y="count", color="kind", barmode="group",
                 hover_data={"chunks": True, "failure_rate": ":.1%"},
                 color_discrete_sequence=["#f0a202", "#2a6f97", "#9b2226"])
    fig.update_layout(legend_title_text="")
    return _layout(fig, title, "Backend / model", "Count")
