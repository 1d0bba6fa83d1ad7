"""OpenAI's realtime transcription socket, `/v1/realtime?intent=transcription`.

A client (the official SDK's realtime client, a browser, a meeting bot) configures the session
(`session.update` or the older `transcription_session.update`: audio format and model), streams
base64 PCM16 at 24 kHz (`input_audio_buffer.append`), and may `commit` or `clear` the buffer.
The audio goes where a browser recording goes: a `capture.LiveCapture` opened in the process's
`LiveRegistry` (the same session limit, watchdog and resume), its resampler, chunker, pipeline
and partial lane. So the session is durable chunk by chunk, a dropped socket leaves it
`interrupted` like a closed tab, and `?session=<id>` continues it on a new socket.

What the client hears back: `session.created`, `session.updated`; `input_audio_buffer.committed`
when a chunk closes (the chunker's pause cut plays the part of OpenAI's server VAD; one item per
chunk); `conversation.item.input_audio_transcription.delta` with the partial lane's stable words
of the open chunk (stable words are never taken back, so deltas only append); `.completed` with
the chunk lane's stored text of that chunk (`.failed` when it failed); `error` for every bad event,
after which the socket stays open unless it cannot go on.

Threads: the handler runs on the server's event loop and never blocks it: audio is handed to
the capture on a pool thread; chunk results come from the pipeline's worker threads through
`ChunkEvents` (`loop.call_soon_threadsafe`); partial text is read from the lane in RAM.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import av
import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from scribe.api import ApiContext, ApiError
from scribe.api_auth import PRINCIPAL_KEY, principal_of
from scribe.chunking import parse_policy
from scribe.errors import ScribeError, SessionLimitError
from scribe.identity import LOCAL
from scribe.openai_api import (
    OpenAIError,
    TranscriptionRequest,
    check_language,
    check_language_code,
    from_library,
    runtime_for_model,
)
from scribe.partials import words_of
from scribe.pipeline import Pipeline
from scribe.record_view import API_LIVE_SOURCE
from scribe.runtime import Runtime

log = logging.getLogger(__name__)

INPUT_RATE = 24_000
"""OpenAI's PCM16 input rate (`audio/pcm`, `pcm16`): little-endian 16-bit mono at 24 kHz."""
SOURCE = API_LIVE_SOURCE  # the Record page offers sessions of this source to watch
KEY_PROTOCOL = "openai-insecure-api-key."
"""Browsers cannot set headers on a WebSocket: they pass the token as this subprotocol."""
PARTIAL_POLL_S = 0.05
NORMAL_CLOSE = 1000
TRY_AGAIN_LATER = 1013
POLICY_VIOLATION = 1008
TOO_BIG = 1009


class FatalSocketError(Exception):
    """An error after which the socket cannot go on: answered, then closed with `close_code`."""

    def __init__(self, error: OpenAIError, close_code: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.close_code = close_code


def event_id() -> str:
    return f"event_{uuid.uuid4().hex[:20]}"


def item_id(session_id: str, seq: int) -> str:
    """One conversation item per chunk: its id names the Scribe session and the chunk."""
    return f"item_{session_id}_{seq}"


def error_event(error: OpenAIError, client_event: str | None = None) -> dict[str, Any]:
    return {"type": "error", "event_id": event_id(),
            "error": {**error.body()["error"], "event_id": client_event}}


class ChunkEvents:
    """Per pipeline: hands `chunk_done`/`chunk_failed` of a session to whoever subscribed.
    The pipeline's listener list only grows, so one hub per pipeline is added once."""

    _hubs: ClassVar[weakref.WeakKeyDictionary[Pipeline, ChunkEvents]] = weakref.WeakKeyDictionary()
    _hubs_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, Callable[[str, int], None]] = {}

    @classmethod
    def of(cls, pipeline: Pipeline) -> ChunkEvents:
        with cls._hubs_lock:
            hub = cls._hubs.get(pipeline)
            if hub is None:
                hub = cls._hubs[pipeline] = ChunkEvents()
                pipeline.add_listener(hub)
            return hub

    def subscribe(self, session_id: str, callback: Callable[[str, int], None]) -> None:
        with self._lock:
            self._subscribers[session_id] = callback

    def unsubscribe(self, session_id: str) -> None:
        with self._lock:
            self._subscribers.pop(session_id, None)

    def __call__(self, event: str, fields: dict) -> None:
        """Worker thread: must not block."""
        if event not in ("chunk_done", "chunk_failed"):
            return
        with self._lock:
            callback = self._subscribers.get(str(fields.get("session_id")))
        if callback is not None:
            callback(event, int(fields["seq"]))


# -- the client's session configuration ------------------------------------------------
@dataclass
class SessionConfig:
    """What `session.update` set: the transcription model, the language, the event names."""

    model: str = "whisper-1"
    language: str | None = None
    prompt: str = ""
    beta: bool = False
    """The client speaks the older `transcription_session.*` events."""

    def request(self) -> TranscriptionRequest:
        return TranscriptionRequest(model=self.model, language=self.language, prompt=self.prompt)

    def json(self, session_id: str | None) -> dict[str, Any]:
        transcription = {"model": self.model, "language": self.language, "prompt": self.prompt}
        if self.beta:
            return {"id": session_id, "object": "realtime.transcription_session",
                    "input_audio_format": "pcm16", "input_audio_transcription": transcription,
                    "turn_detection": {"type": "server_vad"}}
        return {"type": "transcription", "id": session_id, "object": "realtime.transcription_session",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": INPUT_RATE},
                                    "transcription": transcription, "turn_detection": {"type": "server_vad"}}}}


def parse_session_update(event: dict[str, Any]) -> SessionConfig:
    """The model, language and format of a `session.update` / `transcription_session.update`."""
    beta = event["type"] == "transcription_session.update"
    session = event.get("session")
    if not isinstance(session, dict):
        raise OpenAIError(400, "session.update needs a `session` object", param="session", code="invalid_value")
    if beta:
        audio_format, transcription = session.get("input_audio_format", "pcm16"), session.get(
            "input_audio_transcription")
        _check_beta_format(audio_format)
    else:
        audio_input = ((session.get("audio") or {}).get("input") or {})
        _check_format(audio_input.get("format"))
        transcription = audio_input.get("transcription")
    if transcription is not None and not isinstance(transcription, dict):
        raise OpenAIError(400, "transcription must be an object with a model", param="session", code="invalid_value")
    transcription = transcription or {}
    request = TranscriptionRequest(model=str(transcription.get("model") or "whisper-1"),
                                   language=check_language_code(transcription.get("language")),
                                   prompt=str(transcription.get("prompt") or "").strip())
    return SessionConfig(model=request.model, language=request.language, prompt=request.prompt or "", beta=beta)


def _check_format(audio_format: Any) -> None:
    if audio_format is None:
        return
    kind = audio_format.get("type") if isinstance(audio_format, dict) else audio_format
    rate = audio_format.get("rate", INPUT_RATE) if isinstance(audio_format, dict) else INPUT_RATE
    if kind not in ("audio/pcm", "pcm16") or rate != INPUT_RATE:
        raise OpenAIError(400, f"unsupported input audio format {audio_format!r}: send audio/pcm (PCM16, "
                          f"mono, little-endian) at {INPUT_RATE} Hz", param="session.audio.input.format",
                          code="unsupported_audio_format")


def _check_beta_format(audio_format: Any) -> None:
    if audio_format != "pcm16":
        raise OpenAIError(400, f"unsupported input_audio_format {audio_format!r}: send pcm16 (24 kHz mono)",
                          param="session.input_audio_format", code="unsupported_audio_format")


def decode_pcm16(data: Any) -> np.ndarray:
    """`input_audio_buffer.append`'s base64 audio as int16 samples."""
    if not isinstance(data, str):
        raise OpenAIError(400, "`audio` must be base64-encoded PCM16", param="audio", code="invalid_value")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise OpenAIError(400, "`audio` is not valid base64", param="audio", code="invalid_base64") from None
    if len(raw) % 2:
        raise OpenAIError(400, f"`audio` is {len(raw)} bytes, not whole 16-bit samples: send PCM16 "
                          f"(2 bytes a sample) at {INPUT_RATE} Hz", param="audio", code="invalid_audio_format")
    return np.frombuffer(raw, dtype="<i2")


def pcm16_frame(samples: np.ndarray, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.int16), format="s16", layout="mono")
    frame.sample_rate = INPUT_RATE
    frame.pts = pts
    return frame


# -- one socket ---------------------------------------------------------------------------
@dataclass
class _State:
    config: SessionConfig | None = None
    runtime: Runtime | None = None
    capture: Any = None
    seen_seq: int = 0
    """Chunks below this seq were announced as committed."""
    samples: int = 0
    sent_words: dict[int, list[str]] = field(default_factory=dict)
    stop_requested: bool = False


class RealtimeSocket:
    """One client connection (event loop)."""

    def __init__(self, ws: WebSocket, context: ApiContext, registry: Callable[[], Any]) -> None:
        self.ws = ws
        self.context = context
        self.registry = registry
        self.state = _State()
        self.loop = asyncio.get_running_loop()
        self.results: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._send_lock = asyncio.Lock()
        self.resume_id = ws.query_params.get("session") or None

    async def send(self, event: dict[str, Any]) -> None:
        """Send one event; a client that already left is not an error here: the receive loop
        hears its close (and its close code) in order, after the events it sent before."""
        async with self._send_lock:
            if self.ws.application_state != WebSocketState.CONNECTED:
                return
            try:
                await self.ws.send_text(json.dumps(event))
            except WebSocketDisconnect:  # Starlette's word for "the peer is gone" on a send
                log.info("realtime client left while %s was being sent", event["type"])

    async def error(self, error: OpenAIError, client_event: str | None = None) -> None:
        await self.send(error_event(error, client_event))

    # -- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        await self.send({"type": "session.created", "event_id": event_id(),
                         "session": SessionConfig().json(None)})
        pump = asyncio.create_task(self._pump())
        code = NORMAL_CLOSE
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    code = int(message.get("code") or 1006)
                    break
                if (text := message.get("text")) is None:
                    await self.error(OpenAIError(400, "send events as JSON text frames", code="invalid_json"))
                    continue
                if (closing := await self.handle(text)) is not None:
                    code = closing
                    await close_quietly(self.ws, closing)
                    break
        finally:
            pump.cancel()
            await self._end(code)

    async def _end(self, code: int) -> None:
        """The socket is gone: a clean close with nothing left uncommitted is a Stop; anything
        else (a drop, audio still in the buffer) leaves the session interrupted, resumable.
        `code` is the client's own close code, as the receive loop heard it."""
        capture = self.state.capture
        if capture is None:
            return
        ChunkEvents.of(self._runtime().pipeline).unsubscribe(capture.session_id)
        clean = code == NORMAL_CLOSE and not await asyncio.to_thread(self._uncommitted, capture)
        if clean:
            capture.request_stop()
        await asyncio.to_thread(capture.end, "socket closed" if clean else f"socket dropped ({code})")

    # -- client events -----------------------------------------------------------------
    async def handle(self, text: str) -> int | None:
        """One client event; the close code when the socket must close, else None."""
        try:
            event = json.loads(text)
        except ValueError:
            await self.error(OpenAIError(400, "the event is not valid JSON", code="invalid_json"))
            return None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            await self.error(OpenAIError(400, "an event is a JSON object with a `type`", param="type",
                                         code="invalid_event"))
            return None
        client_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        handler = self._handlers().get(event["type"])
        if handler is None:
            await self.error(OpenAIError(400, f"unknown event type {event['type']!r} on a transcription "
                                         "session", param="type", code="unknown_event"), client_id)
            return None
        try:
            await handler(event)
        except FatalSocketError as exc:
            await self.error(exc.error, client_id)
            return exc.close_code
        except SessionLimitError as exc:
            await self.error(OpenAIError(429, str(exc), code="session_limit"), client_id)
            return TRY_AGAIN_LATER
        except (OpenAIError, ScribeError) as exc:
            await self.error(from_library(exc), client_id)
        return None

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {"session.update": self._update, "transcription_session.update": self._update,
                "input_audio_buffer.append": self._append, "input_audio_buffer.commit": self._commit,
                "input_audio_buffer.clear": self._clear}

    async def _update(self, event: dict[str, Any]) -> None:
        config = parse_session_update(event)
        if self.state.config is not None and config.model != self.state.config.model:
            raise OpenAIError(400, "the model cannot change during a session; open a new socket",
                              param="session", code="invalid_value")
        if self.state.capture is None:
            await self._open(config)
        else:  # a new language or prompt applies to the chunks that close from now on
            await self._apply_options(config, self._runtime())
        self.state.config = config
        kind = "transcription_session.updated" if config.beta else "session.updated"
        await self.send({"type": kind, "event_id": event_id(),
                         "session": config.json(self.state.capture.session_id)})

    async def _open(self, config: SessionConfig) -> None:
        """The first configuration opens (or resumes) the live session."""
        rt = await asyncio.to_thread(runtime_for_model, self.context, config.model)
        check_language(config.request(), rt)
        registry = self.registry()
        policy = parse_policy(rt.settings.chunk_policy, rt.settings.chunk_seconds)
        capture = await asyncio.to_thread(
            registry.open, rt.storage, rt.pipeline, title=f"Realtime {time.strftime('%Y-%m-%d %H:%M')}",
            policy=policy, resume_id=self.resume_id, source=SOURCE, partials=rt.partials,
            owner=self.ws.scope.get(PRINCIPAL_KEY, LOCAL))
        self.state.runtime, self.state.capture = rt, capture
        await self._apply_options(config, rt)  # before the first chunk can close
        self.state.seen_seq = capture.next_seq
        ChunkEvents.of(rt.pipeline).subscribe(
            capture.session_id, self._on_result)
        log.info("session=%s realtime socket (%s)", capture.session_id, config.model)

    async def _apply_options(self, config: SessionConfig, rt: Runtime) -> None:
        """The session's chunks are decoded in the asked language, after the asked prompt."""
        request = config.request()
        check_language(request, rt)
        await asyncio.to_thread(rt.storage.set_session_options, self.state.capture.session_id, request.options())

    def _runtime(self) -> Runtime:
        if self.state.runtime is None:
            raise OpenAIError(400, "configure the session first", code="session_not_configured")
        return self.state.runtime

    def _configured(self) -> Any:
        if self.state.capture is None:
            raise OpenAIError(400, "configure the session first: send session.update with the input audio "
                              "format and the transcription model", code="session_not_configured")
        return self.state.capture

    async def _append(self, event: dict[str, Any]) -> None:
        capture = self._configured()
        samples = decode_pcm16(event.get("audio"))
        if samples.size == 0:
            return
        limit = self._runtime().settings.max_audio_hours * 3600 * INPUT_RATE
        if self.state.samples + samples.size > limit:
            raise FatalSocketError(OpenAIError(400, "this session reached SCRIBE_MAX_AUDIO_HOURS of audio; "
                                               "its audio so far is stored", param="audio", code="audio_too_long"),
                                   TOO_BIG)
        frame = pcm16_frame(samples, self.state.samples)
        self.state.samples += samples.size
        await asyncio.to_thread(capture.take, [frame])
        await self._announce_commits()

    async def _commit(self, _event: dict[str, Any]) -> None:
        capture = self._configured()
        if not await asyncio.to_thread(self._uncommitted, capture):
            raise OpenAIError(400, "the input audio buffer is empty: nothing to commit",
                              code="input_audio_buffer_commit_empty")
        await asyncio.to_thread(capture.commit)
        await self._announce_commits()

    async def _clear(self, _event: dict[str, Any]) -> None:
        capture = self._configured()
        await asyncio.to_thread(capture.clear)
        await self.send({"type": "input_audio_buffer.cleared", "event_id": event_id()})

    async def _announce_commits(self) -> None:
        """`input_audio_buffer.committed` for each chunk the chunker closed since the last call."""
        capture = self.state.capture
        closed = capture.next_seq
        for seq in range(self.state.seen_seq, closed):
            previous = item_id(capture.session_id, seq - 1) if seq else None
            await self.send({"type": "input_audio_buffer.committed", "event_id": event_id(),
                             "previous_item_id": previous, "item_id": item_id(capture.session_id, seq)})
        self.state.seen_seq = max(self.state.seen_seq, closed)

    @staticmethod
    def _uncommitted(capture: Any) -> bool:
        """The capture holds audio in no chunk yet (what OpenAI calls the input audio buffer)."""
        return capture.stats().buffered_seconds > 0

    # -- server events -------------------------------------------------------------------
    def _on_result(self, kind: str, seq: int) -> None:
        """Worker thread: a chunk of this session was stored (or failed); hand it to the loop."""
        self.loop.call_soon_threadsafe(self.results.put_nowait, (kind, seq))

    async def _pump(self) -> None:
        """Partial deltas every PARTIAL_POLL_S; chunk results as they are stored."""
        while True:
            try:
                kind, seq = await asyncio.wait_for(self.results.get(), PARTIAL_POLL_S)
                await self._result(kind, seq)
            except TimeoutError:
                pass
            await self._deltas()

    async def _deltas(self) -> None:
        capture, rt = self.state.capture, self.state.runtime
        if capture is None or rt is None or rt.partials is None:
            return
        for partial in rt.partials.partials(capture.session_id):
            words = words_of(partial.stable)
            sent = self.state.sent_words.get(partial.seq, [])
            if len(words) <= len(sent) or words[:len(sent)] != sent:
                continue  # nothing new, or a revision: deltas only ever append
            delta = (" " if sent else "") + " ".join(words[len(sent):])
            self.state.sent_words[partial.seq] = words
            await self.send({"type": "conversation.item.input_audio_transcription.delta", "event_id": event_id(),
                             "item_id": item_id(capture.session_id, partial.seq), "content_index": 0,
                             "delta": delta})

    async def _result(self, kind: str, seq: int) -> None:
        capture, rt = self.state.capture, self._runtime()
        item = item_id(capture.session_id, seq)
        if kind == "chunk_failed":
            error = OpenAIError(500, f"chunk {seq} failed to transcribe; it is stored and can be retried",
                                code="transcription_failed")
            await self.send({"type": "conversation.item.input_audio_transcription.failed", "event_id": event_id(),
                             "item_id": item, "content_index": 0, "error": error.body()["error"]})
            return
        segments = await asyncio.to_thread(rt.storage.list_segments, capture.session_id, seq=seq)
        mine = [s for s in segments if s.text.strip()]
        chunk = await asyncio.to_thread(rt.storage.get_chunk, capture.session_id, seq)
        seconds = (chunk.end_ms - chunk.start_ms) / 1000
        await self.send({"type": "conversation.item.input_audio_transcription.completed", "event_id": event_id(),
                         "item_id": item, "content_index": 0,
                         "transcript": " ".join(s.text.strip() for s in mine),
                         "usage": {"type": "duration", "seconds": round(seconds, 3)}})


async def close_quietly(ws: WebSocket, code: int) -> None:
    """Close our side unless the client is gone already (then there is nobody to tell)."""
    if ws.application_state != WebSocketState.CONNECTED or ws.client_state != WebSocketState.CONNECTED:
        return
    with contextlib.suppress(WebSocketDisconnect):  # it left between the check and the close
        await ws.close(code)


class RealtimeEndpoint:
    """The `/v1/realtime` route: access, the live-socket limit, then one `RealtimeSocket`."""

    def __init__(self, context: ApiContext, registry: Callable[[], Any]) -> None:
        self.context = context
        self.registry = registry

    async def serve(self, ws: WebSocket) -> None:
        offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        await ws.accept(subprotocol="realtime" if "realtime" in offered else None)
        if (refusal := self._refusal(ws, offered)) is not None:
            with contextlib.suppress(WebSocketDisconnect):
                await ws.send_text(json.dumps(error_event(refusal[0])))
            await close_quietly(ws, refusal[1])
            return
        await RealtimeSocket(ws, self.context, self.registry).run()
        await close_quietly(ws, NORMAL_CLOSE)

    def _refusal(self, ws: WebSocket, offered: list[str]) -> tuple[OpenAIError, int] | None:
        """Why this socket may not go on (and its close code), or None."""
        if ws.query_params.get("intent", "transcription") != "transcription":
            return OpenAIError(400, "this server serves transcription sessions only: connect with "
                               "?intent=transcription", param="intent", code="unsupported_intent"), POLICY_VIOLATION
        headers = dict(ws.headers)
        token = next((p[len(KEY_PROTOCOL):] for p in offered if p.startswith(KEY_PROTOCOL)), None)
        token = token or ws.query_params.get("api_key")
        if token and "authorization" not in headers:
            headers["authorization"] = f"Bearer {token}"
        try:
            denied = None
            ws.scope[PRINCIPAL_KEY] = principal_of(ws.client.host if ws.client else None, headers)
        except ApiError as exc:
            if exc.status == 503:
                return from_library(exc), TRY_AGAIN_LATER
            denied = exc
        try:
            registry = self.registry()
        except (ApiError, ScribeError) as exc:  # the app could not start: 503 as an event
            return from_library(exc), TRY_AGAIN_LATER
        if denied is not None:
            return from_library(denied), POLICY_VIOLATION
        if registry.is_full():
            return OpenAIError(429, f"this server is already recording {registry.count()} live sessions, its "
                               "limit (SCRIBE_MAX_LIVE_SESSIONS); try again when one stops",
                               code="session_limit"), TRY_AGAIN_LATER
        return None
