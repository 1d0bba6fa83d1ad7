"""Ingest capacity: how many live WebRTC sessions one process receives in real time.

A sender process opens N aiortc peers on loopback, each sending an Opus track
(20 ms frames of speech-like audio, paced in real time). The receiver process
answers each offer with its own RTCPeerConnection and consumes the track
through the same path the Record page uses: streamlit-webrtc's
`AsyncAudioProcessTrack` (a per-connection processor thread calling
`recv_queued` with every queued frame) behind a `MediaRelay`, drained by an
`AudioReceiver` in SENDONLY style. The processor resamples, chunks and hands
chunks to `Pipeline.submit_nowait`, into DuckDB with the stub backend.

The processor is `scribe.capture.LiveCapture` when that module imports;
otherwise a minimal processor doing the same receive path (FrameResampler ->
Chunker -> submit_nowait). The output says which one ran.

Per N it reports: audio sent vs received (lost), RTP gaps, how far the
slowest session's received audio trails the wall clock (lateness), chunks
submitted vs stored, receiver CPU ms per audio second per session and MB per
session. A step passes with no audio lost and lateness under 1 s.

    python3 benchmarks/ingest_capacity.py --steps 10,30,50,70 --seconds 45
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av  # noqa: E402
import psutil  # noqa: E402
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.mediastreams import MediaStreamError  # noqa: E402

from scribe import backends  # noqa: E402
from scribe.bench import FRAME_SECONDS, FrameSource, speechlike_loop  # noqa: E402

POLICY = "pause:15"


# -- sender process -----------------------------------------------------------------
class LoopTrack(MediaStreamTrack):
    """Speech-like 48 kHz stereo frames, paced in real time (like a browser mic)."""

    kind = "audio"

    def __init__(self, source: FrameSource, frames: int) -> None:
        super().__init__()
        self.source = source
        self.frames = frames
        self.sent = 0
        self.lag_max_s = 0.0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.sent >= self.frames:
            raise MediaStreamError  # the sender's RTP loop ends the track cleanly
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.sent * FRAME_SECONDS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:  # the sender itself is behind (its CPU share on a shared machine)
            self.lag_max_s = max(self.lag_max_s, -delay)
        frame = self.source.frame(self.sent)
        self.sent += 1
        return frame


async def _send(n: int, seconds: float, offers: mp.Queue, answers: mp.Queue, done: mp.Queue) -> None:
    loop_pcm = speechlike_loop()
    frames = int(seconds / FRAME_SECONDS)
    peers, tracks = [], []
    for i in range(n):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track = LoopTrack(FrameSource(loop_pcm, (i * 7919 * 960) % (len(loop_pcm) - 960)), frames)
        pc.addTrack(track)
        await pc.setLocalDescription(await pc.createOffer())
        offers.put((i, pc.localDescription.sdp))
        sdp = await asyncio.get_running_loop().run_in_executor(None, answers.get)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        peers.append(pc)
        tracks.append(track)
    deadline = time.monotonic() + seconds * 2 + 30
    while any(t.sent < frames for t in tracks) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)  # a peer whose connection failed never sends: stop waiting
    stuck = sum(1 for t in tracks if t.sent == 0)
    if stuck:
        print(f"sender: {stuck} of {n} peers never started sending (connection failed)", file=sys.stderr)
    await asyncio.sleep(1.0)  # let the last packets leave
    done.put(([t.sent * FRAME_SECONDS for t in tracks], max(t.lag_max_s for t in tracks)))
    for pc in peers:
        await pc.close()


def sender_main(n: int, seconds: float, offers: mp.Queue, answers: mp.Queue, done: mp.Queue) -> None:
    asyncio.run(_send(n, seconds, offers, answers, done))


# -- receiver ---------------------------------------------------------------------------
class MinimalCapture:
    """The receive path without the page: resample, chunk, submit_nowait (processor thread)."""

    def __init__(self, session_id: str, pipeline) -> None:
        from scribe.audio import FrameResampler
        from scribe.chunking import Chunker, parse_policy

        self.session_id = session_id
        self.pipeline = pipeline
        self._resampler = FrameResampler()
        self._chunker = Chunker(session_id, parse_policy(POLICY))
        self.received_seconds = 0.0
        self.first_frame_at: float | None = None
        self.chunks_submitted = 0
        self.gaps = 0
        self._next_pts: int | None = None

    async def recv_queued(self, frames: list[av.AudioFrame]) -> list[av.AudioFrame]:
        """Processor thread (streamlit-webrtc's async_media_processor_N)."""
        self.first_frame_at = self.first_frame_at or time.monotonic()
        for frame in frames:
            self.received_seconds += frame.samples / frame.sample_rate
            if frame.pts is not None and self._next_pts is not None and frame.pts > self._next_pts:
                self.gaps += 1
            self._next_pts = None if frame.pts is None else frame.pts + frame.samples
            for chunk in self._chunker.push(self._resampler.push(frame)):
                self.pipeline.submit_nowait(chunk)
                self.chunks_submitted += 1
        return frames[-1:]

    def finish(self) -> None:
        for chunk in self._chunker.push(self._resampler.flush()) + self._chunker.finish():
            self.pipeline.submit_nowait(chunk)
            self.chunks_submitted += 1


def _make_capture(storage, pipeline, i: int):
    """LiveCapture from scribe.capture when it imports, else the minimal processor."""
    try:
        from scribe.capture import LiveRegistry  # noqa: F401
        from scribe.chunking import parse_policy

        registry = _make_capture.registry = getattr(_make_capture, "registry", None) or \
            LiveRegistry(max_sessions=10_000, watchdog=False)
        return registry.open(storage, pipeline, title=f"ingest {i}", policy=parse_policy(POLICY)), \
            "scribe.capture.LiveCapture"
    except ImportError:
        row = storage.create_session(title=f"ingest {i}", source="bench", backend=backends.STAND_IN,
                                     model=backends.STAND_IN, chunk_seconds=15, chunk_policy=POLICY)
        return MinimalCapture(row.id, pipeline), "MinimalCapture (scribe.capture not merged)"


async def _receive(n: int, seconds: float, folder: Path) -> dict:
    from streamlit_webrtc.process import AsyncAudioProcessTrack
    from streamlit_webrtc.receive import AudioReceiver
    from aiortc.contrib.media import MediaRelay

    from scribe.pipeline import Pipeline, PipelineOptions
    from scribe.storage import Storage
    from scribe.transcribers.stub import StubTranscriber

    storage = Storage(folder / "scribe.duckdb")
    pipeline = Pipeline(storage, StubTranscriber((0.5, 1.5)), audio_dir=folder / "audio",
                        options=PipelineOptions(max_concurrency=32)).start()
    relay = MediaRelay()
    offers, answers, done = mp.Queue(), mp.Queue(), mp.Queue()
    sender = mp.Process(target=sender_main, args=(n, seconds, offers, answers, done), daemon=True)
    process = psutil.Process()
    rss0 = process.memory_info().rss
    sender.start()
    captures, peers, receivers, kind = [], [], [], ""
    loop = asyncio.get_running_loop()
    for _ in range(n):
        i, sdp = await loop.run_in_executor(None, offers.get)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        capture, kind = _make_capture(storage, pipeline, i)
        captures.append(capture)

        @pc.on("track")
        def on_track(track, capture=capture):
            processed = AsyncAudioProcessTrack(track=relay.subscribe(track), processor=capture)
            receiver = AudioReceiver(queue_maxsize=1)
            receiver.addTrack(relay.subscribe(processed))
            receiver.start()
            receivers.append(receiver)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        answers.put(pc.localDescription.sdp)
        peers.append(pc)
    cpu0 = sum(process.cpu_times()[:2])
    t0 = time.monotonic()
    lateness = 0.0
    sent = None
    while sent is None:
        await asyncio.sleep(1.0)
        now = time.monotonic()
        for c in captures:  # only while the sender is still sending this session's audio
            if c.first_frame_at is not None and c.received_seconds < seconds - 0.5:
                lateness = max(lateness, (now - c.first_frame_at) - c.received_seconds)
        try:
            sent = done.get_nowait()
        except queue.Empty:
            sent = None
    wall = time.monotonic() - t0
    cpu = sum(process.cpu_times()[:2]) - cpu0
    rss = process.memory_info().rss
    await asyncio.sleep(1.5)
    for receiver in receivers:
        receiver.stop()
    for pc in peers:
        await pc.close()
    sent, sender_lag = sent
    received = [c.received_seconds for c in captures]
    for c in captures:
        (c.finish if hasattr(c, "finish") else lambda c=c: c.end("bench over"))()
    pipeline.flush_intake(120)
    pipeline.wait_idle(300)
    submitted = sum(c.chunks_submitted for c in captures)
    stored = storage.cursor().execute("SELECT count(*) FROM chunks WHERE status = 'done'").fetchone()[0]
    pipeline.stop()
    storage.close()
    sender.join(10)
    audio_s = sum(received)
    lost_s = max(0.0, sum(sent) - audio_s)
    return {
        "sessions": n, "seconds": seconds, "processor": kind,
        "sessions_receiving": sum(1 for c in captures if c.first_frame_at is not None),
        "audio_sent_s": round(sum(sent), 1), "audio_received_s": round(audio_s, 1),
        "audio_lost_s": round(lost_s, 2), "rtp_gaps": sum(getattr(c, "gaps", 0) for c in captures),
        "lateness_max_s": round(lateness, 2), "sender_lag_max_s": round(sender_lag, 2),
        "chunks_submitted": submitted, "chunks_stored": int(stored),
        "cpu_percent": round(cpu / wall * 100, 1),
        "cpu_ms_per_audio_s_per_session": round(cpu * 1000 / max(audio_s, 1e-9), 2),
        "mb_per_session": round((rss - rss0) / 2**20 / n, 2), "rss_mb": round(rss / 2**20, 1),
        # up to 0.2 s per session may still sit in aiortc's jitter buffer when the sender stops
        # lateness the sender caused itself (starved of CPU) is not the receiver's
        "ok": lost_s <= 0.2 * n and lateness - sender_lag < 1.0 and submitted == stored
        and sum(1 for c in captures if c.first_frame_at is not None) == n,
    }


def run_step(n: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="scribe-ingest-") as folder:
        return asyncio.run(_receive(n, seconds, Path(folder)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="10,30,50", help="comma-separated session counts")
    parser.add_argument("--seconds", type=float, default=45.0, help="audio seconds per session")
    args = parser.parse_args()
    print("| sessions | audio lost s | RTP gaps | lateness max s | sender lag max s | "
          "chunks stored/submitted | CPU % | CPU ms per audio s per session | MB per session | ok |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in [int(s) for s in args.steps.split(",")]:
        r = run_step(n, args.seconds)
        print(f"| {n} | {r['audio_lost_s']} | {r['rtp_gaps']} | {r['lateness_max_s']} | "
              f"{r['sender_lag_max_s']} | "
              f"{r['chunks_stored']}/{r['chunks_submitted']} | {r['cpu_percent']} | "
              f"{r['cpu_ms_per_audio_s_per_session']} | {r['mb_per_session']} | {r['ok']} |", flush=True)
        print(json.dumps(r), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    mp.set_start_method("spawn")
    raise SystemExit(main())
