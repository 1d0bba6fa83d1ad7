"""What every page shares: the process-wide Runtime and the settings it was built from.

Pages call `runtime()`; it is built once per distinct Settings (st.cache_resource),
so every browser session in this process shares one DuckDB connection and one
transcription queue.
"""

from __future__ import annotations

import streamlit as st

from scribe.config import Settings
from scribe.errors import ScribeError
from scribe.runtime import Runtime, configure_logging


def _secret_api_key() -> str | None:
    """GEMINI_API_KEY from .streamlit/secrets.toml, if present (never shown or logged)."""
    try:
        return st.secrets.get("GEMINI_API_KEY")  # type: ignore[no-any-return]
    except Exception:  # no secrets file at all
        return None


def settings() -> Settings:
    """Settings from the environment, with the key from secrets.toml when the env has none."""
    try:
        base = Settings.from_env()
        if not base.gemini_api_key and (key := _secret_api_key()):
            base = base.with_changes(gemini_api_key=key)
        return base
    except ScribeError as exc:
        st.error(f"Bad setting: {exc}")
        st.stop()
        raise


@st.cache_resource(show_spinner="Loading the transcription model...")
def _build_runtime(config: Settings) -> Runtime:
    configure_logging(config.log_level)
    return Runtime.build(config, final_pass=True)


def runtime() -> Runtime:
    """The shared Runtime; stops the page with a clear message if it cannot start."""
    try:
        return _build_runtime(settings())
    except ScribeError as exc:
        st.error(f"Scribe cannot start: {exc}")
        st.stop()
        raise
