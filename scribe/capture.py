"""The WebRTC bridge: browser microphone frames -> Chunker -> pipeline.

The only `scribe` module that imports streamlit-webrtc, and only inside `mic_streamer`:
the library registers its component with the running server when first imported from a
script run, and the server's own start-up code (the realtime socket, scribe/realtime.py)
uses `LiveRegistry` and `LiveCapture` too. Everything else here runs without a Streamlit
script context, so tests drive it with synthetic `av.AudioFrame`s.

Threads (who calls what):
- `LiveRegistry.open` runs on streamlit-webrtc's `process_offer` thread when the
  browser's offer arrives (it is the `audio_processor_factory`): it may touch
  DuckDB, since that thread is not the event loop.
- `LiveCapture.recv_queued` runs on the per-connection processor thread
  (`async_media_processor_N`) with *every* frame queued since its last call
  (the plain `recv`/`audio_frame_callback` path drops all but the newest).
  It only resamples, pushes into the Chunker and hands closed chunks to
  `pipeline.submit_nowait`: never disk or DuckDB.
- `LiveCapture.on_ended` runs on aiortc's event loop (Streamlit's MainThread)
  when the track ends: Stop, tab closed, connection lost. It flushes the last
  partial chunk and queues the session's end behind its chunks on the
  pipeline's writer thread (`call_after_intake`), so nothing blocks the loop.
- `LiveCapture.request_stop` runs on the script thread (the page's `on_change`).
- `scribe-capture-watchdog` ends captures whose frames stopped arriving (a
  vanished browser is otherwise only noticed by ICE consent, ~30 s later).

A capture ends `stopped` when the page saw the user press Stop, otherwise
`interrupted`. Browser-side Stop closes the peer connection before the page's
rerun arrives, so the end may be recorded as `interrupted` first and corrected
to `stopped` a moment later by `request_stop`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import av
import numpy as np

from scribe.access import writable_session
from scribe.audio import SAMPLE_RATE, FrameResampler, rms_dbfs
from scribe.chunking import Chunk, Chunker, ChunkPolicy, parse_policy, policy_label
from scribe.config import Settings
from scribe.core import SessionRow
from scribe.errors import ScribeError, SessionLimitError
from scribe.identity import LOCAL, Principal
from scribe.partials import PartialDecode, PartialLane, PartialText
from scribe.pipeline import Pipeline
from scribe.storage import Storage

if TYPE_CHECKING:
    from streamlit_webrtc import WebRtcStreamerContext

log = logging.getLogger("scribe.capture")

MEDIA_CONSTRAINTS: dict[str, Any] = {
    "audio": {"echoCancellation": False, "noiseSuppression": False, "autoGainControl": False},
    "video": False,
}
"""Raw microphone audio: browser DSP (tuned for calls) smears speech for the recogniser."""

STALL_SECONDS = 10.0
"""No frame for this long on a started capture: the browser is gone; end it `interrupted`."""
FIRST_FRAME_SECONDS = 30.0
RESUME_WAIT_SECONDS = 20.0
"""Continue waits this long for the session's last chunks to be stored before it gives up."""
"""A connection that never delivers a first frame is given up after this long."""
LEVEL_FRAMES = 25
"""The level meter averages this many recent frames (~0.5 s of 20 ms frames)."""


def rtc_configuration(settings: Settings) -> dict[str, Any]:
    """RTCConfiguration for both ends; an empty list (not None) stops the library
    from fetching public STUN servers, which works on one machine or a LAN."""
    return {"iceServers": [{"urls": [url]} for url in settings.ice_servers]}


@dataclass(frozen=True)
class LiveStats:
    """A snapshot of one capture for the page (read from the script thread)."""

    session_id: str
    frames: int
    received_seconds: float
    """Audio received, from the frames' own sample counts (source rate)."""
    wall_seconds: float
    """Wall time from the first frame to the latest one."""
    session_seconds: float
    """Position in session time (includes earlier parts of a resumed session)."""
    level_dbfs: float
    buffered_seconds: float
    """Audio received that is in no chunk yet (the open chunk and the resampler's batch):
    what a commit would close now."""
    chunks_submitted: int
    ended: bool


class LiveCapture:
    """One live connection's audio (a browser's WebRTC track or a realtime socket): resample,
    chunk, hand chunks to the pipeline. streamlit-webrtc calls `recv_queued` and `on_ended`."""

    def __init__(self, session: SessionRow, *, storage: Storage, pipeline: Pipeline,
                 policy: ChunkPolicy, start_seq: int = 0, start_sample: int = 0,
                 registry: "LiveRegistry | None" = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 partials: PartialLane | None = None) -> None:
        self.session_id = session.id
        self._partials = partials
        self.storage = storage
        self.pipeline = pipeline
        self._chunker = Chunker(session.id, policy, start_seq=start_seq, start_sample=start_sample,
                                clock=clock)
        self._resampler = FrameResampler()
        self._lock = threading.Lock()
        self._registry = registry
        self._monotonic = monotonic
        self.opened_at = monotonic()
        self.first_frame_at: float | None = None
        self.last_frame_at: float | None = None
        self.frames = 0
        self.received_seconds = 0.0
        self._recent: deque[np.ndarray] = deque(maxlen=LEVEL_FRAMES)
        self.chunks_submitted = 0
        self._next_pts: int | None = None
        self.gaps = 0
        self.gap_seconds = 0.0
        self.stop_requested = False
        self.end_status: str | None = None

    # -- processor thread -----------------------------------------------------
    async def recv_queued(self, frames: list[av.AudioFrame]) -> list[av.AudioFrame]:
        """Processor thread: every frame since the last call, in order. The returned
        frame only feeds an unread receiver (SENDONLY); one is enough."""
        self.take(frames)
        return frames[-1:]

    def take(self, frames: list[av.AudioFrame]) -> None:
        """Resample and chunk frames; closed chunks go to the writer thread (never blocks)."""
        now = self._monotonic()
        with self._lock:
            if self.end_status is not None:
                self._revive()
            for frame in frames:
                self._push(frame)
            if self.first_frame_at is None:
                log.info("session=%s first frame", self.session_id)  # t=0 of the live-latency bench
            self.first_frame_at = self.first_frame_at or now
            self.last_frame_at = now
            self._offer_partial()

    def _push(self, frame: av.AudioFrame) -> None:
        self.frames += 1
        self.received_seconds += frame.samples / frame.sample_rate
        self._note_gap(frame)
        pcm = self._resampler.push(frame)
        if pcm.size:
            self._recent.append(pcm)
        self._submit(self._chunker.push(pcm))

    def _note_gap(self, frame: av.AudioFrame) -> None:
        """Count audio the sender produced but we never got (a jump in the RTP timestamps)."""
        if frame.pts is not None and self._next_pts is not None and frame.pts > self._next_pts:
            self.gap_seconds += (frame.pts - self._next_pts) / frame.sample_rate
            self.gaps += 1
        if frame.pts is not None:
            self._next_pts = frame.pts + frame.samples

    def _submit(self, chunks: list[Chunk]) -> None:
        for chunk in chunks:
            if self._partials is not None:
                self._partials.chunk_closed(self.session_id, chunk.seq)
            self.pipeline.submit_nowait(chunk)
            self.chunks_submitted += 1
        if chunks and self._partials is not None:
            self._store_partial_decodes(self._partials.take_decodes(self.session_id))

    @property
    def next_seq(self) -> int:
        """The seq the open chunk will get: chunks below it have been handed to the pipeline."""
        return self._chunker.next_seq

    def commit(self) -> None:
        """Close the open chunk now, whatever the policy says (a realtime client's commit)."""
        with self._lock:
            if self.end_status is None:
                self._submit(self._chunker.push(self._resampler.flush()))
                self._submit(self._chunker.finish())
                self._resampler = FrameResampler()  # a flushed resampler is closed

    def clear(self) -> None:
        """Drop the open chunk's audio, never stored (a realtime client's clear)."""
        with self._lock:
            if self._partials is not None:
                self._partials.chunk_closed(self.session_id, self._chunker.next_seq)
                self._partials.forget_chunk(self.session_id, self._chunker.next_seq)
            self._chunker.discard()
            self._resampler = FrameResampler()

    # -- the partial lane (best effort, never blocks) ---------------------------
    def _offer_partial(self) -> None:
        """Hand the open chunk's audio to the partial lane once it has `interval` of new audio."""
        lane, chunker = self._partials, self._chunker
        if lane is not None and lane.due(self.session_id, chunker.next_seq, chunker.buffered_samples):
            lane.offer(self.session_id, chunker.next_seq, chunker.chunk_start, chunker.buffered_audio())

    def _store_partial_decodes(self, records: list[PartialDecode]) -> None:
        """Partial-decode statistics go to DuckDB on the session's writer thread, never here."""
        if records:
            self.pipeline.call_after_intake(lambda: self.storage.save_partial_decodes(records),
                                            self.session_id)

    def partial_text(self) -> list[PartialText]:
        """Script thread: partial text of this session not yet replaced by stored text."""
        return self._partials.partials(self.session_id) if self._partials is not None else []

    def _revive(self) -> None:
        """Frames after a watchdog end: the connection came back; keep recording."""
        log.warning("session=%s frames resumed after the capture ended; recording again",
                    self.session_id)
        self.end_status = None
        self._resampler = FrameResampler()  # the old one was flushed, which closes it
        if self._registry:
            self._registry.readmit(self)
        self.pipeline.call_after_intake(
            lambda: self.storage.update_session(self.session_id, status="recording", ended_at=None),
            self.session_id)

    # -- ending -----------------------------------------------------------------
    def on_ended(self) -> None:
        """Event loop (or the thread stopping the track): the browser's track ended."""
        self.end("track ended")

    def end(self, reason: str) -> None:
        """Flush the last partial chunk and queue the session's end; idempotent."""
        with self._lock:
            if self.end_status is not None:
                return
            self._submit(self._chunker.push(self._resampler.flush()))
            self._submit(self._chunker.finish())
            if self._partials is not None:
                self._store_partial_decodes(self._partials.end_session(self.session_id))
            self.end_status = "stopped" if self.stop_requested else "interrupted"
            status = self.end_status
        self.pipeline.finish_session_after_intake(self.session_id, status)
        log.info("session=%s %s (%s): received %.2f s of audio over %.2f s wall in %d frames, "
                 "%d chunks; %d gaps, %.2f s missing", self.session_id, status, reason,
                 self.received_seconds, self._wall_seconds(), self.frames, self.chunks_submitted,
                 self.gaps, self.gap_seconds)
        if self._registry:
            self._registry.release(self)

    def request_stop(self) -> None:
        """Script thread: the user pressed Stop. Corrects an end already recorded
        as `interrupted` (the track often ends before the page hears of it)."""
        with self._lock:
            self.stop_requested = True
            correct = self.end_status == "interrupted"
            if correct:
                self.end_status = "stopped"
        if correct:
            log.info("session=%s stopped (the page's Stop arrived after the track ended)",
                     self.session_id)
            self.pipeline.finish_session_after_intake(self.session_id, "stopped")

    # -- reading ----------------------------------------------------------------
    def _wall_seconds(self) -> float:
        if self.first_frame_at is None or self.last_frame_at is None:
            return 0.0
        return self.last_frame_at - self.first_frame_at

    def stats(self) -> LiveStats:
        with self._lock:
            return LiveStats(
                session_id=self.session_id, frames=self.frames,
                received_seconds=self.received_seconds, wall_seconds=self._wall_seconds(),
                session_seconds=self._chunker.position / SAMPLE_RATE, level_dbfs=self.level_dbfs(),
                buffered_seconds=self._chunker.buffered_samples / SAMPLE_RATE + self._resampler.held_seconds,
                chunks_submitted=self.chunks_submitted, ended=self.end_status is not None)

    def level_dbfs(self) -> float:
        """Loudness of the last ~0.5 s (a 20 ms frame alone flickers between words)."""
        recent = list(self._recent)
        return rms_dbfs(np.concatenate(recent)) if recent else -120.0

    def stalled(self, now: float, stall_s: float, first_frame_s: float) -> bool:
        """No frame for `stall_s` (or none at all for `first_frame_s`)."""
        if self.end_status is not None:
            return False
        if self.last_frame_at is None:
            return now - self.opened_at > first_frame_s
        return now - self.last_frame_at > stall_s


class LiveRegistry:
    """The process's live captures: enforces the session limit, runs the watchdog.

    One per process (the app keeps it in `pages/_shared.live_registry`). Thread-safe.
    """

    def __init__(self, max_sessions: int, *, stall_seconds: float = STALL_SECONDS,
                 first_frame_seconds: float = FIRST_FRAME_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic, watchdog: bool = True) -> None:
        self.max_sessions = max_sessions
        self.stall_seconds = stall_seconds
        self.first_frame_seconds = first_frame_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._live: dict[str, LiveCapture] = {}
        self._watchdog_wanted = watchdog
        self._watchdog: threading.Thread | None = None

    def open(self, storage: Storage, pipeline: Pipeline, *, title: str, policy: ChunkPolicy,
             resume_id: str | None = None, source: str = "mic",
             partials: PartialLane | None = None, owner: Principal = LOCAL) -> LiveCapture:
        """Start (or resume) a session of `owner`'s and return its capture.

        Called as the `audio_processor_factory`, on the process_offer thread.
        Raises SessionLimitError past `max_sessions`; running sessions are untouched.
        Resuming needs the right to change that session (`scribe.access`), and waits (at most
        RESUME_WAIT_SECONDS) until the session's last chunks and its end are stored: its next seq
        and start are read from storage, and a chunk still on its way would be given again.
        """
        if resume_id is not None and not pipeline.flush_intake(RESUME_WAIT_SECONDS, resume_id):
            raise ScribeError(f"the end of session {resume_id} is still being stored (the disk is slow); "
                              "try Continue again in a moment")
        with self._lock:
            if len(self._live) >= self.max_sessions:
                raise SessionLimitError(
                    f"this server is already recording {len(self._live)} sessions, its limit "
                    f"(SCRIBE_MAX_LIVE_SESSIONS={self.max_sessions}); try again when one stops")
            if resume_id is not None and resume_id in self._live:
                raise ScribeError(f"session {resume_id} is already being recorded")
            capture = self._make(storage, pipeline, title=title, policy=policy,
                                 resume_id=resume_id, source=source, partials=partials, owner=owner)
            self._live[capture.session_id] = capture
        self._ensure_watchdog()
        log.info("session=%s live capture opened (%d live)", capture.session_id, self.count())
        return capture

    def _make(self, storage: Storage, pipeline: Pipeline, *, title: str, policy: ChunkPolicy,
              resume_id: str | None, source: str, partials: PartialLane | None = None,
              owner: Principal = LOCAL) -> LiveCapture:
        if resume_id is None:
            session = storage.create_session(
                title=title, source=source, backend=pipeline.transcriber.name,
                model=pipeline.transcriber.model, chunk_seconds=policy.seconds,
                chunk_policy=policy_label(policy), owner_id=owner.user_id)
            return LiveCapture(session, storage=storage, pipeline=pipeline, policy=policy,
                               registry=self, partials=partials)
        session = writable_session(storage, owner, resume_id)
        seq, sample = storage.resume_point(resume_id)
        storage.update_session(resume_id, status="recording", ended_at=None)
        # A resumed session keeps its own chunking, so its chunks stay comparable.
        return LiveCapture(session, storage=storage, pipeline=pipeline,
                           policy=parse_policy(session.chunk_policy, session.chunk_seconds),
                           start_seq=seq, start_sample=sample, registry=self, partials=partials)

    def release(self, capture: LiveCapture) -> None:
        with self._lock:
            if self._live.get(capture.session_id) is capture:
                del self._live[capture.session_id]

    def readmit(self, capture: LiveCapture) -> None:
        """A capture ended by the watchdog got frames again (no limit check: it is not new)."""
        with self._lock:
            self._live[capture.session_id] = capture
        self._ensure_watchdog()

    def get(self, session_id: str) -> LiveCapture | None:
        with self._lock:
            return self._live.get(session_id)

    def count(self) -> int:
        with self._lock:
            return len(self._live)

    def session_ids(self) -> list[str]:
        """The sessions live now (a snapshot: any may end a moment later)."""
        with self._lock:
            return list(self._live)

    def is_full(self) -> bool:
        return self.count() >= self.max_sessions

    def end_stalled(self) -> list[str]:
        """End every capture whose frames stopped arriving; returns their session ids."""
        now = self._monotonic()
        with self._lock:
            stalled = [c for c in self._live.values()
                       if c.stalled(now, self.stall_seconds, self.first_frame_seconds)]
        for capture in stalled:
            capture.end(f"no audio for {self.stall_seconds:g} s")
        return [c.session_id for c in stalled]

    def _ensure_watchdog(self) -> None:
        with self._lock:
            if not self._watchdog_wanted or self._watchdog is not None:
                return
            self._watchdog = threading.Thread(target=self._watch, name="scribe-capture-watchdog",
                                              daemon=True)
            self._watchdog.start()

    def _watch(self) -> None:
        """Watchdog thread: once a second, end stalled captures; exits when none are live."""
        while True:
            time.sleep(1.0)
            try:
                self.end_stalled()
            except Exception:  # the watchdog must outlive one bad capture
                log.exception("capture watchdog failed")
            with self._lock:  # decide to exit under the lock, so open() restarts us if needed
                if not self._live:
                    self._watchdog = None
                    return


# -- the recorder widget ----------------------------------------------------------
def mic_streamer(key: str, settings: Settings, factory: Callable[[], LiveCapture],
                 on_change: Callable[[], None] | None = None,
                 desired_playing_state: bool | None = None) -> WebRtcStreamerContext:
    """The browser-side recorder: send-only, audio-only, raw microphone, every frame
    delivered to the capture made by `factory` (on streamlit-webrtc's processor thread).
    `desired_playing_state=True` starts the microphone without a click (Resume)."""
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    _recording_outlives_pages()
    _not_orphaned(key)
    return webrtc_streamer(
        key=key,
        mode=WebRtcMode.SENDONLY,
        rtc_configuration=rtc_configuration(settings),
        media_stream_constraints=MEDIA_CONSTRAINTS,
        audio_processor_factory=factory,
        async_processing=True,  # recv_queued on a per-connection thread, off the event loop
        on_change=on_change,
        desired_playing_state=desired_playing_state,
    )


def _recording_outlives_pages() -> None:
    """streamlit-webrtc stops a worker once its browser session shows another page (it
    assumes the widget belongs to one page). Scribe draws the recorder in app.py's frame,
    on every page, so a page switch must not end a recording: an empty start page turns
    that check off. Closing the tab still stops the worker (the session shuts down), and
    the capture watchdog ends a capture whose frames stop."""
    from streamlit_webrtc.shutdown import SessionShutdownObserver

    SessionShutdownObserver._resolve_initial_page_script_hash = staticmethod(  # type: ignore[method-assign]
        lambda app_session: "")


def _not_orphaned(key: str) -> None:
    """streamlit-webrtc resets (and stops) a context it thinks a page skipped, judged by
    script runs counted since it was last drawn; fragment and page-switch runs can make
    that count jump although the widget is drawn on every page. Forget the last count."""
    import streamlit as st

    context = st.session_state.get(key)
    if context is not None and hasattr(context, "_last_rendered_run_count"):
        context._last_rendered_run_count = None
