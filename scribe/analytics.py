"""Latency and throughput analytics: pandas frames built from the chunks table.

Every chunk carries the timestamps of its hops (see DESIGN.md, "Chunk timeline"):

    captured_at -> enqueued_at -> started_at -> finished_at
    (chunk closed)  (durable)     (claimed)     (text stored / failed)

From them: `store_s` = enqueued - captured (disk + DB write), `queue_wait_s` =
started - enqueued, `processing_s` = finished - started (includes retry backoff
within one claim), `end_to_end_s` = finished - captured, and the real-time
factor `rtf` = processing / chunk duration. The Analytics page, the bench and
the health checks all read these frames; nothing here touches Streamlit. Datetime
columns are in the server's local time, as every date the app shows (`scribe.timelabels`).

Caveat, written down once: a chunk re-queued by hand (`retry_failed`) or after a
restart keeps its first `enqueued_at` but gets a new `started_at`, so its queue
wait includes the time it sat failed or the process was down.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from scribe.audio import SAMPLE_RATE
from scribe.backpressure import Backlog, judge_backlog
from scribe.core import percentile
from scribe.identity import Principal
from scribe.storage import Storage
from scribe.timelabels import local_zone

PERCENTILES = (50, 95, 99)
SETTLED = ("done", "failed")
OPEN = ("pending", "processing")


# -- the per-chunk frame --------------------------------------------------------
def load_chunks(storage: Storage, *, session_ids: Sequence[str] = (), backends: Sequence[str] = (),
                models: Sequence[str] = (), since: float | None = None, until: float | None = None,
                limit: int = 200_000, zone: dt.tzinfo | None = None,
                visible_to: Principal | None = None) -> pd.DataFrame:
    """The filtered chunks of `storage` as a per-chunk latency frame (see `chunk_frame`), its
    times in `zone` (default: `local_zone()`), of the sessions `visible_to` may read (scribe.access)."""
    raw = storage.chunk_timings(session_ids=session_ids, backends=backends, models=models,
                                since=since, until=until, limit=limit, visible_to=visible_to)
    return chunk_frame(raw, zone)


def chunk_frame(raw: pd.DataFrame, zone: dt.tzinfo | None = None) -> pd.DataFrame:
    """Add duration, hop latencies, RTF, retries and datetime columns; oldest chunk first.

    Latencies are NaN where a hop has not happened yet (a pending chunk has no
    processing time); end-to-end is defined for `done` chunks only, because a
    failed chunk never stored text.
    """
    df = raw.copy()
    for column in ("captured_at", "enqueued_at", "started_at", "finished_at"):
        df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    df["audio_s"] = (df["end_sample"] - df["start_sample"]).astype("float64") / SAMPLE_RATE
    df["store_s"] = df["enqueued_at"] - df["captured_at"]
    df["queue_wait_s"] = df["started_at"] - df["enqueued_at"]
    settled = df["status"].isin(SETTLED)
    df["processing_s"] = (df["finished_at"] - df["started_at"]).where(settled)
    df["end_to_end_s"] = (df["finished_at"] - df["captured_at"]).where(df["status"] == "done")
    df["rtf"] = (df["processing_s"] / df["audio_s"]).where(df["audio_s"] > 0)
    df["retries"] = (df["attempts"].astype("int64") - 1).clip(lower=0)
    for column in ("captured", "finished"):
        df[f"{column}_time"] = pd.to_datetime(df[f"{column}_at"], unit="s", utc=True).dt.tz_convert(zone or local_zone())
    return df.sort_values(["captured_at", "session_id", "seq"], na_position="last").reset_index(drop=True)


def percentiles(values: pd.Series, qs: Sequence[int] = PERCENTILES) -> dict[str, float]:
    """{'p50': .., 'p95': .., 'p99': .., 'n': ..} over the non-missing values (NaN if none),
    by `core.percentile`, as the CLI reports them."""
    clean = pd.to_numeric(values, errors="coerce").dropna()
    out: dict[str, float] = {"n": float(clean.size)}
    for q in qs:
        out[f"p{q}"] = percentile(clean.tolist(), q)
    return out


def summary(df: pd.DataFrame) -> dict[str, Any]:
    """Headline numbers of a chunk frame: counts, audio, and latency percentiles."""
    counts = df["status"].value_counts()
    out: dict[str, Any] = {status: int(counts.get(status, 0)) for status in (*SETTLED, *OPEN)}
    out.update(chunks=int(len(df)), sessions=int(df["session_id"].nunique()),
               audio_minutes=float(df.loc[df["status"] == "done", "audio_s"].sum() / 60),
               retries=int(df["retries"].sum()))
    for column in ("end_to_end_s", "queue_wait_s", "processing_s"):
        for name, value in percentiles(df[column]).items():
            if name != "n":
                out[f"{column[:-2]}_{name}_s"] = value
    return out


# -- over time -------------------------------------------------------------------
def auto_bin_seconds(span_s: float, target_bins: int = 60) -> int:
    """A round bin width giving about `target_bins` bins over `span_s` seconds."""
    for width in (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400):
        if span_s / width <= target_bins:
            return width
    return 86400


def throughput(df: pd.DataFrame, bin_seconds: int | None = None) -> pd.DataFrame:
    """Per time bin of finish time: chunks done per minute and audio minutes per wall minute.

    Rates are normalised to one minute whatever the bin width, so a 10 s bin
    with 3 chunks reads 18 chunks/min. Empty bins inside the span are zeros.
    """
    done = df[(df["status"] == "done") & df["finished_at"].notna()]
    columns = ["time", "chunks_per_min", "audio_min_per_min", "chunks"]
    if done.empty:
        return pd.DataFrame(columns=columns)
    span = float(done["finished_at"].max() - done["finished_at"].min())
    width = bin_seconds or auto_bin_seconds(span)
    grouped = done.set_index("finished_time").resample(f"{width}s")
    out = pd.DataFrame({"chunks": grouped["seq"].count(), "audio_s": grouped["audio_s"].sum()})
    out["chunks_per_min"] = out["chunks"] * 60.0 / width
    out["audio_min_per_min"] = out["audio_s"] / width  # audio seconds per wall second == min/min
    return out.reset_index(names="time")[columns]


def queue_depth(df: pd.DataFrame, now: float | None = None, zone: dt.tzinfo | None = None) -> pd.DataFrame:
    """Queue depth over time, reconstructed from the enqueued/started/finished times.

    Each chunk counts as *waiting* from enqueued to started and as *processing*
    from started to finished (still open if the chunk is). `waiting_audio_s`
    is the audio seconds waiting, the backlog the health check measures.
    """
    has_times = df[df["enqueued_at"].notna()]
    if has_times.empty:
        return pd.DataFrame(columns=["time", "waiting", "processing", "waiting_audio_s"])
    events = pd.concat([
        _events(has_times, "enqueued_at", waiting=1, processing=0, audio_sign=1),
        _events(has_times, "started_at", waiting=-1, processing=1, audio_sign=-1),
        _events(has_times, "finished_at", waiting=0, processing=-1, audio_sign=0,
                only=has_times["started_at"].notna()),
        # a chunk failed before it was ever claimed leaves the waiting line at its finish
        _events(has_times, "finished_at", waiting=-1, processing=0, audio_sign=-1,
                only=has_times["started_at"].isna()),
    ]).sort_values("at", kind="stable")
    depth = events.groupby("at", sort=True)[["waiting", "processing", "waiting_audio_s"]].sum().cumsum()
    depth["waiting_audio_s"] = depth["waiting_audio_s"].clip(lower=0)
    if now is not None and now > depth.index.max():
        depth.loc[now] = depth.iloc[-1]
    depth.index = pd.to_datetime(depth.index, unit="s", utc=True).tz_convert(zone or local_zone())
    return depth.reset_index(names="time")


def _events(df: pd.DataFrame, column: str, *, waiting: int, processing: int, audio_sign: int,
            only: pd.Series | None = None) -> pd.DataFrame:
    rows = df if only is None else df[only]
    rows = rows[rows[column].notna()]
    return pd.DataFrame({"at": rows[column].to_numpy(), "waiting": waiting, "processing": processing,
                         "waiting_audio_s": audio_sign * rows["audio_s"].to_numpy()})


def downsample_steps(depth: pd.DataFrame, max_points: int = 2000) -> pd.DataFrame:
    """Keep a step series plottable: per bin, the maximum of each column (peaks survive)."""
    if len(depth) <= max_points:
        return depth
    span = (depth["time"].max() - depth["time"].min()).total_seconds()
    width = max(1, int(np.ceil(span / max_points)))
    return depth.set_index("time").resample(f"{width}s").max().dropna().reset_index()


# -- by backend and model ------------------------------------------------------
def rtf_by_backend(df: pd.DataFrame) -> pd.DataFrame:
    """Real-time factor (processing / audio) per backend and model, done chunks only."""
    done = df[(df["status"] == "done") & df["rtf"].notna()]
    if done.empty:
        return pd.DataFrame(columns=["backend", "model", "chunks", "audio_min", "rtf_p50", "rtf_p95",
                                     "processing_p50_s"])
    grouped = done.groupby(["backend", "model"], dropna=False)
    return grouped.agg(chunks=("seq", "count"), audio_min=("audio_s", lambda s: s.sum() / 60),
                       rtf_p50=("rtf", _percentile_of(50)), rtf_p95=("rtf", _percentile_of(95)),
                       processing_p50_s=("processing_s", _percentile_of(50))).reset_index()


def _percentile_of(q: int) -> Callable[[pd.Series], float]:
    """A group's `q`-th percentile by `core.percentile` (missing values left out), for `agg`."""
    return lambda values: percentile(values.dropna().tolist(), q)


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Retries and failures per backend and model; `failure_rate` is of settled chunks."""
    if df.empty:
        return pd.DataFrame(columns=["backend", "model", "chunks", "retries", "chunks_retried",
                                     "failed", "failure_rate"])
    frame = df.assign(failed=df["status"].eq("failed"), settled=df["status"].isin(SETTLED),
                      was_retried=df["retries"].gt(0))
    out = frame.groupby(["backend", "model"], dropna=False).agg(
        chunks=("seq", "count"), retries=("retries", "sum"), chunks_retried=("was_retried", "sum"),
        failed=("failed", "sum"), settled=("settled", "sum")).reset_index()
    out["failure_rate"] = (out["failed"] / out["settled"].where(out["settled"] > 0)).fillna(0.0)
    return out.drop(columns="settled")


def recent_errors(df: pd.DataFrame, limit: int = 20) -> pd.DataFrame:
    """The latest chunks that failed or needed retries, with their last error."""
    bad = df[df["status"].eq("failed") | df["retries"].gt(0)]
    columns = ["session_id", "seq", "status", "attempts", "error", "backend", "model", "finished_time"]
    out = bad.sort_values("captured_at", ascending=False).head(limit)[columns]
    return out.assign(error=out["error"].fillna(""))


# -- health ----------------------------------------------------------------------
@dataclass(frozen=True)
class HealthThresholds:
    """The usual alert conditions. `backlog_audio_s` judges only a backlog estimated from the
    frame; the live queue's comes judged (`Runtime.backlog()`, SCRIBE_BACKLOG_WARN_SECONDS)."""

    backlog_audio_s: float = 300.0
    p95_processing_s: float = 10.0
    failure_rate: float = 0.05
    memory_percent: float = 80.0


@dataclass(frozen=True)
class HealthCheck:
    name: str
    value: float
    threshold: float
    unit: str
    ok: bool
    detail: str


def health(df: pd.DataFrame, *, backlog: Backlog | None = None,
           memory_percent: float | None = None,
           thresholds: HealthThresholds = HealthThresholds(),
           queue: Any = None) -> list[HealthCheck]:
    """Check the alert conditions.

    `backlog` should be the live queue's verdict (`Runtime.backlog()`), the one the Record
    page shows; when missing, the frame's open chunks are judged by the same rule
    (`backpressure.judge_backlog`) against `thresholds.backlog_audio_s`.
    `memory_percent` defaults to the machine's used memory (psutil). With `queue` (a
    `PipelineStats`), a "Workers" check says whether storage takes writes and
    every worker thread runs.
    """
    if backlog is None:
        open_chunks = df["status"].isin(OPEN)
        backlog = judge_backlog(float(df.loc[open_chunks, "audio_s"].sum()), int(open_chunks.sum()),
                                warn_seconds=thresholds.backlog_audio_s)
    checks = [backlog_check(backlog), *_health_checks(df, memory_percent, thresholds)]
    return checks + ([workers_check(queue)] if queue is not None else [])


def workers_check(stats: Any) -> HealthCheck:
    """The queue's own health: storage outage (paused), dead workers, job errors."""
    if not stats.storage_ok:
        detail = (f"paused {stats.storage_down_s:.0f} s: storage refuses writes ({stats.storage_error}); "
                  "resumes by itself when it takes writes again")
        return HealthCheck("Workers", stats.storage_down_s, 0.0, "s paused", False, detail)
    detail = f"{stats.workers_alive} running; {stats.storage_faults} storage faults and " \
             f"{stats.job_errors} job errors since start (each job kept and run again)"
    if stats.intake_spilled:
        detail += f"; {stats.intake_spilled} live chunks spilled to disk"
    return HealthCheck("Workers", float(stats.workers_alive), 1.0, "threads", stats.workers_alive > 0, detail)


def backlog_check(backlog: Backlog) -> HealthCheck:
    """The backlog verdict as a health panel: the same judgement as the Record page's warning."""
    return HealthCheck("Backlog", backlog.audio_seconds, backlog.warn_seconds, "s of audio", not backlog.warn,
                       f"{backlog.audio_seconds / 60:.1f} min of audio waiting "
                       f"(alert over {backlog.warn_seconds / 60:.0f} min)")


def _health_checks(df: pd.DataFrame, memory_percent: float | None,
                   thresholds: HealthThresholds) -> list[HealthCheck]:
    if memory_percent is None:
        memory_percent = machine_memory_percent()
    p95 = percentiles(df["processing_s"])["p95"]
    settled = int(df["status"].isin(SETTLED).sum())
    failed = int(df["status"].eq("failed").sum())
    rate = failed / settled if settled else 0.0
    t = thresholds
    return [
        HealthCheck("p95 processing", p95, t.p95_processing_s, "s",
                    bool(np.isnan(p95) or p95 <= t.p95_processing_s),
                    "no processed chunks" if np.isnan(p95) else
                    f"p95 {p95:.2f} s per chunk (alert over {t.p95_processing_s:g} s)"),
        HealthCheck("Failures", rate, t.failure_rate, "of settled chunks", rate <= t.failure_rate,
                    f"{failed} of {settled} chunks failed ({rate:.1%}; alert over {t.failure_rate:.0%})"),
        HealthCheck("Memory", memory_percent, t.memory_percent, "% of RAM",
                    memory_percent <= t.memory_percent,
                    f"{memory_percent:.0f}% of the machine's memory in use (alert over {t.memory_percent:.0f}%)"),
    ]


def machine_memory_percent() -> float:
    import psutil

    return float(psutil.virtual_memory().percent)


# -- export ----------------------------------------------------------------------
CSV_COLUMNS = ["session_id", "title", "seq", "status", "backend", "model", "attempts", "retries",
               "error", "start_ms", "end_ms", "audio_s", "captured_time", "finished_time",
               "captured_at", "enqueued_at", "started_at", "finished_at", "store_s", "queue_wait_s",
               "processing_s", "end_to_end_s", "rtf"]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (a title such as `=HYPERLINK(...)`)."""


def to_csv(df: pd.DataFrame) -> bytes:
    """The per-chunk table as UTF-8 CSV (ISO times and the raw epoch seconds). Text cells that a
    spreadsheet would run as a formula get a leading `'`, so opening the file runs nothing."""
    table = df[[c for c in CSV_COLUMNS if c in df.columns]].map(_inert)
    return table.to_csv(index=False).encode("utf-8")


def _inert(value: object) -> object:
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


# -- live latency: the partial lane beside the chunk lane ----------------------------
def live_latency(storage: Storage, df: pd.DataFrame, *, session_ids: Sequence[str] = (),
                 since: float | None = None, until: float | None = None,
                 visible_to: Principal | None = None) -> dict[str, Any]:
    """How soon words show while recording: partial-text lag, the chunk lane's end-to-end
    (only for sessions that had partial text, so the two describe the same recordings),
    partial decodes per audio second and the share of partial requests skipped (replaced by
    a newer one, under load or while the chunk lane had work waiting).

    `df` is the page's chunk frame; the partial rows are filtered by the same sessions and
    time range (their `produced_at`)."""
    sessions = pd.DataFrame(storage.partial_lane_stats(session_ids=session_ids, since=since, until=until,
                                                       visible_to=visible_to))
    lags = pd.Series(storage.partial_lags(session_ids=session_ids, since=since, until=until,
                                          visible_to=visible_to), dtype="float64")
    live = df[df["session_id"].isin(sessions["session_id"])] if not sessions.empty else df.iloc[0:0]
    decodes = int(sessions["decodes"].sum()) if not sessions.empty else 0
    skipped = int(sessions["coalesced"].sum()) if not sessions.empty else 0
    audio_s = float(sessions["audio_s"].sum()) if not sessions.empty else 0.0
    e2e = percentiles(live["end_to_end_s"]) if not live.empty else percentiles(pd.Series([], dtype="float64"))
    lag = percentiles(lags)
    return {
        "sessions": sessions,
        "partial_lag_p50_s": lag["p50"], "partial_lag_p95_s": lag["p95"],
        "chunk_end_to_end_p50_s": e2e["p50"], "chunk_end_to_end_p95_s": e2e["p95"],
        "decodes_per_audio_s": decodes / audio_s if audio_s else float("nan"),
        "skipped_share": skipped / (decodes + skipped) if decodes + skipped else float("nan"),
        "paused": int(sessions["paused"].sum()) if not sessions.empty else 0,
    }
