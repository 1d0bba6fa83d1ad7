"""Memory of the real app over a long run of several live sessions with live words.

    HF_HUB_OFFLINE=1 python3 benchmarks/live_soak.py [--sessions 4] [--minutes 120]
        [--sample 30] [--growth-from 0.25] [--json out.json]

Starts the real app with its default settings (chunk lane and partial lane `base`, speaker
labels, pause:15) on a loopback port with its own data folder, and `--sessions` headless
senders that stream speech in real time into its realtime socket (`/v1/realtime`, the same
LiveCapture, chunk lane, partial lane and speaker labeler as a browser recording) for
`--minutes`. Each sender loops its own speech: real recorded people for the even ones, espeak-ng
voices reading the evaluation turns for the odd ones (`live_latency.spoken`), with a few
seconds of silence between passes, as between turns of a meeting.

Every `--sample` seconds it reads the app's RSS and CPU time, where its memory is by the
app's own account (`/api/health`'s `memory`: glibc malloc's bytes in use, free space kept in
its heaps, large blocks mapped on their own, Python's blocks in use, DuckDB's buffers), and its
resident memory by kind of mapping (/proc/PID/smaps: glibc's main heap, its other arenas, other
anonymous memory, files). At the end it stops the senders, waits until every chunk is stored,
and prints one JSON line: RSS at start, after warm-up and at the end, the growth slope in MB/h
fitted (least squares) over the samples after `--growth-from` of the run (and the same fit over
each 5 minutes' lowest sample: the memory the app keeps, apart from the buffers of chunks in
flight), chunks stored and not stored, audio received against wall time per session, partial
decodes, the app's CPU per session, and the same growth fit of each memory figure (what grows:
live data, kept free space, or memory outside malloc).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_latency import CAPTURE_END, _cpu_seconds, _rss_mb, _wait_stored, spoken, start_app
from tools import get_json

from scribe.audio import SAMPLE_RATE

RATE = 24_000
GAP_S = 3.0


def sender_pcm(k: int) -> np.ndarray:
    """Sender k's speech as PCM16 at 24 kHz, with `GAP_S` of silence after it (one pass)."""
    audio, _ = spoken("human" if k % 2 == 0 else "espeak", k)
    audio = np.concatenate([audio, np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)])
    pcm = np.interp(np.arange(0, audio.size, SAMPLE_RATE / RATE), np.arange(audio.size), audio)
    return (np.clip(pcm, -1, 1) * 32767).astype("<i2")


async def _send_for(url: str, data: np.ndarray, seconds: float, found: dict, stop: threading.Event) -> None:
    """Loop `data` into one realtime session in real time for `seconds`, then commit and close."""
    import websockets

    async with websockets.connect(url.replace("http", "ws", 1) + "/v1/realtime?intent=transcription",
                                  max_size=None, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": RATE},
                      "transcription": {"model": "whisper-1", "language": "en"}}}}}))

        async def read() -> None:
            async for message in ws:  # drain the events so the server never waits on us
                event = json.loads(message)
                if event.get("type") == "session.updated":
                    found["session"] = event["session"]["id"]

        reader = asyncio.create_task(read())
        started, step, total = time.monotonic(), RATE // 10, int(seconds * RATE)
        for i in range(0, total, step):
            if stop.is_set():
                break
            await asyncio.sleep(max(0.0, started + i / RATE - time.monotonic()))
            at = i % data.size
            piece = data[at:at + step]
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(piece.tobytes()).decode()}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        await asyncio.sleep(2.0)
        reader.cancel()


def start_senders(url: str, sessions: int, seconds: float,
                  stop: threading.Event) -> tuple[threading.Thread, list[dict]]:
    found: list[dict] = [{} for _ in range(sessions)]
    pcms = [sender_pcm(k) for k in range(sessions)]

    async def all_of_them() -> None:
        results = await asyncio.gather(*(_send_for(url, pcm, seconds, f, stop) for pcm, f in zip(pcms, found)),
                                       return_exceptions=True)
        for error in (r for r in results if isinstance(r, BaseException)):
            print(f"sender failed: {type(error).__name__}: {error}", file=sys.stderr)

    thread = threading.Thread(target=lambda: asyncio.run(all_of_them()), name="senders", daemon=True)
    thread.start()
    return thread, found


def slope_mb_per_h(samples: list[tuple[float, float, float]], growth_from: float) -> float | None:
    """Least-squares RSS slope over the samples after `growth_from` of the run (MB/h)."""
    if len(samples) < 3:
        return None
    t0, t1 = samples[0][0], samples[-1][0]
    tail = [(t, rss) for t, rss, _ in samples if t >= t0 + growth_from * (t1 - t0)]
    if len(tail) < 3:
        return None
    hours = np.array([t for t, _ in tail]) / 3600
    return round(float(np.polyfit(hours, np.array([r for _, r in tail]), 1)[0]), 1)


FLOOR_WINDOW_S = 300.0


def floors(samples: list[tuple[float, float, float]], window_s: float = FLOOR_WINDOW_S) -> list[tuple[float, float, float]]:
    """The lowest sample of each `window_s` stretch: what the app keeps, not the buffers of the
    chunks it happened to be transcribing when sampled (those are freed, and trimmed, seconds later)."""
    windows: dict[int, tuple[float, float, float]] = {}
    for sample in samples:
        key = int(sample[0] // window_s)
        if key not in windows or sample[1] < windows[key][1]:
            windows[key] = sample
    return [windows[k] for k in sorted(windows)]


def run(sessions: int, minutes: float, sample_s: float, growth_from: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="scribe-live-soak-"))
    app = start_app(work / "data", partials=True)
    stop = threading.Event()
    samples: list[tuple[float, float, float]] = []
    allocator: list[tuple[float, dict]] = []
    try:
        pid, started = app.proc.pid, time.monotonic()
        thread, found = start_senders(app.url, sessions, minutes * 60, stop)
        cpu0 = _cpu_seconds(pid)
        while thread.is_alive():
            samples.append((time.monotonic() - started, _rss_mb(pid), _cpu_seconds(pid) - cpu0))
            allocator.append((samples[-1][0], {**_memory(app.url), **mappings_mb(pid)}))
            print(f"{samples[-1][0] / 60:6.1f} min  rss {samples[-1][1]:7.1f} MB  cpu {samples[-1][2]:8.1f} s  "
                  f"{allocator[-1][1]}", file=sys.stderr, flush=True)
            thread.join(sample_s)
        wall = time.monotonic() - started
        _wait_stored(app, [f.get("session") for f in found], 600)
        cpu = _cpu_seconds(pid) - cpu0
        rss_end = _rss_mb(pid)
    finally:
        stop.set()
        app.stop()
    try:
        return {**_report(app, work, samples, sessions, wall, cpu, rss_end, growth_from),
                **_allocator_report(allocator, growth_from)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _memory(url: str) -> dict:
    """The app's own account of its memory (`/api/health`), {} if it did not answer."""
    try:
        status, body = get_json(f"{url}/api/health")
    except OSError:
        return {}
    return body.get("memory", {}) if status == 200 else {}


MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")
ARENA_HEAP = 64 * 2**20
"""glibc maps each heap of an arena after the first as a 64 MB reservation aligned on 64 MB:
the part in use, then the rest without access; the first arena is `[heap]`."""


def mappings_mb(pid: int) -> dict[str, float]:
    """The process's resident memory by kind of mapping (/proc/PID/smaps): glibc's main heap,
    its other arenas' heaps, other anonymous mappings (blocks malloc mapped on their own,
    Python's arenas, thread stacks, libraries' own pools), and files (code, models)."""
    maps = []  # [start, end, perms, name, rss_kb]
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            if match := MAPPING.match(line):
                maps.append([int(match[1], 16), int(match[2], 16), match[3], match[4], 0])
            elif line.startswith("Rss:") and maps:
                maps[-1][4] = int(line.split()[1])
    found = {"heap": 0.0, "arenas": 0.0, "anon_other": 0.0, "file": 0.0}
    for i, (start, end, _, name, rss_kb) in enumerate(maps):
        nxt = maps[i + 1] if i + 1 < len(maps) else None
        reserved = nxt[1] if nxt and nxt[0] == end and nxt[2] == "---p" and not nxt[3] else end
        kind = ("heap" if name == "[heap]" else "file" if name.startswith("/") else None if name else
                "arenas" if start % ARENA_HEAP == 0 and reserved - start == ARENA_HEAP else "anon_other")
        if kind is not None:
            found[kind] += rss_kb / 1024
    return {k: round(v, 1) for k, v in found.items()}


def _allocator_report(allocator: list[tuple[float, dict]], growth_from: float) -> dict:
    """The growth fit (per hour) of each `/api/health` memory figure, and every sample."""
    growth = {}
    for key in ("malloc_in_use_mb", "malloc_free_mb", "malloc_mapped_mb", "python_blocks", "database_mb",
                "heap", "arenas", "anon_other", "file"):
        series = [(t, m[key], 0.0) for t, m in allocator if m.get(key) is not None]
        growth[f"{key}_per_h"] = slope_mb_per_h(series, growth_from)
    return {"allocator_growth": growth, "allocator_samples": [(round(t), m) for t, m in allocator]}


def _report(app, work: Path, samples, sessions: int, wall: float, cpu: float, rss_end: float,
            growth_from: float) -> dict:
    db = app.db()
    stored, not_stored = db.execute("SELECT count(*) FILTER (WHERE status = 'done'), "
                                    "count(*) FILTER (WHERE status <> 'done') FROM chunks").fetchone()
    decodes = db.execute("SELECT count(*) FROM partial_decodes").fetchone()[0]
    received = [round(float(r) / float(w), 3) for _, r, w in CAPTURE_END.findall(app.log())]
    warm = next((rss for t, rss, _ in samples if t >= growth_from * samples[-1][0]), None)
    return {"sessions": sessions, "minutes": round(wall / 60, 1), "rss_start_mb": round(samples[0][1]),
            "rss_after_warm_up_mb": None if warm is None else round(warm), "rss_end_mb": round(rss_end),
            "growth_mb_per_h": slope_mb_per_h(samples, growth_from),
            "floor_growth_mb_per_h": slope_mb_per_h(floors(samples), growth_from), "chunks_stored": stored,
            "chunks_not_stored": not_stored, "received_over_wall": received, "partial_decodes": decodes,
            "app_cpu_per_session": round(cpu / wall / sessions, 3),
            "samples": [(round(t), round(r, 1)) for t, r, _ in samples]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between RSS samples")
    parser.add_argument("--growth-from", type=float, default=0.25,
                        help="fraction of the run after which the RSS slope is fitted")
    parser.add_argument("--json", type=Path, help="append the result to this file")
    args = parser.parse_args()
    result = run(args.sessions, args.minutes, args.sample, args.growth_from)
    print(json.dumps(result), flush=True)
    if args.json:
        with args.json.open("a") as out:
            out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
