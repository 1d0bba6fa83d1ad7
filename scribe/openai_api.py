"""The OpenAI-compatible API under `/v1`: transcription of files, the model list, live audio.

Programs that already speak OpenAI's audio API (the official SDKs, automation tools, meeting
bots) send their recordings here with `base_url` pointed at Scribe. `create_openai_api`
builds a FastAPI app that `scribe/server.py` mounts at `/v1` beside `/api`, over the same
process's Runtime: a file goes through `ingest.ingest_file` (session source `api`) into the
one queue and model, its answer is read back from storage and rendered by `scribe/export.py`
(srt, vtt) or as OpenAI's JSON shapes. The realtime socket (`/v1/realtime`) is in
`scribe/realtime.py`.

Access is `/api`'s rule and body bounds (`api.AccessGate`, before any body byte is read; the
caller resolved by `scribe.api_auth`: a person, the service or the local user); errors are OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`, with the matching status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, WebSocket
from fastapi.responses import (
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from scribe import backends, models
from scribe.api import (
    FORM_OVERHEAD_BYTES,
    MB,
    AccessGate,
    ApiContext,
    ApiError,
    read_form,
)
from scribe.api_auth import current_principal
from scribe.chunking import parse_policy
from scribe.core import DecodeOptions, SegmentRow, SessionRow
from scribe.errors import (
    AudioDecodeError,
    NotFoundError,
    ScribeError,
    UploadTooLargeError,
)
from scribe.export import plain_text, to_srt, to_vtt
from scribe.identity import LOCAL, Principal
from scribe.runtime import Runtime

log = logging.getLogger(__name__)

OPENAI_MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-transcribe-diarize")
"""OpenAI's transcription model names: each means this server's configured model."""
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
GRANULARITIES = ("segment", "word")
SOURCE = "api"
"""The session source of everything that arrives through `/v1`."""
SETTLE_TIMEOUT_S = 6 * 3600.0
"""How long an answer waits for its chunks in the shared queue (a long file behind others)."""
SPEAKERS_TIMEOUT_S = 300.0
"""How long `diarized_json` waits for the whole-session speaker labels after the text."""
POLL_S = 0.2


class OpenAIError(Exception):
    """An error answer in OpenAI's shape."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or error_type(status)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def error_type(status: int) -> str:
    """OpenAI's error `type` for a status."""
    if status in (401, 403):
        return "invalid_request_error" if status == 401 else "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def from_library(exc: Exception) -> OpenAIError:
    """A Scribe error (or `/api`'s ApiError) as OpenAI's error."""
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, ApiError):
        return OpenAIError(exc.status, exc.message, code="invalid_api_key" if exc.status == 401 else None)
    if isinstance(exc, UploadTooLargeError):
        return OpenAIError(413, str(exc), param="file", code="file_too_large")
    if isinstance(exc, AudioDecodeError):
        return OpenAIError(400, str(exc), param="file", code="invalid_file")
    if isinstance(exc, NotFoundError):
        return OpenAIError(404, str(exc), code="not_found")
    return OpenAIError(400, str(exc))


# -- the models ----------------------------------------------------------------------
def model_ids(settings_model: str) -> list[str]:
    """What `/v1/models` lists: OpenAI's names (the configured model), the configured model and
    the registry's models that load with no network."""
    ready = [info.name for info in models.list_models() if info.ready_offline]
    return list(dict.fromkeys([*OPENAI_MODELS, settings_model, *ready]))


def model_json(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "scribe"}


def runtime_for_model(context: ApiContext, name: str | None) -> Runtime:
    """The Runtime that serves `name`: OpenAI's names and the configured model are the
    process's own Runtime; another registry model gets its own, like a sidebar choice."""
    runtime = context.runtime()
    name = (name or "").strip()
    if not name:
        raise OpenAIError(400, "you must provide a model parameter", param="model", code="missing_model")
    if name in OPENAI_MODELS or name == runtime.transcriber.model:
        return runtime
    if name not in model_ids(runtime.transcriber.model):
        raise OpenAIError(404, f"the model {name!r} does not exist on this server; GET /v1/models lists them",
                          param="model", code="model_not_found")
    return context.runtime_for(backends.whisper_here(), name)


# -- a transcription request --------------------------------------------------------
@dataclass
class TranscriptionRequest:
    """The form fields of `POST /v1/audio/transcriptions`, checked."""

    model: str
    response_format: str = "json"
    language: str | None = None
    granularities: list[str] = field(default_factory=lambda: ["segment"])
    stream: bool = False
    prompt: str | None = None
    temperature: float | None = None

    def options(self) -> DecodeOptions:
        """What the session's chunks are decoded with besides the server's settings."""
        return DecodeOptions(language=self.language, prompt=self.prompt or "", temperature=self.temperature)


def parse_request(form: Any) -> TranscriptionRequest:
    """Every field OpenAI's client sends, checked before any audio is read or stored."""
    text = {name: str(form.get(name) or "").strip() or None
            for name in ("model", "response_format", "language", "prompt", "temperature", "stream")}
    request = TranscriptionRequest(model=text["model"] or "", prompt=text["prompt"],
                                   response_format=(text["response_format"] or "json").lower())
    if request.response_format not in RESPONSE_FORMATS:
        raise OpenAIError(400, f"unknown response_format {text['response_format']!r}: use one of "
                          f"{', '.join(RESPONSE_FORMATS)}", param="response_format", code="invalid_value")
    request.language = check_language_code(text["language"])
    request.temperature = _temperature(text["temperature"])
    request.stream = _boolean(text["stream"], "stream")
    request.granularities = _granularities(form, request.response_format)
    if request.stream and request.response_format not in ("json", "text"):
        raise OpenAIError(400, "stream=true answers with events; use response_format json or text",
                          param="stream", code="invalid_value")
    return request


def check_language_code(value: Any) -> str | None:
    """An ISO 639-1 code Whisper knows (lower-cased), None when not given; 400 otherwise."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if value is None or not str(value).strip():
        return None
    code = str(value).strip().lower()
    if code not in _LANGUAGE_CODES:
        raise OpenAIError(400, f"unknown language {value!r}: give an ISO 639-1 code such as en or de",
                          param="language", code="invalid_language")
    return code


def _temperature(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise OpenAIError(400, f"temperature must be a number from 0 to 1, not {value!r}",
                          param="temperature", code="invalid_value")
    return number


def _boolean(value: str | None, name: str) -> bool:
    if value is None or value.lower() in ("false", "0"):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise OpenAIError(400, f"{name} must be true or false, not {value!r}", param=name, code="invalid_value")


def _granularities(form: Any, response_format: str) -> list[str]:
    given = [str(v).strip() for key in ("timestamp_granularities[]", "timestamp_granularities")
             for v in form.getlist(key) if str(v).strip()]
    if bad := [g for g in given if g not in GRANULARITIES]:
        raise OpenAIError(400, f"unknown timestamp granularity {bad[0]!r}: use segment or word",
                          param="timestamp_granularities", code="invalid_value")
    if given and response_format != "verbose_json":
        raise OpenAIError(400, "timestamp_granularities needs response_format verbose_json",
                          param="timestamp_granularities", code="invalid_value")
    return given or ["segment"]


def check_granularities(request: TranscriptionRequest, runtime: Runtime) -> None:
    """Word timestamps only from a backend that gives word times (local Whisper; not Gemini)."""
    if "word" in request.granularities and not getattr(runtime.transcriber, "word_times", False):
        raise OpenAIError(400, f"the {runtime.transcriber.name} backend gives no word times; ask for "
                          "timestamp_granularities[]=segment (the segments carry start and end)",
                          param="timestamp_granularities", code="unsupported_value")


def check_language(request: TranscriptionRequest, runtime: Runtime) -> None:
    """A language the chosen model does not decode is refused rather than ignored: an
    English-only Whisper model decodes English only; a multilingual one (and Gemini) is told
    the asked language through the session's decode options."""
    if request.language is None or request.language == "en" or not english_only(runtime):
        return
    raise OpenAIError(400, f"the model {runtime.transcriber.model} is English-only: it cannot transcribe "
                      f"language {request.language!r}; ask for a multilingual model (GET /v1/models) or "
                      "leave language out", param="language", code="unsupported_language")


def english_only(runtime: Runtime) -> bool:
    """The runtime's model decodes English only (a Whisper `*.en` model)."""
    transcriber = runtime.transcriber
    return bool(backends.runs_whisper_here(transcriber.name)
                and getattr(transcriber, "english_only", transcriber.model.endswith(".en")))


# -- the answers ---------------------------------------------------------------------
def usage(seconds: float) -> dict[str, Any]:
    return {"type": "duration", "seconds": round(seconds, 3)}


def spoken(segments: Sequence[SegmentRow]) -> list[SegmentRow]:
    return [s for s in segments if s.text.strip()]


def render_answer(request: TranscriptionRequest, session: SessionRow, segments: Sequence[SegmentRow],
                  seconds: float, language: str) -> Response:
    """The stored transcript in the asked format."""
    fmt = request.response_format
    if fmt == "text":
        return PlainTextResponse(plain_text(segments) + "\n")
    if fmt in ("srt", "vtt"):
        subtitles = (to_srt if fmt == "srt" else to_vtt)(session, segments)
        return PlainTextResponse(subtitles, media_type="text/vtt" if fmt == "vtt" else "application/x-subrip")
    body: dict[str, Any] = {"text": plain_text(segments), "usage": usage(seconds)}
    if fmt == "verbose_json":
        body.update(task="transcribe", language=language, duration=round(seconds, 3))
        if "segment" in request.granularities:
            body["segments"] = [_verbose_segment(n, s) for n, s in enumerate(spoken(segments))]
        if "word" in request.granularities:
            body["words"] = [{"word": w.text.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
                             for s in spoken(segments) for w in s.words if w.text.strip()]
    elif fmt == "diarized_json":
        body.update(task="transcribe", duration=round(seconds, 3),
                    segments=[_diarized_segment(n, s) for n, s in enumerate(spoken(segments))])
    return JSONResponse(body, headers={"X-Scribe-Session": session.id})


def _verbose_segment(n: int, s: SegmentRow) -> dict[str, Any]:
    import math

    confidence = s.confidence if s.confidence and s.confidence > 0 else None
    return {"id": n, "seek": 0, "start": s.start_ms / 1000, "end": s.end_ms / 1000, "text": s.text.strip(),
            "tokens": [], "temperature": 0.0,
            "avg_logprob": round(math.log(confidence), 4) if confidence else 0.0,
            "compression_ratio": 0.0, "no_speech_prob": s.no_speech_prob or 0.0}


def _diarized_segment(n: int, s: SegmentRow) -> dict[str, Any]:
    return {"type": "transcript.text.segment", "id": f"seg_{n}", "start": s.start_ms / 1000,
            "end": s.end_ms / 1000, "text": s.text.strip(), "speaker": s.speaker or "unknown"}


def language_code(runtime: Runtime) -> str:
    """The language the runtime's model decodes (verbose_json's `language`)."""
    return "en" if runtime.transcriber.model.endswith(".en") else runtime.settings.language


# -- the file endpoint ----------------------------------------------------------------
@dataclass
class Ingested:
    runtime: Runtime
    session: SessionRow
    seconds: float


def ingest_upload(context: ApiContext, form: Any, request: TranscriptionRequest,
                  owner: Principal = LOCAL) -> Ingested:
    """The upload into a session of `owner`'s (pool thread): `/api`'s checks and ingest path,
    source `api`."""
    from scribe.ingest import check_upload, ingest_file

    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise OpenAIError(400, "you must provide a file: send the audio as the multipart field `file`",
                          param="file", code="missing_file")
    rt = runtime_for_model(context, request.model)
    check_language(request, rt)
    check_granularities(request, rt)
    policy = parse_policy(rt.settings.chunk_policy, rt.settings.chunk_seconds)
    checked = check_upload(rt.settings, size=upload.size or 0, file_name=upload.filename)
    with tempfile.TemporaryDirectory(prefix="scribe-v1-") as tmp:
        path = Path(tmp) / checked.file_name
        _copy(upload.file, path)
        try:
            result = ingest_file(path, storage=rt.storage, pipeline=rt.pipeline, policy=policy,
                                 title=path.stem, source=SOURCE, max_audio_hours=checked.max_audio_hours,
                                 owner_id=owner.user_id, options=request.options())
        except AudioDecodeError as exc:  # name the upload, not this server's temp folder
            raise type(exc)(str(exc).replace(f"{tmp}/", "")) from None
    log.info("session=%s from /v1/audio/transcriptions: %d chunks, %.1f s of audio",
             result.session.id, result.chunks, result.audio_seconds)
    return Ingested(rt, result.session, result.audio_seconds)


def _copy(source: Any, path: Path, block: int = MB) -> None:
    source.seek(0)
    with open(path, "wb") as out:
        while piece := source.read(block):
            out.write(piece)


def settled_segments(done: Ingested, timeout: float = SETTLE_TIMEOUT_S) -> list[SegmentRow]:
    """Wait until every chunk is transcribed (pool thread); a failed chunk fails the answer."""
    from scribe.ingest import wait_for_session

    counts = wait_for_session(done.runtime.storage, done.session.id, timeout=timeout)
    if counts["pending"] or counts["processing"]:
        raise OpenAIError(504, f"session {done.session.id} is still being transcribed; it stays "
                          "stored (GET /api/sessions/{id}/transcript later)", code="timeout")
    if counts["failed"]:
        raise OpenAIError(500, f"{counts['failed']} chunk(s) of session {done.session.id} failed to "
                          "transcribe; the session is stored and can be retried "
                          "(POST /api/sessions/{id}/retry)", code="transcription_failed")
    return done.runtime.storage.list_segments(done.session.id)


def wait_for_speakers(done: Ingested, timeout: float = SPEAKERS_TIMEOUT_S) -> None:
    """diarized_json: the whole-session speaker labels (the labeler runs after the chunks)."""
    if done.runtime.speakers is None:
        raise OpenAIError(400, "diarized_json needs speaker labels: this server runs with "
                          "SCRIBE_DIARIZATION off", param="response_format", code="unsupported_value")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = done.runtime.storage.diarization_state(done.session.id) or {}
        if state.get("stage") == "final":
            return
        time.sleep(POLL_S)
    raise OpenAIError(504, f"speaker labels of session {done.session.id} are not ready yet", code="timeout")


def answer_file(done: Ingested, request: TranscriptionRequest) -> Response:
    segments = settled_segments(done)
    if request.response_format == "diarized_json":
        wait_for_speakers(done)
        segments = done.runtime.storage.list_segments(done.session.id)
    session = done.runtime.storage.get_session(done.session.id)
    return render_answer(request, session, segments, done.seconds,
                         request.language or language_code(done.runtime))


async def stream_events(done: Ingested) -> AsyncIterator[bytes]:
    """Server-sent events: one `transcript.text.delta` per chunk in order as it is stored, then
    `transcript.text.done` with the whole text (the deltas' concatenation) and the usage."""
    storage, sid = done.runtime.storage, done.session.id
    sent, pieces = 0, list[str]()
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        chunks = await run_in_threadpool(storage.list_chunks, sid)
        ready = _settled_prefix(chunks)
        if any(c.status == "failed" for c in chunks[:ready]):
            error = OpenAIError(500, f"a chunk of session {sid} failed to transcribe; the session is "
                                "stored and can be retried", code="transcription_failed")
            yield _sse({"type": "error", **error.body()})
            return
        if ready > sent:
            segments = await run_in_threadpool(storage.list_segments, sid)
            for seq in range(sent, ready):
                if text := plain_text([s for s in segments if s.seq == seq]):
                    delta = (" " if pieces else "") + text
                    pieces.append(delta)
                    yield _sse({"type": "transcript.text.delta", "delta": delta})
            sent = ready
        if chunks and sent == len(chunks):
            yield _sse({"type": "transcript.text.done", "text": "".join(pieces), "usage": usage(done.seconds)})
            return
        await asyncio.sleep(POLL_S)
    yield _sse({"type": "error", **OpenAIError(504, f"session {sid} is still being transcribed",
                                                  code="timeout").body()})


def _settled_prefix(chunks: Sequence[Any]) -> int:
    """How many chunks from the first are done or failed (deltas go out in order)."""
    n = 0
    for chunk in sorted(chunks, key=lambda c: c.seq):
        if chunk.status not in ("done", "failed"):
            break
        n += 1
    return n


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


# -- the app -----------------------------------------------------------------------------
def create_openai_api(context: ApiContext, realtime: Callable[[WebSocket], Any] | None = None) -> FastAPI:
    """The FastAPI app to mount at /v1 (`realtime`: the `/realtime` socket's handler)."""
    api = FastAPI(title="Scribe OpenAI-compatible API", docs_url=None, redoc_url=None, openapi_url=None)
    router = APIRouter()
    _add_routes(router, context)
    api.include_router(router)
    api.add_middleware(AccessGate, context=context, error_body=gate_error)  # HTTP only; the socket checks itself
    if realtime is not None:
        api.add_api_websocket_route("/realtime", realtime)
    _add_error_handlers(api)
    return api


def gate_error(status: int, message: str) -> dict[str, Any]:
    """AccessGate's refusals (token, this machine only, body too large or too slow) in OpenAI's shape."""
    if status == 413:
        return OpenAIError(413, message, param="file", code="file_too_large").body()
    return from_library(ApiError(status, message)).body()


def _add_routes(router: APIRouter, context: ApiContext) -> None:
    @router.get("/models")
    def list_models() -> dict[str, Any]:
        ids = model_ids(context.runtime().transcriber.model)
        return {"object": "list", "data": [model_json(m) for m in ids]}

    @router.get("/models/{model_id:path}")
    def get_model(model_id: str) -> dict[str, Any]:
        if model_id not in model_ids(context.runtime().transcriber.model):
            raise OpenAIError(404, f"the model {model_id!r} does not exist on this server",
                              param="model", code="model_not_found")
        return model_json(model_id)

    @router.post("/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        who = current_principal(request)
        limit = context.runtime().settings.max_upload_mb * MB + FORM_OVERHEAD_BYTES
        form = await read_form(request, limit, max_fields=16)
        try:
            parsed = parse_request(form)
            done = await run_in_threadpool(ingest_upload, context, form, parsed, who)
        finally:
            await form.close()
        if parsed.stream:
            return StreamingResponse(stream_events(done), media_type="text/event-stream",
                                     headers={"X-Scribe-Session": done.session.id, "Cache-Control": "no-cache"})
        return await run_in_threadpool(answer_file, done, parsed)


def _add_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(OpenAIError)
    async def _openai_error(_request: Request, exc: OpenAIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @api.exception_handler(ScribeError)
    async def _scribe_error(_request: Request, exc: ScribeError) -> JSONResponse:
        error = from_library(exc)
        return JSONResponse(error.body(), status_code=error.status)

    @api.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        error = from_library(exc)
        return JSONResponse(error.body(), status_code=error.status)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = OpenAIError(exc.status_code, str(exc.detail))
        return JSONResponse(error.body(), status_code=exc.status_code)

    @api.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> JSONResponse:
        log.error("/v1 request failed", exc_info=exc)
        error = OpenAIError(500, "internal error (see the app's log)")
        return JSONResponse(error.body(), status_code=500)
