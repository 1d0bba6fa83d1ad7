"""Named exceptions. The library raises these; pages and the CLI turn them into messages."""

from __future__ import annotations


class ScribeError(Exception):
    """Base class for every error Scribe reports to a person."""


class SettingsError(ScribeError):
    """A setting has a bad value; the message names the variable."""


class AudioDecodeError(ScribeError):
    """A file is missing, empty, corrupt, truncated or not audio."""


class AudioTooLongError(AudioDecodeError):
    """A file decodes to more than SCRIBE_MAX_AUDIO_HOURS of audio."""


class UploadTooLargeError(ScribeError):
    """An upload is bigger than SCRIBE_MAX_UPLOAD_MB."""


class ModelNotFoundError(ScribeError):
    """The configured Whisper model cannot be found offline."""


class BackendUnavailableError(ScribeError):
    """A backend's SDK is not installed or its configuration is incomplete."""


class NotFoundError(ScribeError):
    """A session (or other stored object) does not exist."""


class TranscriptionError(ScribeError):
    """A backend call failed.

    `retryable` tells the pipeline whether to try again (429, 5xx, timeouts,
    connection errors) or to fail the chunk at once (400, 401, 403, bad model).
    `retry_after` is a server-given delay in seconds, honoured by the backoff.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class SessionLimitError(ScribeError):
    """The process already holds SCRIBE_MAX_LIVE_SESSIONS live sessions."""


class SpeakerModelError(ScribeError):
    """The speaker model is not installed, or its file is not the one expected."""


class StorageOutageError(ScribeError):
    """The disk or database refused writes for longer than a caller would wait."""

    def __init__(self, message: str, *, seconds: float = 0.0, session_id: str | None = None) -> None:
        super().__init__(message)
        self.seconds = seconds
        self.session_id = session_id
        """The session whose chunks so far are stored (set by the caller that made it)."""


class AccessDeniedError(ScribeError):
    """The caller may read this session but not change it (only its owner or an admin may)."""


class SignInError(ScribeError):
    """A sign-in or token problem: unknown, revoked or malformed token, or a refused person."""
