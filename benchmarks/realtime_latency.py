"""Word latency of the realtime transcription socket (`/v1/realtime?intent=transcription`).

    HF_HUB_OFFLINE=1 python3 benchmarks/realtime_latency.py [--runs 1] [--json out.json]

Starts the real app (`streamlit run app.py`, default settings: chunk lane and partial lane
`base`, pause:15) on a free loopback port with its own data folder, opens one realtime
socket, configures a transcription session and streams the same espeak-ng speech as
`benchmarks/live_latency.py` (its `EVAL_TURNS`, with 2 s of silence before and 20 s after) as
100 ms PCM16 pieces at 24 kHz, paced at real time against the wall clock. Then it commits,
waits until every committed item is completed, and closes.

The client's text at any moment is, item by item in order, the completed transcript of an item
once it arrived, else the deltas received for it. Every event that changed it is a "poll" for
`live_latency.seen_times` (a word counts as shown once it appears in a run of 2+ aligned
words); word end times in the audio come from `live_latency.reference_words` (a whole-file
decode with word timestamps aligned to the text). The audio's sample 0 is sent at t0, so
    latency = first shown - (t0 + the word's end in the audio).
Printed: first delta latency (the first delta holding a spoken word - the first sound of speech
in the audio), word latency
p50/p95/max over all words, the share of words first shown by a delta (before their chunk was
stored), chunk lane latency (committed -> completed) p50/p95, words never shown, the stored
transcript's WER, and the load average.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import live_latency
import speech
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from scribe.wer import normalize, word_error_rate

RATE = 24_000
PIECE_S = 0.1
SESSION = {"type": "transcription", "audio": {"input": {
    "format": {"type": "audio/pcm", "rate": RATE}, "transcription": {"model": "whisper-1", "language": "en"}}}}
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"


def stream(url: str, pcm: bytes) -> tuple[float, list[tuple[float, dict]]]:
    """Send `pcm` at real time; returns t0 (wall time of sample 0) and every (time, event)."""
    events: list[tuple[float, dict]] = []
    with connect(url, open_timeout=60, max_size=None) as ws:
        reader = threading.Thread(target=_read, args=(ws, events), daemon=True)
        reader.start()
        ws.send(json.dumps({"type": "session.update", "session": SESSION}))
        _wait(events, lambda: any(e["type"] == "session.updated" for _, e in events), 60)
        step = int(PIECE_S * RATE) * 2
        t0 = time.time()
        for n, start in enumerate(range(0, len(pcm), step)):
            time.sleep(max(0.0, t0 + n * PIECE_S - time.time()))
            ws.send(json.dumps({"type": "input_audio_buffer.append",
                                "audio": base64.b64encode(pcm[start:start + step]).decode()}))
        committed_at = time.time()
        ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        # The last commit answers committed (or, with nothing left to commit, an error).
        _wait(events, lambda: any(at >= committed_at and e["type"] in ("input_audio_buffer.committed", "error")
                                  for at, e in list(events)), 60)
        _wait(events, lambda: _all_completed(events), 600)
    reader.join(10)
    return t0, events


def _read(ws, out: list) -> None:
    """Reader thread: every server event with its arrival time, until the socket closes."""
    try:
        while True:
            message = ws.recv()  # stamped on arrival, not when the wait for it began
            out.append((time.time(), json.loads(message)))
    except ConnectionClosed:  # the socket closed: the run is over
        return


def _wait(events: list, done, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out; events: {[e['type'] for _, e in events][-20:]}")
        time.sleep(0.05)


def _all_completed(events: list) -> bool:
    committed = {e["item_id"] for _, e in list(events) if e["type"] == "input_audio_buffer.committed"}
    completed = {e["item_id"] for _, e in list(events) if e["type"] in (COMPLETED, FAILED)}
    return bool(committed) and committed <= completed


def client_text_polls(events: list[tuple[float, dict]]) -> tuple[list[tuple[float, list[str]]], list[float]]:
    """The client's text after each delta/completed event, as normalised words; and which of
    those polls came from a delta (1.0) or a completion (0.0)."""
    items: dict[str, dict[str, str | bool]] = {}
    order: list[str] = []
    polls, kinds = [], []
    for at, event in events:
        if event["type"] not in (DELTA, COMPLETED):
            continue
        item = items.setdefault(event["item_id"], {"text": "", "done": False})
        if event["item_id"] not in order:
            order.append(event["item_id"])
        if event["type"] == DELTA and not item["done"]:
            item["text"] = str(item["text"]) + event["delta"]
        elif event["type"] == COMPLETED:
            item["text"], item["done"] = event["transcript"], True
        ordered = sorted(order, key=lambda i: int(i.rsplit("_", 1)[1]))
        polls.append((at, normalize(" ".join(str(items[i]["text"]) for i in ordered)).split()))
        kinds.append(1.0 if event["type"] == DELTA else 0.0)
    return polls, kinds


def speech_onset(pcm16k: np.ndarray, floor_dbfs: float = -40.0) -> float:
    """Seconds into the audio of the first 10 ms frame louder than `floor_dbfs` (the first sound of speech)."""
    frames = pcm16k[: pcm16k.size // 160 * 160].reshape(-1, 160)
    loud = np.flatnonzero(10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12) > floor_dbfs)
    return float(loud[0]) * 0.01 if loud.size else 0.0


def measure(t0: float, events: list[tuple[float, dict]], reference: list, text: str, pcm16k: np.ndarray) -> dict:
    polls, kinds = client_text_polls(events)
    seen = live_latency.seen_times(reference, polls)
    latencies = [at - (t0 + word.end_s) for word, at in zip(reference, seen) if at is not None]
    by_delta = [kinds[[p[0] for p in polls].index(at)] for at in seen if at is not None]
    spoken = {w.text for w in reference}  # a delta on silence or noise ("you") is not a first word
    first_delta = next(at for at, e in events if e["type"] == DELTA and spoken & set(normalize(e["delta"]).split()))
    onset = t0 + speech_onset(pcm16k)
    committed = {e["item_id"]: at for at, e in events if e["type"] == "input_audio_buffer.committed"}
    lane = [at - committed[e["item_id"]] for at, e in events if e["type"] == COMPLETED and e["item_id"] in committed]
    stored = " ".join(e["transcript"] for _, e in sorted(
        ((at, e) for at, e in events if e["type"] == COMPLETED), key=lambda p: int(p[1]["item_id"].rsplit("_", 1)[1]))
        if e["transcript"])
    return {"first_delta_s": round(first_delta - onset, 2),
            "words": len(reference), "words_never_shown": sum(at is None for at in seen),
            "word_latency_p50_s": live_latency.pct(latencies, 50), "word_latency_p95_s": live_latency.pct(latencies, 95),
            "word_latency_max_s": round(max(latencies), 2) if latencies else None,
            "first_shown_by_delta": round(float(np.mean(by_delta)), 2) if by_delta else None,
            "chunk_lane_p50_s": live_latency.pct(lane, 50), "chunk_lane_p95_s": live_latency.pct(lane, 95),
            "items": len(committed), "deltas": sum(e["type"] == DELTA for _, e in events),
            "stored_wer": round(word_error_rate(text, stored), 3), "load_average": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    _, pcm16k, text = live_latency.build_mic()
    reference = live_latency.reference_words(pcm16k, text)
    pcm = speech.pcm16_at(pcm16k, RATE)
    results = []
    for run in range(args.runs):
        work = Path(tempfile.mkdtemp(prefix="scribe-rt-bench-"))  # kept: its app.log
        app = live_latency.start_app(work / "data", partials=True)
        try:
            t0, events = stream(f"ws://127.0.0.1:{app.port}/v1/realtime?intent=transcription", pcm)
        finally:
            app.stop()
            print(f"app log: {work / 'app.log'}", flush=True)
        results.append({**measure(t0, events, reference, text, pcm16k), "t0": t0, "events": events})
        print(f"run {run + 1}: {json.dumps({k: v for k, v in results[-1].items() if k != 'events'})}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
