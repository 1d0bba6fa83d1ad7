"""Scribe: live meeting transcription. The library behind the Streamlit pages and the CLI."""

import os

__version__ = "0.1.0"

# A self-hosted tool sends nothing anywhere unless configured to: onnxruntime (Silero VAD) would
# otherwise send usage events to its vendor whenever a session loads. Read once, when onnxruntime
# first initializes, so it is set before any import below can load it.
if not os.environ.get("ORT_DISABLE_TELEMETRY"):
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"

from scribe.chunking import Chunk, Chunker, parse_policy
from scribe.config import Settings
from scribe.core import Segment
from scribe.errors import (
    AudioDecodeError,
    ModelNotFoundError,
    NotFoundError,
    ScribeError,
    SettingsError,
    TranscriptionError,
)
from scribe.memory import limit_kernel_cache
from scribe.pipeline import Pipeline
from scribe.runtime import Runtime
from scribe.storage import Storage
from scribe.transcribers import Transcriber

limit_kernel_cache()  # oneDNN reads it when it builds its first kernel, not at import

__all__ = [
    "AudioDecodeError", "Chunk", "Chunker", "ModelNotFoundError", "NotFoundError", "Pipeline",
    "Runtime", "ScribeError", "Segment", "Settings", "SettingsError", "Storage", "Transcriber",
    "TranscriptionError", "parse_policy",
]
