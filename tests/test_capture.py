"""The WebRTC bridge without a browser: synthetic aiortc-shaped frames into LiveCapture."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import av
import numpy as np
import pytest

from scribe.capture import LiveCapture, LiveRegistry, rtc_configuration
from scribe.chunking import FixedPolicy
from scribe.config import Settings
from scribe.core import ChunkRow
from scribe.errors import SessionLimitError
from scribe.pipeline import Pipeline
from scribe.runtime import configure_logging
from scribe.transcribers.stub import StubTranscriber

RATE = 48_000
FRAME = 960  # aiortc's Opus decoder hands out 20 ms of s16 stereo at 48 kHz


def frames(seconds: float, *, start_pts: int = 0, freq: float = 300.0) -> list[av.AudioFrame]:
    """A tone as aiortc delivers it: 20 ms s16 stereo frames with RTP-style pts."""
    n = int(seconds * RATE) // FRAME
    t = np.arange(n * FRAME) / RATE
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    out = []
    for i in range(n):
        block = pcm[i * FRAME:(i + 1) * FRAME]
        frame = av.AudioFrame.from_ndarray(np.repeat(block, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = RATE
        frame.pts = start_pts + i * FRAME
        out.append(frame)
    return out


def feed(capture: LiveCapture, items: list[av.AudioFrame], seed: int = 0) -> None:
    """In uneven batches, as the processor thread gets them from its queue."""
    rng = np.random.default_rng(seed)
    i = 0
    while i < len(items):
        n = int(rng.integers(1, 6))
        asyncio.run(capture.recv_queued(items[i:i + n]))
        i += n


@pytest.fixture
def pipeline(storage, settings):
    pipe = Pipeline(storage, StubTranscriber(), audio_dir=settings.audio_dir).start()
    yield pipe
    pipe.stop()


@pytest.fixture
def registry():
    return LiveRegistry(3, watchdog=False)


def settle(pipeline: Pipeline) -> None:
    assert pipeline.wait_idle(20)


def wait_status(storage, session_id: str, status: str, timeout: float = 10.0) -> None:
    """The session reaches `status` (a worker marks it done just after the queue empties)."""
    deadline = time.monotonic() + timeout
    while storage.get_session(session_id).status != status and time.monotonic() < deadline:
        time.sleep(0.02)
    assert storage.get_session(session_id).status == status


def open_capture(registry, storage, pipeline, **kw) -> LiveCapture:
    return registry.open(storage, pipeline, title=kw.pop("title", "meeting"), policy=FixedPolicy(5.0), **kw)


def assert_contiguous(chunks: list[ChunkRow]) -> None:
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    for before, after in zip(chunks, chunks[1:]):
        assert after.start_sample == before.end_sample


def test_every_received_frame_lands_in_a_chunk_and_stop_flushes_the_tail(registry, storage, pipeline):
    capture = open_capture(registry, storage, pipeline)
    feed(capture, frames(12.34))
    capture.request_stop()
    capture.on_ended()
    settle(pipeline)
    chunks = storage.list_chunks(capture.session_id)
    assert_contiguous(chunks)
    assert [c.end_sample - c.start_sample for c in chunks[:2]] == [80_000, 80_000]
    # 617 frames of 20 ms; every sample received is stored, at 16 kHz.
    assert chunks[-1].end_sample == 12.34 * 16_000
    assert capture.stats().received_seconds == pytest.approx(12.34)
    assert {c.status for c in chunks} == {"done"}
    wait_status(storage, capture.session_id, "done")
    assert registry.count() == 0


def test_buffered_audio_counts_what_no_chunk_holds_yet_including_the_resampler_batch(registry, storage, pipeline):
    """`buffered_seconds` is what a realtime commit would close: 100 ms still in the
    resampler's batch counts, and nothing once a commit closed it."""
    capture = open_capture(registry, storage, pipeline)
    capture.take(frames(0.1))  # under the resampler's 200 ms batch: no sample reached the chunker
    assert capture.stats().buffered_seconds == pytest.approx(0.1)
    capture.take(frames(5.5))  # one 5 s chunk closed, the rest still open
    assert capture.next_seq == 1 and capture.stats().buffered_seconds == pytest.approx(0.6, abs=0.02)
    capture.commit()
    assert capture.next_seq == 2 and capture.stats().buffered_seconds == 0
    capture.end("test")


def test_track_ending_without_stop_keeps_every_chunk_and_marks_interrupted(registry, storage, pipeline):
    capture = open_capture(registry, storage, pipeline)
    feed(capture, frames(7.0))
    capture.on_ended()  # tab closed / connection lost: no Stop from the page
    settle(pipeline)
    session = storage.get_session(capture.session_id)
    assert session.status == "interrupted"
    assert session.duration_ms == 7000
    assert [c.status for c in storage.list_chunks(capture.session_id)] == ["done", "done"]


def test_stop_heard_after_the_track_ended_corrects_to_stopped(registry, storage, pipeline):
    capture = open_capture(registry, storage, pipeline)
    feed(capture, frames(3.0))
    capture.on_ended()
    settle(pipeline)
    assert storage.get_session(capture.session_id).status == "interrupted"
    capture.request_stop()
    settle(pipeline)
    wait_status(storage, capture.session_id, "done")


def test_ending_twice_changes_nothing(registry, storage, pipeline):
    drained: list[str] = []

    def on_event(event: str, fields: dict) -> None:
        if event == "session_drained":
            drained.append(fields["session_id"])

    pipeline.add_listener(on_event)
    capture = open_capture(registry, storage, pipeline)
    feed(capture, frames(2.0))
    capture.request_stop()
    capture.on_ended()
    settle(pipeline)
    wait_status(storage, capture.session_id, "done")
    first_end = storage.get_session(capture.session_id).ended_at

    capture.end("watchdog")  # the watchdog fires after the track already ended
    settle(pipeline)
    time.sleep(0.2)  # the writer runs a queued end after the queue looks idle

    session = storage.get_session(capture.session_id)
    assert (session.status, session.ended_at) == ("done", first_end)
    assert drained == [capture.session_id]  # the final pass starts once, not twice
    assert len(storage.list_chunks(capture.session_id)) == 1


def test_session_limit_refuses_new_sessions_and_leaves_running_ones_alone(registry, storage, pipeline):
    running = [open_capture(registry, storage, pipeline, title=f"s{i}") for i in range(3)]
    with pytest.raises(SessionLimitError, match="SCRIBE_MAX_LIVE_SESSIONS=3"):
        open_capture(registry, storage, pipeline)
    assert storage.count_sessions() == 3  # the refused one left no row behind
    for capture in running:
        feed(capture, frames(5.5))
    settle(pipeline)
    assert all(len(storage.list_chunks(c.session_id)) == 1 for c in running)
    running[0].on_ended()
    assert open_capture(registry, storage, pipeline).session_id


def test_resume_continues_seq_and_session_time(registry, storage, pipeline):
    first = open_capture(registry, storage, pipeline)
    feed(first, frames(7.0))
    first.on_ended()
    settle(pipeline)
    resumed = open_capture(registry, storage, pipeline, resume_id=first.session_id)
    assert storage.get_session(first.session_id).status == "recording"
    feed(resumed, frames(6.0), seed=1)
    resumed.request_stop()
    resumed.on_ended()
    settle(pipeline)
    chunks = storage.list_chunks(first.session_id)
    assert_contiguous(chunks)
    assert [c.seq for c in chunks] == [0, 1, 2, 3]
    assert chunks[2].start_ms == 7000 and chunks[-1].end_ms == 13_000
    wait_status(storage, first.session_id, "done")
    assert storage.count_sessions() == 1


def test_a_session_being_recorded_cannot_be_resumed_twice(registry, storage, pipeline):
    capture = open_capture(registry, storage, pipeline)
    with pytest.raises(Exception, match="already being recorded"):
        open_capture(registry, storage, pipeline, resume_id=capture.session_id)


def test_watchdog_ends_a_capture_whose_frames_stopped(storage, pipeline):
    now = [100.0]
    registry = LiveRegistry(2, stall_seconds=10, first_frame_seconds=30, watchdog=False,
                            monotonic=lambda: now[0])
    capture = open_capture(registry, storage, pipeline)
    capture._monotonic = lambda: now[0]
    feed(capture, frames(6.0))
    now[0] += 9
    assert registry.end_stalled() == []
    now[0] += 2
    assert registry.end_stalled() == [capture.session_id]
    settle(pipeline)
    assert storage.get_session(capture.session_id).status == "interrupted"
    assert registry.count() == 0
    # The connection came back after all: frames are kept and the session records again.
    feed(capture, frames(5.0, start_pts=6 * RATE))
    settle(pipeline)
    assert storage.get_session(capture.session_id).status == "recording"
    assert registry.get(capture.session_id) is capture
    assert_contiguous(storage.list_chunks(capture.session_id))


def test_watchdog_gives_up_on_a_connection_that_never_sent_audio(storage, pipeline):
    now = [0.0]
    registry = LiveRegistry(2, first_frame_seconds=30, watchdog=False, monotonic=lambda: now[0])
    capture = open_capture(registry, storage, pipeline)
    capture.opened_at = 0.0
    now[0] = 31.0
    assert registry.end_stalled() == [capture.session_id]


def test_missing_rtp_timestamps_are_counted_as_gaps(registry, storage, pipeline):
    capture = open_capture(registry, storage, pipeline)
    feed(capture, frames(1.0) + frames(1.0, start_pts=int(1.5 * RATE)))
    assert capture.gaps == 1
    assert capture.gap_seconds == pytest.approx(0.5)


class NoIO:
    """Stands in for Storage: the frame path must never touch it."""

    def __getattr__(self, name):
        raise AssertionError(f"frame path touched storage.{name}")


class HandOff:
    """Stands in for Pipeline: records what the frame path hands over."""

    def __init__(self):
        self.chunks, self.steps = [], []

    def submit_nowait(self, chunk):
        self.chunks.append(chunk)

    def call_after_intake(self, step, session_id=None):
        self.steps.append(step)

    def finish_session_after_intake(self, session_id, status):
        self.steps.append((session_id, status))


def test_frame_path_only_hands_chunks_over(storage):
    session = storage.create_session(title="t", source="mic", backend="stub", model="m",
                                     chunk_seconds=1, chunk_policy="fixed:1")
    handoff = HandOff()
    capture = LiveCapture(session, storage=NoIO(), pipeline=handoff, policy=FixedPolicy(1.0))
    feed(capture, frames(3.5))
    assert [c.seq for c in handoff.chunks] == [0, 1, 2]
    capture.end("test")  # the end itself is queued for the writer thread, not done here
    assert [c.seq for c in handoff.chunks] == [0, 1, 2, 3]
    assert len(handoff.steps) == 1


def test_orphaned_recordings_become_interrupted_at_start(storage):
    live = storage.create_session(title="a", source="mic", backend="stub", model="m",
                                  chunk_seconds=5, chunk_policy="pause:5")
    storage.create_session(title="b", source="upload", backend="stub", model="m", chunk_seconds=5,
                           chunk_policy="pause:5", status="stopped")
    assert storage.interrupt_orphaned_recordings() == [live.id]
    assert storage.get_session(live.id).status == "interrupted"
    assert [s.id for s in storage.resumable_sessions()] == [live.id]


def test_call_after_intake_runs_after_earlier_chunks_are_durable(storage, pipeline):
    capture = LiveCapture(storage.create_session(title="t", source="mic", backend="stub", model="m",
                                                 chunk_seconds=1, chunk_policy="fixed:1"),
                          storage=storage, pipeline=pipeline, policy=FixedPolicy(1.0))
    seen = []
    feed(capture, frames(3.5))
    pipeline.call_after_intake(lambda: seen.append(len(storage.list_chunks(capture.session_id))))
    pipeline.call_after_intake(lambda: 1 / 0)  # a failing step is logged, intake goes on
    feed(capture, frames(1.0, start_pts=int(3.5 * RATE)))
    settle(pipeline)
    assert seen == [3]
    assert len(storage.list_chunks(capture.session_id)) == 4


def test_ice_servers_come_from_settings():
    assert rtc_configuration(Settings.from_env({})) == {"iceServers": []}
    configured = Settings.from_env({"SCRIBE_ICE_SERVERS": "stun:stun.example.org:3478,turn:t.example.org"})
    assert rtc_configuration(configured) == {"iceServers": [{"urls": ["stun:stun.example.org:3478"]},
                                                            {"urls": ["turn:t.example.org"]}]}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def _relay():
    from aiortc.contrib.media import MediaRelay

    return MediaRelay()  # made on the worker's loop, as WebRtcWorker asks


def _no_media() -> dict:
    """WebRtcWorker's other arguments: nothing to send, play or record."""
    import inspect

    from streamlit_webrtc.webrtc import WebRtcWorker

    names = [n for n, p in inspect.signature(WebRtcWorker).parameters.items()
             if p.default is inspect.Parameter.empty and n not in ("self", "mode")]
    return {n: 4 if n.endswith("receiver_size") else False if n.startswith(("sendback", "async")) else None
            for n in names}


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_ice_candidates_with_client_addresses_are_logged_at_debug_only(level):
    """streamlit-webrtc logs the browser's ICE candidates (its IP addresses) at INFO; a shared
    server's log must not collect every participant's address."""
    from streamlit_webrtc import WebRtcMode
    from streamlit_webrtc.webrtc import WebRtcWorker

    configure_logging(level)
    handler = _Records()
    root = logging.getLogger()
    root.addHandler(handler)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    previous = root.level
    root.setLevel(level)
    try:
        relay = asyncio.run_coroutine_threadsafe(_relay(), loop).result(5)
        worker = WebRtcWorker(mode=WebRtcMode.SENDONLY, loop=loop, relay=relay, **_no_media())
        worker.set_ice_candidates_from_offerer({"c1": {
            "candidate": "candidate:1 1 udp 2122260223 203.0.113.7 54400 typ host",
            "sdpMid": "0", "sdpMLineIndex": 0}})
        asyncio.run_coroutine_threadsafe(worker.pc.close(), loop).result(5)
    finally:
        root.setLevel(previous)
        root.removeHandler(handler)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    with_address = [r for r in handler.records if "203.0.113.7" in r.getMessage()]
    assert all(r.levelno == logging.DEBUG for r in with_address), [(r.levelname, r.getMessage()) for r in with_address]
    assert bool(with_address) == (level == "DEBUG")


def test_continue_while_the_last_chunk_is_still_being_stored_neither_reuses_nor_drops_it(
        registry, storage, pipeline):
    """Stop, then Continue at once while the writer still holds the last chunk and the session's
    end (a slow disk): the resumed audio follows that chunk (no seq given twice, no audio lost or
    stored over the same time) and the session's delayed end does not mark the recording stopped."""
    first = open_capture(registry, storage, pipeline)
    feed(first, frames(7.0))
    slow_disk = threading.Event()
    pipeline.call_after_intake(slow_disk.wait, first.session_id)  # the session's writer is busy
    first.on_ended()  # the last 2 s chunk and the end wait behind it
    threading.Timer(0.5, slow_disk.set).start()
    resumed = open_capture(registry, storage, pipeline, resume_id=first.session_id)
    feed(resumed, frames(6.0), seed=1)
    assert pipeline.flush_intake(10)
    assert storage.get_session(first.session_id).status == "recording"
    resumed.request_stop()
    resumed.on_ended()
    settle(pipeline)
    chunks = storage.list_chunks(first.session_id)
    assert [c.seq for c in chunks] == [0, 1, 2, 3]
    assert_contiguous(chunks)
    assert chunks[-1].end_ms == 13_000
    wait_status(storage, first.session_id, "done")
