"""Word-on-page latency of live recording, in a real browser, beside other live sessions.

    HF_HUB_OFFLINE=1 python3 benchmarks/live_latency.py \
        [--sessions 1 --sessions 4] [--partials on --partials off] [--speech espeak|human]
        [--workers] [--stagger 0] [--poll 0.3] [--json out.json]

With `--sessions N` one session is a Chromium tab whose page is read, and the other N-1 are
headless senders: each streams different speech (the evaluation turns rotated) in real time
into the app's realtime socket (`/v1/realtime`, PCM16 over a WebSocket: the same LiveCapture,
chunk lane and partial lane as a browser recording), so no other browser's CPU counts
against the server. All sessions start together (their chunks then close within seconds of
each other, the worst case for the chunk lane) unless `--stagger S` starts the k-th sender
k x S seconds after the tab. Per N it reports the tab's words p50/p95, the partial lag p50/p95 and
skipped share over all sessions, the chunk lane's closed -> stored over all sessions, app CPU
per session, chunks not stored and audio not received (both must be 0) and the stored WER.

Starts the real app (`streamlit run app.py`, default settings: chunk lane base,
pause:15) on a free loopback port with its own data folder, opens `--sessions`
tabs in headless Chromium whose fake microphone plays an espeak-ng WAV (text not
used by any test or tuning: `EVAL_TURNS`), presses Start in each, and reads each
tab's transcript lines every `--poll` seconds while the audio plays, then presses
Stop and keeps reading until the session is done. `--speech human` plays real
recorded people instead (benchmarks/human_speech.py: a LibriVox reader and Asterisk's
recorded prompts), the senders too. `--workers` starts a redis-server on loopback and one
`python -m scribe worker --lanes chunks,partials` beside the app (SCRIBE_REDIS_URL), so the
app process only receives, chunks, stores and shows; the worker's CPU is reported apart.

For every spoken word of the reference text, its end time in the WAV comes from a
whole-file decode with word timestamps (base) aligned to that text; the page's words
are aligned to the reference (difflib, runs of 2+ words) and the first poll that shows
a word gives its latency:
    latency = seen on the page - (the WAV's start in wall time + the word's end).
The WAV's start in wall time is the first frame's arrival (logged by the capture)
minus where in the WAV that frame was (the session's first chunk cross-correlated
with the WAV): audio produced before the WebRTC connection stood is never sent.

Also printed per run: partial lag p50/p95 (partial_decodes), decode -> page p50/p95 (a
partial decode that added words, to the first poll showing a change), the chunk lane's
end-to-end (chunk closed -> text stored) p50/p95 and where a chunk's time goes
(last word -> closed, closed -> durable, queue, processing), stored-transcript
WER, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import difflib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import human_speech  # noqa: E402
import speech  # noqa: E402
from fake_mic import CHROMIUM, chromium_args, write_wav_48k  # noqa: E402
from redis_server import free_port, start_redis  # noqa: E402
from scribe_app import ScribeApp  # noqa: E402

from scribe.audio import SAMPLE_RATE, read_flac  # noqa: E402
from scribe.wer import normalize, word_error_rate  # noqa: E402

IFRAME = 'iframe[title="streamlit_webrtc.component.webrtc_streamer"]'
CACHE = Path("/tmp/scribe-bench")
LEAD_S, TAIL_S = 2.0, 20.0
LINE = re.compile(r"^\[\d+:\d\d\] (?:Speaker \d+: )?(.*)$", re.MULTILINE)
CAPTURE_END = re.compile(r"session=(\S+) (?:stopped|interrupted) \(.+?\): received ([\d.]+) s of audio over "
                         r"([\d.]+) s wall")
FIRST_FRAME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO scribe\.capture .*session=(\S+) first frame",
                         re.MULTILINE)

EVAL_TURNS = [
    "Thanks for coming in early, the release review should take about twenty minutes.",
    "The nightly builds failed twice this week because the test database ran out of space.",
    "We moved the logs to a separate disk and the last three runs were green.",
    "Customer feedback on the new search page is mostly positive.",
    "Several people asked for filters by date and by author.",
    "Sarah thinks both filters can ship in the next sprint if design agrees by Tuesday.",
    "Security asked us to rotate the service passwords before the audit in April.",
    "Daniel will write the rotation script and test it on the staging cluster.",
    "The mobile team needs two more days for the offline mode.",
    "Let's move the release to Thursday and tell support today.",
]
"""Evaluation speech: used by nothing else, and nothing was tuned on it."""


@dataclass
class Word:
    text: str
    end_s: float
    """Seconds from the start of the WAV."""


def spoken(kind: str, k: int) -> tuple[np.ndarray, str]:
    """Session k's speech and text: espeak-ng voices reading the evaluation turns (rotated by
    3 turns a session), or real recorded people (`human_speech.meeting(k)`)."""
    if kind == "human":
        return human_speech.meeting(k)
    turns = EVAL_TURNS[3 * k % len(EVAL_TURNS):] + EVAL_TURNS[:3 * k % len(EVAL_TURNS)]
    return speech.meeting_audio(turns, gap_s=0.9)


def padded(audio: np.ndarray) -> np.ndarray:
    """The WAV's lead and tail of silence around the speech."""
    return np.concatenate([np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32), audio,
                           np.zeros(int(TAIL_S * SAMPLE_RATE), np.float32)])


def build_mic(kind: str = "espeak") -> tuple[Path, np.ndarray, str]:
    """The fake microphone's 48 kHz WAV (cached), the same audio at 16 kHz, and its text."""
    CACHE.mkdir(parents=True, exist_ok=True)
    wav48 = CACHE / f"live-latency-{kind}-48k.wav"
    audio, text = spoken(kind, 0)
    pcm = padded(audio)
    if not wav48.exists():
        write_wav_48k(pcm, wav48)
    return wav48, pcm, text


def reference_words(pcm: np.ndarray, text: str) -> list[Word]:
    """The spoken words (the reference text), each with its end time in the WAV.

    Times come from one whole-file decode with word timestamps (base, the most accurate
    bundled model), aligned to the reference text; a word that decode got wrong takes
    its time from its neighbours. The words themselves are never the decode's: a word a
    model mishears would otherwise count as "spoken" and be looked for on the page."""
    from scribe.transcribers.local import load_model

    segments, _ = load_model("base").transcribe(pcm, language="en", word_timestamps=True,
                                                condition_on_previous_text=False, vad_filter=True)
    # Whisper's English normalizer on both sides ("twenty" and "20" are one word).
    heard = [(token, float(w.end)) for s in list(segments) for w in (s.words or [])
             for token in normalize(w.word).split()]
    spoken = normalize(text).split()
    ends: list[float | None] = [None] * len(spoken)
    matcher = difflib.SequenceMatcher(None, spoken, [h[0] for h in heard], autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            ends[block.a + k] = heard[block.b + k][1]
    known = [i for i, end in enumerate(ends) if end is not None]
    filled = np.interp(range(len(spoken)), known, [ends[i] for i in known])
    return [Word(word, float(end)) for word, end in zip(spoken, filled)]


def start_app(data_dir: Path, partials: bool, redis_url: str | None = None) -> ScribeApp:
    """The real app with its default settings (the caller's SCRIBE_ variables dropped, but for
    SCRIBE_PARTIAL_*, so the partial lane's settings can be varied from the command line)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    varied = {k: v for k, v in os.environ.items() if k.startswith("SCRIBE_PARTIAL_")}
    if redis_url:
        varied["SCRIBE_REDIS_URL"] = redis_url
    return ScribeApp(data_dir, data_dir.parent / "app.log", stub=False, inherit=(),
                     **{**varied, "SCRIBE_PARTIALS": "true" if partials else "false"})


class Workers:
    """A redis-server on loopback and one `worker --lanes chunks,partials` (default settings
    but SCRIBE_PARTIAL_*), both stopped by their pids."""

    def __init__(self, work: Path) -> None:
        import subprocess

        port = free_port()
        self.url = f"redis://127.0.0.1:{port}/0"
        self.redis = start_redis(work, port)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SCRIBE_") or k.startswith("SCRIBE_PARTIAL_")}
        env.update({"HF_HUB_OFFLINE": "1", "SCRIBE_LOG_LEVEL": "INFO"})
        self._log = open(work / "worker.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "scribe", "worker", "--redis", self.url,
                                      "--lanes", "chunks,partials"], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        for proc in (self.proc, self.redis):
            proc.terminate()
            try:
                proc.wait(20)
            except Exception:
                proc.kill()
        self._log.close()


def page_words(page) -> list[str]:
    """The transcript lines on a tab (stored and partial), as normalised words."""
    text = page.locator('[data-testid="stMain"]').inner_text(timeout=5000)
    return [w for line in LINE.findall(text) for w in normalize(line).split()]


def seen_times(reference: list[Word], polls: list[tuple[float, list[str]]]) -> list[float | None]:
    """For each reference word, the wall time of the first poll showing it (runs of 2+ words)."""
    ref = [w.text for w in reference]
    first: list[float | None] = [None] * len(ref)
    for at, words in polls:
        for block in difflib.SequenceMatcher(None, ref, words, autojunk=False).get_matching_blocks():
            if block.size >= 2:
                for i in range(block.a, block.a + block.size):
                    first[i] = at if first[i] is None else first[i]
    return first


def wav_offset(first_chunk: np.ndarray, pcm: np.ndarray, search_s: float = 6.0) -> float:
    """Where in the WAV the session's first received sample was (cross-correlation)."""
    span = first_chunk[: 8 * SAMPLE_RATE].astype(np.float64)
    ref = pcm[: span.size + int(search_s * SAMPLE_RATE)].astype(np.float64)
    n = 1 << int(np.ceil(np.log2(ref.size + span.size)))
    corr = np.fft.irfft(np.fft.rfft(ref, n) * np.conj(np.fft.rfft(span, n)), n)[: int(search_s * SAMPLE_RATE)]
    return float(np.argmax(corr)) / SAMPLE_RATE


def first_frames(log: str) -> dict[str, float]:
    out = {}
    for stamp, session in FIRST_FRAME.findall(log):
        when = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
        out[session] = when.timestamp()  # the app logs local time, as does this process
    return out


def _recorder(page, name: str):
    return page.frame_locator(IFRAME).get_by_role("button", name=name)


def _status(page) -> str:
    values = page.get_by_test_id("stMetricValue").all_inner_texts()
    return values[0] if values else ""


def sender_speech(k: int, kind: str = "espeak") -> tuple[np.ndarray, str]:
    """The k-th headless sender's speech (16 kHz, with the WAV's lead and tail) and its text,
    unlike every other session's, so no two sessions say the same thing at once."""
    audio, text = spoken(kind, k)
    return padded(audio), text


async def _send(url: str, pcm16k: np.ndarray, found: dict, delay_s: float = 0.0) -> None:
    """After `delay_s`, stream `pcm16k` in real time (0.1 s a message) into the realtime
    socket, then stop cleanly (commit, close); the session's id goes into `found`."""
    import base64

    import websockets

    await asyncio.sleep(delay_s)

    rate = 24_000
    pcm = np.interp(np.arange(0, pcm16k.size, SAMPLE_RATE / rate), np.arange(pcm16k.size), pcm16k)
    data = (np.clip(pcm, -1, 1) * 32767).astype("<i2")
    # No keepalive pings: on a busy machine a late pong is not a dead peer (it ended the session).
    async with websockets.connect(url.replace("http", "ws", 1) + "/v1/realtime?intent=transcription",
                                  max_size=None, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": rate},
                      "transcription": {"model": "whisper-1", "language": "en"}}}}}))

        async def read() -> None:
            async for message in ws:
                event = json.loads(message)
                if event.get("type") == "session.updated":
                    found["session"] = event["session"]["id"]

        reader = asyncio.create_task(read())
        started, step = time.monotonic(), rate // 10
        for i in range(0, data.size, step):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(data[i:i + step].tobytes()).decode()}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        await asyncio.sleep(1.0)
        reader.cancel()


def start_senders(url: str, speeches: list[np.ndarray], stagger_s: float = 0.0) -> tuple[threading.Thread, list[dict]]:
    """The headless senders, on one event loop in a thread of this process; the k-th (from 1)
    starts `k x stagger_s` after the first tab."""
    found: list[dict] = [{} for _ in speeches]

    async def all_of_them() -> None:
        results = await asyncio.gather(*(_send(url, pcm, f, (k + 1) * stagger_s)
                                         for k, (pcm, f) in enumerate(zip(speeches, found))),
                                       return_exceptions=True)
        for error in (r for r in results if isinstance(r, BaseException)):
            print(f"sender failed: {type(error).__name__}: {error}", file=sys.stderr)

    thread = threading.Thread(target=lambda: asyncio.run(all_of_them()), name="senders", daemon=True)
    thread.start()
    return thread, found


def drive(app: ScribeApp, wav: Path, sessions: int, poll_s: float, audio_s: float,
          speeches: list[np.ndarray] = (), stagger_s: float = 0.0) -> tuple[dict[str, list], float, list[dict]]:
    """Record `sessions` tabs at once, and one headless sender per `speeches` beside them;
    returns {tab title: [(wall time, words)]}, the app's CPU seconds from the first Start to
    the last session done (model loading excluded) and what each sender found (its session)."""
    from playwright.sync_api import sync_playwright

    polls: dict[str, list] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(
            wav, "--disable-background-timer-throttling", "--disable-renderer-backgrounding"))  # every tab at full pace
        pages = {}
        for n in range(sessions):
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(app.url)
            page.get_by_role("heading", name="Record").wait_for(timeout=90_000)
            page.get_by_label("Title").fill(f"bench-{n}")
            page.get_by_label("Title").press("Enter")
            page.wait_for_timeout(800)
            pages[f"bench-{n}"] = page
        cpu_before = _cpu_seconds(app.proc.pid)
        found_rss = {"start_mb": _rss_mb(app.proc.pid)}
        for page in pages.values():
            _recorder(page, "Start").click(timeout=60_000)
        senders, found = start_senders(app.url, list(speeches), stagger_s) if speeches else (None, [])
        started = time.monotonic()
        polls = {title: [] for title in pages}
        stopped: set[str] = set()
        done: set[str] = set()
        while len(done) < len(pages) and time.monotonic() - started < audio_s + 120:
            tick = time.monotonic()
            for title, page in pages.items():
                if title in done:
                    continue
                polls[title].append((time.time(), page_words(page)))
                if title in stopped and _status(page) == "done":
                    done.add(title)
            if time.monotonic() - started > audio_s + 2 and len(stopped) < len(pages):
                for title, page in pages.items():
                    try:
                        _recorder(page, "Stop").click(timeout=30_000)
                    except Exception as exc:  # a tab that never got recording: counted, not fatal
                        print(f"{title}: no Stop button ({type(exc).__name__})", file=sys.stderr)
                        done.add(title)
                    stopped.add(title)
            time.sleep(max(0.0, poll_s - (time.monotonic() - tick)))
        if senders is not None:
            senders.join(audio_s + 60 + stagger_s * len(speeches))
            _wait_stored(app, [f.get("session") for f in found], 120)
        cpu = _cpu_seconds(app.proc.pid) - cpu_before
        found_rss["end_mb"] = _rss_mb(app.proc.pid)
        browser.close()
    return polls, cpu, [*found, found_rss]


def _wait_stored(app: ScribeApp, session_ids: list, timeout: float) -> None:
    """Until the senders' sessions have no chunk waiting (read through the app's API)."""
    import httpx

    deadline = time.monotonic() + timeout
    for session_id in [s for s in session_ids if s]:
        while time.monotonic() < deadline:
            counts = httpx.get(f"{app.url}/api/sessions/{session_id}", timeout=10).json().get("chunks", {})
            if isinstance(counts, dict) and counts.get("pending", 0) + counts.get("processing", 0) == 0:
                break
            time.sleep(0.5)


def _rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of the app process so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def run(partials: bool, sessions: int, poll_s: float, wav: Path, pcm: np.ndarray, text: str,
        reference: list[Word], dump: Path | None = None, kind: str = "espeak", workers: bool = False,
        stagger_s: float = 0.0) -> dict:
    import duckdb

    work = Path(tempfile.mkdtemp(prefix="scribe-live-latency-"))
    load_before = os.getloadavg()
    pool = Workers(work) if workers else None
    worker_cpu_s = None
    try:
        app = start_app(work / "data", partials, pool.url if pool else None)
        senders = [sender_speech(k, kind) for k in range(1, sessions)]
        try:
            worker_before = pool.cpu_seconds() if pool else 0.0
            polls, app_cpu_s, found = drive(app, wav, 1, poll_s, pcm.size / SAMPLE_RATE, [a for a, _ in senders],
                                            stagger_s)
            worker_cpu_s = pool.cpu_seconds() - worker_before if pool else None
            rss = found.pop()
        finally:
            app.stop()
    finally:
        if pool:
            pool.stop()
    log = app.log()
    frames = first_frames(log)
    db = duckdb.connect(str(work / "data" / "scribe.duckdb"), read_only=True)
    titles = dict(db.execute("SELECT title, id FROM sessions").fetchall())
    received = {sid: (float(r), float(w)) for sid, r, w in CAPTURE_END.findall(log)}
    latencies, shown, wers, lane, page_delays = [], [], [], {}, []
    for title, samples in polls.items():
        session_id = titles.get(title)
        if session_id not in frames:
            print(f"{title}: never recorded", file=sys.stderr)
            continue
        session_id = titles[title]
        delta = wav_offset(read_flac(work / "data" / "audio" / session_id / "000000.flac"), pcm)
        wav_start = frames[session_id] - delta
        first = seen_times(reference, samples)
        latencies += [seen - (wav_start + w.end_s) for w, seen in zip(reference, first) if seen is not None]
        shown.append(sum(s is not None for s in first) / len(first))
        stored = " ".join(r[0] for r in db.execute(
            "SELECT text FROM segments WHERE session_id = ? AND transcript = 'live' ORDER BY seq, idx",
            [session_id]).fetchall())
        wers.append(word_error_rate(text, stored))
        for name, values in _chunk_parts(db, session_id, reference, wav_start, delta).items():
            lane.setdefault(name, []).extend(values)
        page_delays += _page_delays(db, session_id, samples)
    for (_audio, said), sent in zip(senders, found):
        sid = sent.get("session")
        if sid is None:
            print("a sender never opened a session", file=sys.stderr)
            continue
        stored = " ".join(r[0] for r in db.execute(
            "SELECT text FROM segments WHERE session_id = ? AND transcript = 'live' ORDER BY seq, idx",
            [sid]).fetchall())
        wers.append(word_error_rate(said, stored))
        lane.setdefault("closed -> stored", []).extend(r[0] for r in db.execute(
            "SELECT finished_at - captured_at FROM chunks WHERE session_id = ? AND status = 'done'", [sid]).fetchall())
    not_stored = db.execute("SELECT count(*) FROM chunks WHERE status <> 'done'").fetchone()[0]
    ids = [f["session"] for f in found if f.get("session")]
    received_s = db.execute(f"SELECT coalesce(sum(duration_ms), 0) / 1000.0 FROM sessions WHERE id IN "
                            f"({','.join('?' * len(ids)) or 'NULL'})", ids).fetchone()[0]
    sent_s = sum(a.size for a, _ in senders) / SAMPLE_RATE
    if dump is not None:
        _dump(dump, db, polls, titles, frames, reference, work, pcm)
    lags = [r[0] for r in db.execute("SELECT lag_s FROM partial_decodes").fetchall()]
    decodes = db.execute("SELECT count(*), coalesce(sum(coalesced), 0), coalesce(sum(paused), 0) "
                         "FROM partial_decodes").fetchone()
    audio_s = db.execute("SELECT sum(duration_ms) / 1000.0 FROM sessions").fetchone()[0] or 0.0
    db.close()
    result = {
        "partials": partials, "sessions": sessions, "poll_s": poll_s, "speech": kind, "workers": workers,
        "stagger_s": stagger_s,
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
        "words": len(reference), "shown_share": round(float(np.mean(shown)), 3) if shown else None,
        "word_p50_s": pct(latencies, 50), "word_p95_s": pct(latencies, 95),
        "word_max_s": round(max(latencies), 2) if latencies else None,
        "partial_lag_p50_s": pct(lags, 50), "partial_lag_p95_s": pct(lags, 95),
        "decode_to_page_p50_s": pct(page_delays, 50), "decode_to_page_p95_s": pct(page_delays, 95),
        "partial_decodes": decodes[0], "partial_skipped_share": round((decodes[1]) / max(1, decodes[0] + decodes[1]), 3),
        "partial_decodes_per_audio_s": round(decodes[0] / audio_s, 2) if audio_s else None,
        "stored_wer": round(float(np.mean(wers)), 3) if wers else None,
        "recorded_sessions": len(wers),
        "chunks_not_stored": not_stored, "senders_audio_not_received_s": round(sent_s - float(received_s), 1),
        "received_over_wall": [round(r / w, 3) for r, w in received.values() if w],
        "app_cpu_s_per_audio_s": round(app_cpu_s / audio_s, 3) if audio_s else None,
        "worker_cpu_s_per_audio_s": (round(worker_cpu_s / audio_s, 3)
                                     if worker_cpu_s is not None and audio_s else None),
        "app_rss_mb": [round(rss["start_mb"]), round(rss["end_mb"])],
        "chunk_lane": {name: {"p50": pct(v, 50), "p95": pct(v, 95), "n": len(v)} for name, v in lane.items()},
    }
    shutil.rmtree(work, ignore_errors=True)
    return result


def _page_delays(db, session_id: str, samples: list[tuple[float, list[str]]]) -> list[float]:
    """For each partial decode that added words, seconds from its text being ready to the
    first poll after it whose transcript differs from the poll before (the page's share of
    a word's latency: the fragment's refresh, the browser, and this benchmark's polling)."""
    changes, before = [], None
    for at, words in samples:
        if words != before:
            changes.append(at)
        before = words
    delays, last = [], (None, 0)
    for seq, produced_at, words in db.execute(
            "SELECT seq, produced_at, words FROM partial_decodes WHERE session_id = ? ORDER BY produced_at",
            [session_id]).fetchall():
        if seq != last[0] or words > last[1]:
            later = [c for c in changes if c >= produced_at]
            if later:
                delays.append(later[0] - produced_at)
        last = (seq, words)
    return delays


def _dump(path: Path, db, polls: dict, titles: dict, frames: dict, reference: list[Word], work: Path,
          pcm: np.ndarray) -> None:
    """Everything a run saw, for looking into where a word's seconds went (one JSON file)."""
    sessions = {}
    for title, samples in polls.items():
        session_id = titles.get(title)
        if session_id not in frames:
            continue
        delta = wav_offset(read_flac(work / "data" / "audio" / session_id / "000000.flac"), pcm)
        decodes = db.execute("SELECT seq, produced_at, audio_end_ms, lag_s, decode_s, words FROM partial_decodes "
                             "WHERE session_id = ? ORDER BY produced_at", [session_id]).fetchall()
        chunks = db.execute("SELECT seq, start_ms, end_ms, captured_at, enqueued_at, started_at, finished_at "
                            "FROM chunks WHERE session_id = ? ORDER BY seq", [session_id]).fetchall()
        sessions[title] = {"first_frame": frames[session_id], "wav_offset_s": delta, "polls": samples,
                           "decodes": decodes, "chunks": chunks}
    path.write_text(json.dumps({"reference": [[w.text, w.end_s] for w in reference], "sessions": sessions}))


def _chunk_parts(db, session_id: str, reference: list[Word], wav_start: float,
                 delta: float) -> dict[str, list[float]]:
    """Per chunk: last word spoken -> chunk closed (the chunker's wait), closed -> durable
    (writer), durable -> claimed (queue), claimed -> stored (processing), closed -> stored."""
    rows = db.execute("""SELECT c.end_ms, c.captured_at, c.enqueued_at, c.started_at, c.finished_at,
            (SELECT count(*) FROM segments s WHERE s.session_id = c.session_id AND s.seq = c.seq) AS n
        FROM chunks c WHERE c.session_id = ? AND c.status = 'done' ORDER BY c.seq""", [session_id]).fetchall()
    parts: dict[str, list[float]] = {"last word -> closed": [], "closed -> durable": [], "queue": [],
                                     "processing": [], "closed -> stored": []}
    for end_ms, captured, enqueued, started, finished, n_segments in rows:
        if n_segments:  # session time 0 is WAV time `delta`
            ends = [w.end_s for w in reference if w.end_s <= end_ms / 1000 + delta]
            if ends:
                parts["last word -> closed"].append(captured - (wav_start + max(ends)))
        parts["closed -> durable"].append(enqueued - captured)
        parts["queue"].append(started - enqueued)
        parts["processing"].append(finished - started)
        parts["closed -> stored"].append(finished - captured)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, action="append", help="simultaneous tabs (repeatable)")
    parser.add_argument("--partials", choices=("on", "off"), action="append", help="repeatable")
    parser.add_argument("--speech", choices=("espeak", "human"), default="espeak",
                        help="espeak-ng voices, or real recorded people (benchmarks/human_speech.py)")
    parser.add_argument("--workers", action="store_true",
                        help="chunks and partials decoded by a Redis worker beside the app")
    parser.add_argument("--poll", type=float, default=0.3, help="seconds between reads of each tab")
    parser.add_argument("--stagger", type=float, default=0.0,
                        help="seconds between the starts of the sessions (0: all at once, so their "
                             "chunks close together)")
    parser.add_argument("--json", type=Path, help="append each run's result to this file")
    parser.add_argument("--dump", type=Path, help="write every poll, decode and chunk of the last run here (JSON)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists() or not speech.have_espeak():
        sys.exit("needs /usr/bin/chromium and espeak-ng")
    if args.speech == "human" and not human_speech.available():
        sys.exit("--speech human needs: apt-get install pocketsphinx-testdata asterisk-core-sounds-en "
                 "asterisk-core-sounds-en-wav")
    wav, pcm, text = build_mic(args.speech)
    reference = reference_words(pcm, text)
    print(f"evaluation audio {pcm.size / SAMPLE_RATE:.1f} s, {len(reference)} words", flush=True)
    for sessions in args.sessions or [1]:
        for mode in args.partials or ["on", "off"]:
            result = run(mode == "on", sessions, args.poll, wav, pcm, text, reference, args.dump,
                         args.speech, args.workers, args.stagger)
            print(json.dumps(result), flush=True)
            if args.json:
                with args.json.open("a") as out:
                    out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
