"""Scribe: live meeting transcription. The library behind the Streamlit pages and the CLI."""

__version__ = "0.1.0"

from scribe.chunking import Chunk, Chunker, parse_policy
from scribe.config import Settings
from scribe.core import Segment
from scribe.errors import (AudioDecodeError, ModelNotFoundError, NotFoundError, ScribeError,
                           SettingsError, TranscriptionError)
from scribe.pipeline import Pipeline
from scribe.runtime import Runtime
from scribe.storage import Storage
from scribe.transcribers import Transcriber

__all__ = [
    "AudioDecodeError", "Chunk", "Chunker", "ModelNotFoundError", "NotFoundError", "Pipeline",
    "Runtime", "ScribeError", "Segment", "Settings", "SettingsError", "Storage", "Transcriber",
    "TranscriptionError", "parse_policy",
]
