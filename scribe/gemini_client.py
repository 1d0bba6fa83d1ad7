"""Talking to Google Gemini through the google-genai SDK: client, JSON calls, errors, cost.

Shared by the Gemini transcriber and Gemini summaries. Facts this relies on
(measured with google-genai 3.6):

- `HttpOptions(timeout=...)` is in **milliseconds**; `api_version` picks v1 or
  v1beta (the SDK's default is v1; we default to v1beta, which accepts JSON
  response schemas on every current model); `base_url` points the SDK at a
  proxy or at the test server in `tests/fake_gemini.py`.
- The SDK does not retry unless given `retry_options`, and ignores `retryDelay`:
  we pass `HttpRetryOptions(attempts=1)` so retries stay with the pipeline.
- A `genai.Client` that is no longer referenced closes its HTTP client and later
  calls through objects taken from it fail, so clients are cached for the
  process (`client_for`).
- 4xx raise `errors.ClientError`, 5xx `errors.ServerError`, a slow server an
  httpx(2) `ReadTimeout`, an unreachable one an httpx(2) `ConnectError`.

The API key is never put in a message, a log line or the database: error text
is built from the response's code, status and message only, and any occurrence
of the key is redacted anyway.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

from scribe.core import Usage
from scribe.errors import BackendUnavailableError, TranscriptionError

log = logging.getLogger("scribe.gemini")

DEFAULT_API_VERSION = "v1beta"
KEY_REJECTED = "Gemini rejected the API key"
"""Every key problem's message starts with this, so pages can recognise it in a stored error."""
KEY_MISSING = "Gemini needs an API key: set GEMINI_API_KEY (environment or .streamlit/secrets.toml)"

_clients: dict[tuple[str, str | None, str, int], Any] = {}
_clients_lock = threading.Lock()


# -- the client ---------------------------------------------------------------
def client_for(api_key: str | None, *, base_url: str | None = None,
               api_version: str = DEFAULT_API_VERSION, timeout_s: float = 60.0) -> Any:
    """A `genai.Client` for these options, built once and kept for the process.

    Raises BackendUnavailableError when the key is missing or the SDK is not installed.
    """
    if not api_key:
        raise BackendUnavailableError(KEY_MISSING)
    # The cache key holds a digest, not the key, so a dump of this dict shows no secret.
    cache_key = (hashlib.sha256(api_key.encode()).hexdigest(), base_url, api_version, int(timeout_s * 1000))
    with _clients_lock:
        if cache_key not in _clients:
            _clients[cache_key] = _build_client(api_key, base_url, api_version, timeout_s)
        return _clients[cache_key]


def client_from_settings(settings: Any) -> Any:
    """The process's client for `scribe.config.Settings` (key, base URL, API version, timeout)."""
    return client_for(settings.gemini_api_key, base_url=settings.gemini_base_url,
                      api_version=getattr(settings, "gemini_api_version", None) or DEFAULT_API_VERSION,
                      timeout_s=settings.gemini_timeout)


def _build_client(api_key: str, base_url: str | None, api_version: str, timeout_s: float) -> Any:
    try:
        from google import genai
        from google.genai import types
    except ImportError:
        raise BackendUnavailableError("the Gemini backend needs google-genai: pip install google-genai") from None
    options = types.HttpOptions(
        base_url=base_url or None, api_version=api_version,
        timeout=max(1, int(timeout_s * 1000)),  # the SDK counts milliseconds
        retry_options=types.HttpRetryOptions(attempts=1),  # the pipeline owns retries
    )
    return genai.Client(api_key=api_key, http_options=options)


# -- one call -----------------------------------------------------------------
@dataclass
class JsonReply:
    """A parsed JSON answer and what it cost."""

    data: Any
    usage: Usage
    model_version: str | None = None


def generate_json(client: Any, *, model: str, contents: list[Any], schema: dict,
                  system_instruction: str | None = None, temperature: float = 0.0,
                  api_key: str | None = None, max_output_tokens: int | None = None) -> JsonReply:
    """Call generateContent asking for JSON matching `schema`; return the parsed object.

    Runs on the caller's thread and blocks up to the client's timeout. Every
    failure becomes a TranscriptionError (`retryable` set, key never in the message);
    `api_key` is only used to redact it from server messages.
    """
    from google.genai import types

    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=schema, temperature=temperature,
        system_instruction=system_instruction, max_output_tokens=max_output_tokens,
        thinking_config=_thinking_off(model))
    try:
        response = client.models.generate_content(model=model, contents=contents, config=config)
    except Exception as exc:  # the SDK raises many types; all are mapped below
        raise to_transcription_error(exc, api_key=api_key, model=model) from None
    return JsonReply(parse_json_text(response, api_key=api_key), usage_from_response(response),
                     getattr(response, "model_version", None))


def _thinking_off(model: str) -> Any:
    """2.5 Flash models think by default, which costs output tokens and time a
    transcript does not need; their budget can be 0. Other models keep their default."""
    from google.genai import types

    if model.startswith("gemini-2.5-flash"):
        return types.ThinkingConfig(thinking_budget=0)
    return None


def parse_json_text(response: Any, *, api_key: str | None = None) -> Any:
    """The candidate's text as JSON; a retryable TranscriptionError when it is absent or not JSON.

    The text quoted in the error is redacted first (a model can echo what it was sent,
    key included), then shortened, so no prefix of the key survives a cut."""
    text = _response_text(response)
    if text is None:
        raise _empty_answer_error(response)
    try:
        return json.loads(text)
    except ValueError:
        raise TranscriptionError(f"Gemini answered with text that is not JSON: "
                                 f"{_redact(text, api_key)[:80]!r}", retryable=True) from None


def _response_text(response: Any) -> str | None:
    try:
        return response.text
    except Exception:  # .text raises on some odd candidate shapes; treat as no text
        return None


def _empty_answer_error(response: Any) -> TranscriptionError:
    feedback = getattr(response, "prompt_feedback", None)
    blocked = getattr(feedback, "block_reason", None)
    if blocked:
        return TranscriptionError(f"Gemini blocked the request ({_enum_name(blocked)})", retryable=False)
    candidates = getattr(response, "candidates", None) or []
    reason = _enum_name(getattr(candidates[0], "finish_reason", None)) if candidates else None
    if reason in ("SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII"):
        return TranscriptionError(f"Gemini refused to answer (finish reason {reason})", retryable=False)
    detail = f"finish reason {reason}" if reason else "no candidates"
    return TranscriptionError(f"Gemini returned an empty answer ({detail})", retryable=True)


def _enum_name(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "name", value))


# -- usage and cost -----------------------------------------------------------
def usage_from_response(response: Any) -> Usage:
    """Prompt tokens in, candidate plus thinking tokens out (Google bills thinking as output)."""
    meta = getattr(response, "usage_metadata", None)
    if meta is None:
        return Usage()
    output = (meta.candidates_token_count or 0) + (getattr(meta, "thoughts_token_count", None) or 0)
    return Usage(input_tokens=int(meta.prompt_token_count or 0), output_tokens=int(output))


AUDIO_TOKENS_PER_SECOND = 32
"""Gemini counts 32 input tokens per second of audio (the estimate for a call that reported none)."""


# -- errors -------------------------------------------------------------------
RETRYABLE_CODES = {408, 429, 500, 502, 503, 504}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def to_transcription_error(exc: BaseException, *, api_key: str | None = None,
                           model: str | None = None) -> TranscriptionError:
    """Map anything the SDK raised to a TranscriptionError with `retryable` and `retry_after`."""
    code = getattr(exc, "code", None)
    if isinstance(code, int) and _is_api_error(exc):
        return _api_error(exc, code, api_key, model)
    name = type(exc).__name__
    if "Timeout" in name:
        return TranscriptionError("Gemini did not answer in time (SCRIBE_GEMINI_TIMEOUT)", retryable=True)
    if _is_transport_error(exc):
        return TranscriptionError(f"cannot reach Gemini ({name}: {_redact(str(exc), api_key)[:160]})",
                                  retryable=True)
    if isinstance(exc, ValueError):  # includes JSONDecodeError from a malformed body
        return TranscriptionError(f"Gemini sent a malformed response ({name})", retryable=True)
    return TranscriptionError(f"Gemini call failed ({name}: {_redact(str(exc), api_key)[:160]})",
                              retryable=True)


def _api_error(exc: BaseException, code: int, api_key: str | None, model: str | None) -> TranscriptionError:
    status = getattr(exc, "status", None) or ""
    message = _redact(str(getattr(exc, "message", None) or ""), api_key)[:300]
    if _is_key_problem(exc, code):
        return TranscriptionError(f"{KEY_REJECTED} ({code} {status}): {message} "
                                  "Check GEMINI_API_KEY.", retryable=False)
    if code == 404:
        return TranscriptionError(f"Gemini model {model!r} was not found ({code} {status}): {message} "
                                  "Check SCRIBE_GEMINI_MODEL.", retryable=False)
    retryable = code in RETRYABLE_CODES or code >= 500
    retry_after = retry_delay_seconds(exc) if retryable else None
    return TranscriptionError(f"Gemini error {code} {status}: {message}".rstrip(": "),
                              retryable=retryable, retry_after=retry_after)


def _is_key_problem(exc: BaseException, code: int) -> bool:
    if code in (401, 403):
        return True
    return code == 400 and "API_KEY" in json.dumps(getattr(exc, "details", None), default=str)


def retry_delay_seconds(exc: BaseException) -> float | None:
    """The server's `google.rpc.RetryInfo.retryDelay` ("17s", "0.5s"), else a Retry-After header."""
    details = getattr(exc, "details", None)
    error = details.get("error", details) if isinstance(details, dict) else {}
    for item in (error.get("details") or []) if isinstance(error, dict) else []:
        if isinstance(item, dict) and "retryDelay" in item:
            match = _DURATION_RE.match(str(item["retryDelay"]))
            if match:
                return float(match.group(1))
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    try:
        retry_after = headers.get("retry-after")
        return float(retry_after) if retry_after else None
    except (TypeError, ValueError):
        return None


def _is_api_error(exc: BaseException) -> bool:
    try:
        from google.genai import errors
    except ImportError:
        return False
    return isinstance(exc, errors.APIError)


def _is_transport_error(exc: BaseException) -> bool:
    """httpx or httpx2 (the SDK uses either) transport errors, and plain socket errors."""
    for module_name in ("httpx", "httpx2"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        if isinstance(exc, module.TransportError):
            return True
    return isinstance(exc, (ConnectionError, OSError))


def _redact(text: str, api_key: str | None) -> str:
    from scribe.redact import redact_secrets

    return redact_secrets(text.replace(api_key, "[redacted]") if api_key else text)
