"""The REST API: the app process serves its data to the CLI and other programs under `/api`.

`create_api(context)` builds a FastAPI app that `scribe/server.py` mounts beside the
Streamlit UI (`st.App(routes=...)`), so it shares the process's Runtime: the one DuckDB
connection, the transcription queue and the loaded model. Handlers are plain functions
(FastAPI runs them on its thread pool, never on the event loop) over the same library
calls as the pages and the CLI: `export.render`, `search.search`, `ingest.ingest_file`,
`summaries.summarize_session`, `history.*`, `retranscribe.retry_failed`.

Errors are `{"error": "..."}` with a status code. Who calls is resolved by
`scribe.api_auth.current_principal` (every route depends on it); what they may see and change
is decided by `scribe.access`: a session the caller may not read answers 404 like a missing one.
OpenAPI docs are served at `/api/docs` (Swagger UI from local files; no CDN).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, AsyncGenerator, Callable

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from scribe import __version__, backends
from scribe.access import check_backend_allowed, readable_session, writable_session
from scribe.api_access import ApiError
from scribe.api_auth import PRINCIPAL_KEY, AuthContext, carries_personal_token, current_principal, install, installed, resolve
from scribe.api_memory import ENROL_PATH, add_memory_routes
from scribe.chunking import FILE_POLICY_NAMES, parse_policy
from scribe.core import SESSION_STATUSES, SessionRow, database_id
from scribe.errors import AccessDeniedError, AudioDecodeError, NotFoundError, ScribeError, SignInError, UploadTooLargeError
from scribe.export import FORMATS, MIME_TYPES, download_name, render
from scribe.guard import send_json
from scribe.identity import Principal
from scribe.memory import usage as memory_usage
from scribe.runtime import Runtime
from scribe.storage import MAX_EXPECTED_SPEAKERS, Storage, check_expected_speakers
from scribe.storage.vocabulary import split_terms
from scribe.summaries import OFFLINE_SUMMARIZER

log = logging.getLogger(__name__)

MB = 1024 * 1024
FORM_OVERHEAD_BYTES = 64 * 1024
"""Room for multipart boundaries and the small text fields beside the file."""
MAX_PAGE = 10_000
MAX_OFFSET = 2**31 - 1
"""Largest `offset` a list takes (beyond it DuckDB's integer overflows; no list is that long)."""


@dataclass
class ApiContext:
    """What the API needs from the process that serves it."""

    runtime: Callable[[], Runtime]
    """The process's Runtime (the one the pages use for the environment's settings)."""
    runtime_for: Callable[[str | None, str | None], Runtime]
    """The Runtime for a chosen backend and model (built once, like a sidebar choice)."""
    token: Callable[[], str | None]
    """SCRIBE_API_TOKEN; None serves loopback clients only. Raises ApiError (503) when the
    settings could not be read, so a bad setting never opens the API."""
    live_sessions: Callable[[], int] = lambda: 0
    team_mode: Callable[[], bool] = lambda: False
    """Sign-in is configured: the API then serves no caller without a token."""


# -- access -------------------------------------------------------------------
JSON_BODY_LIMIT = MB
"""Largest request body of any route but the upload (renames, summaries, lab runs are small)."""
DRAIN_BYTES = 16 * MB
"""A body declared at most this far over its limit is read and dropped before the 413: most
clients send the whole body before they read the answer, and an answer sent mid-body reaches
them as a reset connection instead of the message. Larger ones are answered at once."""
BODY_IDLE_SECONDS = 30.0
"""A request body that sends nothing for this long is answered 408 (a held-open slow body)."""


class AccessGate:
    """ASGI middleware in front of the API's routes: decides access from the headers alone,
    before any body byte is read, then bounds the body (size and idle time).

    FastAPI reads and parses a JSON body before a route's dependencies run, so a check there
    comes after a caller without access has made the process hold their whole body."""

    def __init__(self, app: Any, context: "ApiContext",
                 error_body: Callable[[int, str], dict[str, Any]] = lambda _status, message: {"error": message},
                 auth: AuthContext | None = None) -> None:
        self.app = app
        self.context = context
        self.error_body = error_body
        """The answer's JSON for (status, message): `/api`'s shape, or `/v1`'s (OpenAI's)."""
        self.auth = auth
        """How callers are resolved (None: the context `/api` installed, scribe.api_auth)."""

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        client = scope["client"][0] if scope.get("client") else None
        error = None
        try:
            # The caller, once per request; a personal token is a database lookup, done off the loop.
            auth = self.auth or installed()
            if carries_personal_token(headers):
                scope[PRINCIPAL_KEY] = await run_in_threadpool(resolve, client, headers, auth)
            else:
                scope[PRINCIPAL_KEY] = resolve(client, headers, auth)
            limit = self._body_limit(scope)
        except ApiError as exc:
            error = exc
        if error is not None:
            return await send_json(send, error.status, self.error_body(error.status, error.message))
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            if int(declared) <= limit + DRAIN_BYTES:
                await _drain(receive)
            return await send_json(send, 413, self.error_body(413, _too_large(limit)))
        await _answering_failures(self.app, scope, _bounded(receive, limit), send, self.error_body)

    def _body_limit(self, scope: dict[str, Any]) -> int:
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if path.startswith(root):
            path = path[len(root):]
        if path.rstrip("/") in ("/transcriptions", "/audio/transcriptions", ENROL_PATH):  # /api's, /v1's
            return self.context.runtime().settings.max_upload_mb * MB + FORM_OVERHEAD_BYTES
        return JSON_BODY_LIMIT


async def _answering_failures(app: Any, scope: dict[str, Any], receive: Callable, send: Callable,
                              error_body: Callable[[int, str], dict[str, Any]]) -> None:
    """Run `app`; an exception no handler took is logged once here (with its traceback) and
    answered 500. Starlette's outer error middleware would log it a second time by re-raising
    it to the server."""
    started = False

    async def tracking(message: dict[str, Any]) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)
    try:
        await app(scope, receive, tracking)
    except Exception as exc:
        log.error("API request failed: %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
        if not started:
            await send_json(send, 500, error_body(500, "internal error (see the app's log)"))


def _too_large(limit: int) -> str:
    if limit > JSON_BODY_LIMIT:
        return f"upload is over the limit of {limit // MB} MB (SCRIBE_MAX_UPLOAD_MB)"
    return f"request body is over {limit // 1024} KB"


async def _drain(receive: Callable) -> None:
    """Read a body to its end, keeping nothing (each read waits at most BODY_IDLE_SECONDS)."""
    while True:
        try:
            message = await asyncio.wait_for(receive(), BODY_IDLE_SECONDS)
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def _bounded(receive: Callable, limit: int) -> Callable:
    """`receive` that stops a body at `limit` bytes (413) or after BODY_IDLE_SECONDS of silence (408)."""
    seen = 0

    async def bounded() -> dict[str, Any]:
        nonlocal seen
        try:
            message = await asyncio.wait_for(receive(), BODY_IDLE_SECONDS)
        except TimeoutError:
            raise StarletteHTTPException(408, f"no request body data for {BODY_IDLE_SECONDS:.0f} s") from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise StarletteHTTPException(413, _too_large(limit))
        return message
    return bounded


# -- the app -------------------------------------------------------------------
def create_api(context: ApiContext) -> FastAPI:
    """The FastAPI app to mount at /api."""
    from fastapi_offline import FastAPIOffline

    api = FastAPIOffline(title="Scribe API", version=__version__, docs_url="/docs", redoc_url=None,
                         description="Sessions, transcripts, search, uploads and summaries of a "
                                     "running Scribe app. Errors are `{\"error\": \"...\"}`.")
    bearer = HTTPBearer(auto_error=False, description="a personal API token, or SCRIBE_API_TOKEN")
    api.state.scribe_auth = auth = AuthContext(
        service_token=context.token, team_mode=context.team_mode,
        storage=lambda: context.runtime().storage, rules=lambda: context.runtime().settings.entry_rules)
    install(auth)

    def require_access(request: Request,
                       _credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        """Declares the bearer scheme in the OpenAPI document; AccessGate has already resolved
        the caller (scribe.api_auth), before any body byte was read."""
        current_principal(request)

    router = APIRouter(dependencies=[Depends(require_access)])
    _add_routes(router, context)
    api.include_router(router)
    _add_error_handlers(api)
    api.add_middleware(AccessGate, context=context, auth=auth)
    return api


def _add_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @api.exception_handler(ScribeError)
    async def _scribe_error(_request: Request, exc: ScribeError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=status_for(exc))

    @api.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=400)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)



def status_for(exc: ScribeError) -> int:
    """HTTP status for a library error."""
    from scribe.history import DeleteRefusedError

    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, SignInError):
        return 401
    if isinstance(exc, AccessDeniedError):
        return 403
    if isinstance(exc, UploadTooLargeError):
        return 413
    if isinstance(exc, DeleteRefusedError):
        return 409
    return 400  # bad input: audio, settings, backend or model choice, query, title


# -- JSON shapes ---------------------------------------------------------------
def session_json(session: SessionRow, counts: dict[str, int]) -> dict[str, Any]:
    """A session as `python -m scribe sessions --json` prints it: its row plus chunk counts."""
    return {**asdict(session), "chunks": counts}


def _chunk_json(chunk) -> dict[str, Any]:
    data = asdict(chunk)
    data.pop("audio_path", None)  # a server path: of no use to a client
    data["start"], data["end"] = chunk.start_ms / 1000, chunk.end_ms / 1000
    return data


def _epoch(value: str | None, name: str) -> float | None:
    """Epoch seconds, or an ISO 8601 date/time (UTC when it has no offset)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name} must be epoch seconds or an ISO 8601 date, not {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _live_words(rt: Any) -> dict[str, Any] | None:
    """The partial lane's capacity and load (None when partials are off)."""
    if rt.partials is None:
        return None
    load = rt.partials.load()
    return {"capacity": load.capacity, "live": load.live, "lagging": load.over,
            "session_cost": None if load.session_cost is None else round(load.session_cost, 3),
            "pace_s": round(load.pace_s, 3), "wait_s": round(load.wait_s, 2)}


Count = Annotated[int, Field(ge=0, le=2**31 - 1)]


class LabRun(BaseModel):
    """One chunking-lab run as `Storage.save_lab_run` stores it (LAB_RUN_FIELDS, typed)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    id: str | None = None
    created_at: float | None = None
    experiment: str
    audio_label: str
    audio_seconds: float
    policy: str
    backend: str
    model: str
    wer: float
    chunks: Count
    mean_chunk_s: float
    latency_s: float
    processing_s: float
    calls: Count
    cost_usd: float
    words_lost: Count
    words_duplicated: Count
    reference_words: Count
    hypothesis: str


def _memory(rt: Runtime) -> dict[str, Any]:
    """Where the process's memory is: the operator's figure, so health gives it to administrators
    only (in solo mode the local user is one)."""
    return {**memory_usage(), "database_mb": rt.storage.memory_mb()}


# -- routes ---------------------------------------------------------------------
Caller = Depends(current_principal)
"""Every route's caller (`scribe.api_auth.current_principal`)."""


def _add_routes(router: APIRouter, context: ApiContext) -> None:
    def storage() -> Storage:
        return context.runtime().storage

    @router.get("/health", summary="status, version, backend, model, queue depth, live sessions, memory")
    def health(who: Principal = Caller) -> dict[str, Any]:
        rt = context.runtime()
        stats = rt.pipeline.stats()
        return {"status": "ok", "version": __version__, "backend": rt.transcriber.name,
                "model": rt.transcriber.model, "database": Path(rt.storage.path).name,
                "database_id": database_id(rt.storage.path),
                "queue": {"depth": stats.queued + stats.in_flight + stats.intake,
                          "in_flight": stats.in_flight,
                          "audio_seconds_waiting": round(stats.audio_seconds_waiting, 3)},
                "live_sessions": context.live_sessions(), "live_words": _live_words(rt),
                "memory": _memory(rt) if who.is_admin else None,
                "token_required": bool(context.token()), "sign_in": context.team_mode()}

    @router.get("/me", summary="who the API takes the caller for")
    def me(who: Principal = Caller) -> dict[str, Any]:
        return {"user_id": who.user_id, "email": who.email, "name": who.name, "is_admin": who.is_admin}

    @router.get("/sessions", summary="sessions the caller may read, newest first")
    def list_sessions(status: list[str] = Query(default=[], description="repeat or comma-separate"),
                      since: str | None = Query(default=None, description="epoch seconds or ISO 8601"),
                      until: str | None = Query(default=None, description="epoch seconds or ISO 8601"),
                      limit: int = Query(default=50, ge=1, le=MAX_PAGE),
                      offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
                      shared_with_me: bool = Query(default=False, description="only other people's "
                                                   "sessions shared with the caller"),
                      who: Principal = Caller) -> dict[str, Any]:
        statuses = [s.strip() for raw in status for s in raw.split(",") if s.strip()]
        if bad := [s for s in statuses if s not in SESSION_STATUSES]:
            raise ApiError(400, f"unknown status {bad[0]!r}: use {', '.join(SESSION_STATUSES)}")
        db = storage()
        filters: dict[str, Any] = {"statuses": statuses, "since": _epoch(since, "since"),
                                   "until": _epoch(until, "until"), "visible_to": who,
                                   "shared_with_me": shared_with_me}
        rows = db.list_sessions(limit=limit, offset=offset, **filters)
        counts = db.chunk_counts_many([r.id for r in rows])
        return {"sessions": [session_json(r, counts[r.id]) for r in rows],
                "total": db.count_sessions(**filters), "limit": limit, "offset": offset}

    @router.get("/sessions/{session_id}", summary="one session with its chunks")
    def get_session(session_id: str, who: Principal = Caller) -> dict[str, Any]:
        db = storage()
        session = readable_session(db, who, session_id)
        chunks = db.list_chunks(session.id)
        return {**session_json(session, db.counts_of(chunks)),  # one read: counts and list agree
                "chunk_list": [_chunk_json(c) for c in chunks],
                "transcripts": db.transcript_counts(session.id),
                "expected_speakers": (db.diarization_state(session.id) or {}).get("expected_speakers")}

    @router.get("/sessions/{session_id}/transcript", summary="the transcript, as the export writes it",
                response_class=Response)
    def transcript(session_id: str, format: str = Query(default="txt", description="txt|md|srt|vtt|json"),
                   transcript: str | None = Query(default=None, description="live|final; default: "
                                                  "final when there is one"),
                   who: Principal = Caller) -> Response:
        from scribe.history import choose_transcript

        db = storage()
        session = readable_session(db, who, session_id)
        if format not in FORMATS:
            raise ApiError(400, f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
        if transcript not in (None, "live", "final"):
            raise ApiError(400, f"unknown transcript {transcript!r}: use live or final")
        shown, available = choose_transcript(db, session.id, transcript)
        if transcript and transcript not in available:
            raise ApiError(404, f"session {session.id} has no {transcript} transcript")
        body = render(format, session, db.list_segments(session.id, shown))
        name = download_name(session, format, shown)
        return Response(body.encode("utf-8"), media_type=f"{MIME_TYPES[format]}; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "X-Scribe-Transcript": shown})

    @router.get("/sessions/{session_id}/audio", summary="the session's audio (FLAC)", response_class=Response)
    def audio(session_id: str, who: Principal = Caller) -> Response:
        from scribe.history import session_audio_bytes

        db = storage()
        session = readable_session(db, who, session_id)
        body = session_audio_bytes(db, session.id)
        if not body:
            raise ApiError(404, f"session {session.id} has no stored audio")
        return Response(body, media_type="audio/flac",
                        headers={"Content-Disposition": f'attachment; filename="{session.id}.flac"'})

    @router.get("/search", summary="search the transcripts the caller may read (words, \"quoted phrases\")")
    def search(q: str = Query(description='words and "quoted phrases"'),
               limit: int = Query(default=20, ge=1, le=MAX_PAGE),
               offset: int = Query(default=0, ge=0, le=MAX_OFFSET), who: Principal = Caller) -> dict[str, Any]:
        from scribe.search import search as run_search

        page = run_search(storage(), q, limit=limit, offset=offset, visible_to=who)
        return {"query": page.query, "total": page.total, "limit": limit, "offset": offset,
                "hits": [{**asdict(h), "start": h.start_ms / 1000, "end": h.end_ms / 1000}
                         for h in page.hits]}

    @router.patch("/sessions/{session_id}", summary="rename a session (owner or admin)")
    def rename(session_id: str, body: dict[str, Any] = Body(examples=[{"title": "Weekly planning"}]),
               who: Principal = Caller) -> dict[str, Any]:
        from scribe.history import rename_session

        db = storage()
        writable_session(db, who, session_id)
        if not isinstance(body.get("title"), str):
            raise ApiError(400, 'send {"title": "..."}')
        session = rename_session(db, session_id, body["title"])
        return session_json(session, db.chunk_counts(session.id))

    @router.delete("/sessions/{session_id}", summary="delete a session: its rows and its audio folder "
                   "(owner or admin)")
    def delete(session_id: str, force: bool = Query(default=False, description="even while recording "
                                                    "or queued"), who: Principal = Caller) -> dict[str, Any]:
        from scribe.history import delete_session

        rt = context.runtime()
        report = delete_session(rt.storage, rt.settings.audio_dir, session_id, force=force, actor=who)
        return {"session_id": report.session_id, "segments": report.segments, "chunks": report.chunks,
                "summaries": report.summaries, "audio_files": report.audio_files}

    @router.post("/sessions/{session_id}/retry",
                 summary="re-queue the session's failed chunks (on the chosen backend and model; owner or admin)")
    def retry(session_id: str, body: dict[str, Any] | None = Body(
            default=None, examples=[{"backend": backends.DEFAULT, "model": "base"}]),
            who: Principal = Caller) -> dict[str, Any]:
        from scribe.retranscribe import retry_failed

        body = body or {}
        writable_session(context.runtime().storage, who, session_id)
        if _text(body, "backend") or _text(body, "model"):
            check_backend_allowed(who, context.runtime().settings, _text(body, "backend"), _text(body, "model"))
        rt = context.runtime_for(_text(body, "backend"), _text(body, "model"))
        return {"session_id": session_id, "requeued": retry_failed(rt, session_id)}

    @router.post("/lab/runs", status_code=201, summary="store one chunking-lab run (python -m scribe eval)")
    def save_lab_run(run: LabRun, who: Principal = Caller) -> dict[str, Any]:
        storage().save_lab_run(run.model_dump(exclude_none=True), owner_id=who.user_id)
        return {"stored": True}

    _add_summary_routes(router, context)
    _add_speaker_routes(router, context)
    _add_sharing_routes(router, context)
    _add_token_routes(router, context)
    _add_upload_route(router, context)
    add_memory_routes(router, context, read_form)


def _text(body: dict[str, Any], name: str) -> str | None:
    """An optional text field of a JSON body; anything else is a 400."""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    return value or None


def _number(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, f"{name} must be a whole number")
    return value


def _add_summary_routes(router: APIRouter, context: ApiContext) -> None:
    @router.post("/sessions/{session_id}/summary", status_code=201,
                 summary="summarize (local or gemini) and store a new version (owner or admin)")
    def summarize(session_id: str, body: dict[str, Any] | None = Body(
            default=None, examples=[{"backend": OFFLINE_SUMMARIZER, "transcript": None}]),
            who: Principal = Caller) -> dict[str, Any]:
        from scribe.summaries import check_summarizer_allowed, summarize_session

        body = body or {}
        rt = context.runtime()
        writable_session(rt.storage, who, session_id)
        backend = str(body.get("backend") or OFFLINE_SUMMARIZER)
        check_summarizer_allowed(who, rt.settings, backend)
        summary, row = summarize_session(rt.storage, rt.settings, session_id, backend=backend,
                                         transcript=body.get("transcript"))
        return {"session_id": row.session_id, "version": row.version, **summary.to_dict()}

    @router.get("/sessions/{session_id}/summary", summary="the latest stored summary")
    def latest_summary(session_id: str, who: Principal = Caller) -> dict[str, Any]:
        from scribe.summaries import from_row

        db = context.runtime().storage
        readable_session(db, who, session_id)
        rows = db.list_summaries(session_id)
        if not rows:
            raise ApiError(404, f"session {session_id} has no summary yet")
        return {"session_id": session_id, "version": rows[0].version, **from_row(rows[0]).to_dict()}


def _add_speaker_routes(router: APIRouter, context: ApiContext) -> None:
    """The `speakers` command's twins; each answers the session's speakers after the change."""
    from scribe import diarization

    def answer(session_id: str) -> dict[str, Any]:
        return {"session_id": session_id, "speakers": diarization.speaker_table(context.runtime().storage,
                                                                                session_id)}

    @router.get("/sessions/{session_id}/speakers", summary="the session's speakers: id, name, segments, seconds")
    def list_speakers(session_id: str, who: Principal = Caller) -> dict[str, Any]:
        readable_session(context.runtime().storage, who, session_id)
        return answer(session_id)

    @router.patch("/sessions/{session_id}/speakers/{speaker_id}", summary="name a speaker")
    def rename_speaker(session_id: str, speaker_id: int,
                       body: dict[str, Any] = Body(examples=[{"name": "Ana"}]),
                       who: Principal = Caller) -> dict[str, Any]:
        db = context.runtime().storage
        writable_session(db, who, session_id)
        if not isinstance(body.get("name"), str):
            raise ApiError(400, 'send {"name": "..."}')
        db.rename_speaker(session_id, speaker_id, body["name"])
        return answer(session_id)

    @router.post("/sessions/{session_id}/speakers/merge", summary="DROP's segments become KEEP's")
    def merge_speakers(session_id: str, body: dict[str, Any] = Body(examples=[{"keep": 1, "drop": 2}]),
                       who: Principal = Caller) -> dict[str, Any]:
        db = context.runtime().storage
        writable_session(db, who, session_id)
        db.merge_speakers(session_id, _number(body, "keep"), _number(body, "drop"))
        return answer(session_id)

    @router.post("/sessions/{session_id}/speakers/{speaker_id}/split",
                 summary="split a speaker into two voices (embeds that speaker's audio: seconds)")
    def split_speaker(session_id: str, speaker_id: int, who: Principal = Caller) -> dict[str, Any]:
        db = context.runtime().storage
        writable_session(db, who, session_id)
        diarization.split_speaker(db, session_id, speaker_id)
        return answer(session_id)

    @router.post("/sessions/{session_id}/speakers/relabel",
                 summary="cluster the whole recording again with N voices (null: estimate); waits for it")
    def relabel_speakers(session_id: str, body: dict[str, Any] | None = Body(
            default=None, examples=[{"speakers": 3}]), who: Principal = Caller) -> dict[str, Any]:
        rt = context.runtime()
        writable_session(rt.storage, who, session_id)
        count = None if (body or {}).get("speakers") is None else _number(body or {}, "speakers")
        rt.storage.set_expected_speakers(session_id, count)
        diarization.relabel_session(rt.storage, session_id, max_speakers=rt.settings.max_speakers)
        return answer(session_id)


def _sharing_json(db: Storage, session: SessionRow) -> dict[str, Any]:
    from scribe.accounts import owner_label

    return {"session_id": session.id, "owner": owner_label(db, session), "visibility": session.visibility,
            "shared_with": [p.email for p in db.session_shares(session.id)]}


def _add_sharing_routes(router: APIRouter, context: ApiContext) -> None:
    @router.get("/sessions/{session_id}/sharing", summary="owner, visibility and the people it is shared with")
    def sharing(session_id: str, who: Principal = Caller) -> dict[str, Any]:
        db = context.runtime().storage
        return _sharing_json(db, readable_session(db, who, session_id))

    @router.put("/sessions/{session_id}/sharing", summary="change visibility, share with or unshare "
                "people by email (owner or admin)")
    def change_sharing(session_id: str, body: dict[str, Any] = Body(examples=[
            {"visibility": "shared", "add": ["ana@example.com"], "remove": []}]),
            who: Principal = Caller) -> dict[str, Any]:
        from scribe import accounts

        db = context.runtime().storage
        writable_session(db, who, session_id)
        add, remove = _emails(body, "add"), _emails(body, "remove")
        for email in add:
            accounts.person_by_email(db, email)  # every name checked before anything changes
        for email in add:
            accounts.share_with(db, who, session_id, email)
        for email in remove:
            for person in db.users_by_email(email):
                accounts.unshare(db, who, session_id, person.id)
        if body.get("visibility") is not None:
            accounts.set_visibility(db, who, session_id, str(body["visibility"]))
        return _sharing_json(db, db.get_session(session_id))

    @router.put("/sessions/{session_id}/owner", summary="hand a session to another person (admin)")
    def reassign(session_id: str, body: dict[str, Any] = Body(examples=[{"email": "ana@example.com"}]),
                 who: Principal = Caller) -> dict[str, Any]:
        from scribe.accounts import reassign_owner

        db = context.runtime().storage
        if not isinstance(body.get("email"), str):
            raise ApiError(400, 'send {"email": "..."}')
        return _sharing_json(db, reassign_owner(db, who, session_id, body["email"]))

    @router.get("/audit", summary="the audit log: deletes, sharing, tokens, reassignments (admin)")
    def audit(limit: int = Query(default=200, ge=1, le=MAX_PAGE), offset: int = Query(default=0, ge=0),
              who: Principal = Caller) -> dict[str, Any]:
        if not who.is_admin:
            raise ApiError(403, "only an administrator may read the audit log")
        rows = context.runtime().storage.list_audit(limit=limit, offset=offset)
        return {"events": [asdict(r) for r in rows]}


def _emails(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"{key} must be a list of email addresses")
    return value


def _add_token_routes(router: APIRouter, context: ApiContext) -> None:
    @router.get("/tokens", summary="the caller's personal API tokens (never the secrets)")
    def tokens(who: Principal = Caller) -> dict[str, Any]:
        return {"tokens": [asdict(t) for t in context.runtime().storage.list_tokens(who.user_id)]}

    @router.post("/tokens", status_code=201, summary="create a personal API token: its secret is in "
                 "this answer only")
    def create_token(body: dict[str, Any] = Body(examples=[{"name": "laptop CLI"}]),
                     who: Principal = Caller) -> dict[str, Any]:
        from scribe.accounts import create_token as make

        new = make(context.runtime().storage, who, str(body.get("name") or ""))
        return {**asdict(new.row), "token": new.secret}

    @router.delete("/tokens/{token_id}", summary="revoke one of the caller's tokens")
    def revoke(token_id: str, who: Principal = Caller) -> dict[str, Any]:
        from scribe.accounts import revoke_token

        revoke_token(context.runtime().storage, who, token_id)
        return {"revoked": token_id}


# -- uploads ----------------------------------------------------------------------
def _upload_form() -> dict[str, Any]:
    """The upload's form for the OpenAPI docs; backend choices from the registry."""
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"}, "title": {"type": "string"},
        "backend": {"type": "string", "enum": list(backends.names())}, "model": {"type": "string"},
        "chunk_seconds": {"type": "number"}, "policy": {"type": "string", "enum": list(FILE_POLICY_NAMES)},
        "speakers": {"type": "integer", "minimum": 1, "maximum": MAX_EXPECTED_SPEAKERS,
                     "description": "how many people speak (speaker labels use it; default: estimated)"},
        "vocabulary": {"type": "string", "description": "terms for this file only, comma-separated, "
                       "on top of the team vocabulary"},
    }}}}}}


def _add_upload_route(router: APIRouter, context: ApiContext) -> None:
    @router.post("/transcriptions", status_code=202, openapi_extra=_upload_form(),
                 summary="upload an audio file; answers once its chunks are stored and queued")
    async def create_transcription(request: Request) -> JSONResponse:
        limit = context.runtime().settings.max_upload_mb
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit * MB + FORM_OVERHEAD_BYTES:
            raise UploadTooLargeError(f"file is {int(declared) / MB:.0f} MB; the limit is {limit} MB "
                                      "(SCRIBE_MAX_UPLOAD_MB)")
        who = current_principal(request)
        form = await read_form(request, limit * MB + FORM_OVERHEAD_BYTES)
        try:
            return await run_in_threadpool(_ingest_upload, context, form, who)
        finally:
            await form.close()


async def read_form(request: Request, max_bytes: int, *, max_fields: int = 8):
    """The multipart body, refused with 413 as soon as it passes `max_bytes` (also `/v1`'s)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "send the audio as multipart/form-data with a `file` field")

    async def limited() -> AsyncGenerator[bytes, None]:
        seen = 0
        async for piece in request.stream():
            seen += len(piece)
            if seen > max_bytes:
                raise UploadTooLargeError(f"upload is over the limit of {max_bytes // MB} MB "
                                          "(SCRIBE_MAX_UPLOAD_MB)")
            yield piece
    try:
        return await MultiPartParser(request.headers, limited(), max_files=1, max_fields=max_fields).parse()
    except MultiPartException as exc:
        raise ApiError(400, f"bad multipart body: {exc.message}") from None


def _ingest_upload(context: ApiContext, form, who: Principal) -> JSONResponse:
    """Same checks and ingest path as the Record page's upload (runs on a pool thread)."""
    from scribe.ingest import check_upload, ingest_file

    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise ApiError(400, "no `file` field in the form")
    fields = {name: str(form.get(name) or "").strip() or None
              for name in ("title", "backend", "model", "chunk_seconds", "policy", "speakers", "vocabulary")}
    speakers = _speaker_count(fields["speakers"])
    if fields["backend"] or fields["model"]:
        check_backend_allowed(who, context.runtime().settings, fields["backend"], fields["model"])
    vocabulary = split_terms(fields["vocabulary"] or "")
    rt = context.runtime_for(fields["backend"], fields["model"])
    policy = parse_policy(fields["policy"] or rt.settings.chunk_policy, _chunk_seconds(fields, rt))
    checked = check_upload(rt.settings, size=upload.size or 0, title=fields["title"],
                           file_name=upload.filename)
    with tempfile.TemporaryDirectory(prefix="scribe-upload-") as tmp:
        path = Path(tmp) / checked.file_name
        _copy(upload.file, path)
        started = time.monotonic()
        try:
            result = ingest_file(path, storage=rt.storage, pipeline=rt.pipeline, policy=policy,
                                 title=checked.title or path.stem, source="upload",
                                 max_audio_hours=checked.max_audio_hours, expected_speakers=speakers,
                                 vocabulary=vocabulary, owner_id=who.user_id)
        except AudioDecodeError as exc:  # name the upload, not this server's temp folder
            raise AudioDecodeError(str(exc).replace(f"{tmp}/", "")) from None
    log.info("session=%s uploaded through the API: %d chunks, %.1f s of audio in %.1f s",
             result.session.id, result.chunks, result.audio_seconds, time.monotonic() - started)
    body = {**session_json(result.session, rt.storage.chunk_counts(result.session.id)),
            "session_id": result.session.id, "chunk_count": result.chunks,
            "audio_seconds": result.audio_seconds, "expected_speakers": speakers}
    return JSONResponse(body, status_code=202, headers={"Location": f"sessions/{result.session.id}"})


def _speaker_count(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return check_expected_speakers(int(raw))
    except ValueError:
        raise ApiError(400, f"speakers must be a whole number of people, not {raw!r}") from None


def _chunk_seconds(fields: dict[str, str | None], rt: Runtime) -> float:
    if fields["chunk_seconds"] is None:
        return rt.settings.chunk_seconds
    try:
        seconds = float(fields["chunk_seconds"])
    except ValueError:
        raise ApiError(400, f"chunk_seconds must be a number, not {fields['chunk_seconds']!r}") from None
    if not 1.0 <= seconds <= 600.0:
        raise ApiError(400, "chunk_seconds must be between 1 and 600")
    return seconds


def _copy(source, path: Path, block: int = MB) -> None:
    source.seek(0)
    with open(path, "wb") as out:
        while piece := source.read(block):
            out.write(piece)
