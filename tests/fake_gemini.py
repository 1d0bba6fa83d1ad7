"""A local stand-in for Gemini's REST `generateContent`, driven through the real SDK.

`FakeGemini` is a threading HTTP server on 127.0.0.1 (random port) that answers
`POST /{v1|v1beta}/models/{model}:generateContent` like the real API:

- checks the `x-goog-api-key` header (missing -> 403, unknown -> 400 API_KEY_INVALID,
  revoked -> 403 PERMISSION_DENIED), as Google does;
- decodes the inline audio (base64 WAV or FLAC) to learn its duration and a
  fingerprint, so a script can tell chunks apart and count attempts per chunk;
- records every request (`fake.requests`) with its arrival time, model, path,
  API version, audio duration and prompt text;
- answers per a script: `fake.script(answer, ...)` queues answers used in order,
  `fake.responder = fn(request) -> Answer` decides per request, and otherwise an
  audio prompt gets a transcript covering its audio and a text prompt gets
  `fake.text_reply` (a JSON object, for summaries).

Answers: `ok()`, `transcript(segments)`, `json_reply(obj)`, `rate_limited(delay_s)`,
`server_error(code)`, `hang(seconds)`, `malformed()`, `empty_candidates()`,
`forbidden()`, `bad_request(message)`, `not_found()`.

Use the `fake_gemini` fixture (one server per test), or `fake_gemini_factory`
to start several with different keys. Point the SDK at `fake.base_url`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest
import soundfile as sf

PATH_RE = re.compile(r"^/(?P<version>v1|v1beta|v1alpha)/models/(?P<model>[^/:]+):generateContent$")
DEFAULT_KEY = "test-key-0123456789"


@dataclass
class Answer:
    """What the fake sends back for one request."""

    status: int = 200
    body: Any = None
    """A JSON-able object, raw bytes, or None for the default answer of the request's kind."""
    hang_s: float = 0.0
    """Sleep this long before answering (longer than the client timeout = a hang)."""
    kind: str = "ok"


@dataclass
class RecordedRequest:
    """One request as the fake saw it."""

    at: float
    """time.monotonic() on arrival."""
    path: str
    api_version: str
    model: str
    key_ok: bool
    audio_seconds: float | None
    audio_mime: str | None
    fingerprint: str | None
    """sha1 of the decoded samples (the same chunk retried has the same fingerprint)."""
    prompt: str
    attempt: int
    """1 for the first request with this fingerprint (or prompt text), 2 for the next..."""
    body: dict = field(repr=False, default_factory=dict)
    answer: str = ""

    @property
    def is_audio(self) -> bool:
        return self.audio_seconds is not None


# -- answers --------------------------------------------------------------------
def transcript(segments: list[dict], *, prompt_tokens: int = 100, output_tokens: int = 20) -> Answer:
    """A success whose candidate text is `{"segments": [...]}`."""
    return json_reply({"segments": segments}, prompt_tokens=prompt_tokens, output_tokens=output_tokens)


def json_reply(obj: Any, *, prompt_tokens: int = 100, output_tokens: int = 20) -> Answer:
    """A success whose candidate text is `obj` serialised as JSON (summaries, custom shapes)."""
    return text_reply(json.dumps(obj), prompt_tokens=prompt_tokens, output_tokens=output_tokens)


def text_reply(text: str, *, prompt_tokens: int = 100, output_tokens: int = 20) -> Answer:
    """A success whose candidate text is `text` verbatim (e.g. not JSON at all)."""
    return Answer(200, _candidate_body(text, prompt_tokens, output_tokens), kind="ok")


def ok() -> Answer:
    """The default success for the request's kind (transcript of the audio, or text_reply)."""
    return Answer(200, None, kind="ok")


def rate_limited(delay_s: float = 1.0) -> Answer:
    """429 RESOURCE_EXHAUSTED with a google.rpc.RetryInfo retryDelay, as Gemini sends."""
    return Answer(429, _error_body(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay_s:g}s"}]),
        kind="429")


def server_error(code: int = 500) -> Answer:
    status = {500: "INTERNAL", 502: "BAD_GATEWAY", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
    return Answer(code, _error_body(code, status.get(code, "INTERNAL"), "An internal error has occurred."),
                  kind=str(code))


def hang(seconds: float = 5.0) -> Answer:
    """Answer only after `seconds` (use more than the client's timeout)."""
    return Answer(200, None, hang_s=seconds, kind="hang")


def malformed() -> Answer:
    """HTTP 200 whose body is not JSON."""
    return Answer(200, b'{"candidates": [{"content": {"parts": [{"text": "trunc', kind="malformed")


def empty_candidates() -> Answer:
    """HTTP 200 with no candidates (what Gemini sends when it produces nothing)."""
    return Answer(200, {"candidates": [], "usageMetadata": {"promptTokenCount": 100, "totalTokenCount": 100}},
                  kind="empty")


def forbidden(message: str = "Your API key was reported as leaked. Please use another API key.") -> Answer:
    return Answer(403, _error_body(403, "PERMISSION_DENIED", message), kind="403")


def bad_request(message: str = "Request contains an invalid argument.") -> Answer:
    return Answer(400, _error_body(400, "INVALID_ARGUMENT", message), kind="400")


def not_found(model: str = "no-such-model") -> Answer:
    return Answer(404, _error_body(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta, "
                                   "or is not supported for generateContent."), kind="404")


def _error_body(code: int, status: str, message: str, details: list | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def _candidate_body(text: str, prompt_tokens: int, output_tokens: int) -> dict:
    return {
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": prompt_tokens, "candidatesTokenCount": output_tokens,
                          "totalTokenCount": prompt_tokens + output_tokens},
        "modelVersion": "fake-gemini",
    }


# -- the server ---------------------------------------------------------------
class FakeGemini:
    """The server. Thread-safe: handler threads record and pick answers under a lock."""

    def __init__(self, api_key: str = DEFAULT_KEY) -> None:
        self.api_keys = {api_key}
        self.revoked_keys: set[str] = set()
        self.requests: list[RecordedRequest] = []
        self.responder: Callable[[RecordedRequest], Answer | None] | None = None
        self.text_reply: Any = {"text": "fake reply"}
        self._script: deque[Answer] = deque()
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-gemini",
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> "FakeGemini":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes any handler sleeping in a hang
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def script(self, *answers: Answer) -> None:
        """Queue answers; each request takes the next one, then the default applies."""
        with self._lock:
            self._script.extend(answers)

    def audio_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.is_audio]

    def max_in_window(self, window_s: float) -> int:
        """The most requests that arrived within any `window_s`-long interval."""
        times = sorted(r.at for r in self.requests)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window_s:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    # -- called on handler threads -------------------------------------------
    def _record_and_choose(self, request: RecordedRequest) -> Answer:
        with self._lock:
            ident = request.fingerprint or hashlib.sha1(request.prompt.encode()).hexdigest()
            self._attempts[ident] = request.attempt = self._attempts.get(ident, 0) + 1
            self.requests.append(request)
            scripted = self._script.popleft() if self._script else None
        if not request.key_ok:
            return self._key_answer(request)
        if request.fingerprint == "undecodable":
            request.answer = "400"
            return bad_request("Unable to process input audio: the inline data is not WAV or FLAC.")
        answer = scripted or (self.responder(request) if self.responder else None) or ok()
        if answer.body is None and answer.status == 200:
            answer = Answer(200, self._default_body(request), hang_s=answer.hang_s, kind=answer.kind)
        request.answer = answer.kind
        return answer

    def _key_answer(self, request: RecordedRequest) -> Answer:
        request.answer = "key"
        if request.body.get("_key") is None:
            return Answer(403, _error_body(403, "PERMISSION_DENIED",
                                           "Method doesn't allow unregistered callers."), kind="403")
        if request.body["_key"] in self.revoked_keys:
            return forbidden()
        return Answer(400, _error_body(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                                       [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                         "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]), kind="400")

    def _default_body(self, request: RecordedRequest) -> dict:
        if not request.is_audio:
            return _candidate_body(json.dumps(self.text_reply), 50, 10)
        seconds = round(request.audio_seconds or 0.0, 3)
        segments = [{"start": 0.0, "end": seconds, "speaker": "Speaker 1",
                     "text": f"fake words {request.fingerprint[:8]} lasting {seconds:.1f} seconds"}]
        # ~32 tokens per second of audio, as Gemini bills audio.
        return _candidate_body(json.dumps({"segments": segments}), int(32 * seconds) + 60, 25)


def _handler_for(fake: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes

        def do_POST(self) -> None:
            match = PATH_RE.match(self.path.split("?", 1)[0])
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not match:
                self._send(404, _error_body(404, "NOT_FOUND", f"unknown path {self.path}"))
                return
            request = _parse_request(raw, match, self.path, self.headers.get("x-goog-api-key"), fake)
            answer = fake._record_and_choose(request)
            if answer.hang_s:
                fake._stopping.wait(answer.hang_s)
            self._send(answer.status, answer.body)

        def _send(self, status: int, body: Any) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout); that is the point of a hang

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


def _parse_request(raw: bytes, match: re.Match, path: str, key: str | None,
                   fake: FakeGemini) -> RecordedRequest:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = {}
    seconds = mime = fingerprint = None
    texts = []
    for part in _parts(body):
        inline = part.get("inlineData") or part.get("inline_data")
        if inline:
            mime = inline.get("mimeType") or inline.get("mime_type")
            seconds, fingerprint = _decode_audio(inline.get("data", ""))
        elif "text" in part:
            texts.append(part["text"])
    body["_key"] = key  # kept only in the recording, never sent back
    return RecordedRequest(at=time.monotonic(), path=path, api_version=match["version"],
                           model=match["model"], key_ok=key in fake.api_keys and key not in fake.revoked_keys,
                           audio_seconds=seconds, audio_mime=mime, fingerprint=fingerprint,
                           prompt="\n".join(texts), attempt=0, body=body)


def _parts(body: dict) -> Iterator[dict]:
    for content in body.get("contents", []):
        yield from content.get("parts", [])


def _decode_audio(data: str) -> tuple[float, str]:
    """Duration and fingerprint of base64 WAV/FLAC (the SDK sends URL-safe base64).

    Undecodable audio yields (0.0, "undecodable"); the request is then answered 400.
    """
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        pcm, rate = sf.read(io.BytesIO(raw), dtype="int16", always_2d=False)
    except (ValueError, sf.LibsndfileError, RuntimeError):
        return 0.0, "undecodable"
    return len(pcm) / rate, hashlib.sha1(pcm.tobytes()).hexdigest()


# -- fixtures -----------------------------------------------------------------
@pytest.fixture
def fake_gemini_factory():
    """Start fake servers: `make(api_key=...)`; all are stopped after the test."""
    started: list[FakeGemini] = []

    def make(api_key: str = DEFAULT_KEY) -> FakeGemini:
        fake = FakeGemini(api_key).start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
def fake_gemini(fake_gemini_factory) -> FakeGemini:
    """One running fake server accepting DEFAULT_KEY."""
    return fake_gemini_factory()
