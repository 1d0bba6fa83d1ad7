"""The transcription backends Scribe knows: each named once, with its facts; everyone else asks here.

A backend is one module under `scribe/transcribers/` with a `build(settings, *, model, workers,
progress)` function, plus one `register(BackendSpec(...))` line below. The CLI's `--backend`
choices, the API's upload form, settings validation, the pages' backend pickers and labels,
which backends may be switched to and which are metered all read this registry.

This module imports nothing from scribe at load time, so `config` can read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scribe.config import Settings
    from scribe.transcribers.base import Transcriber


@dataclass(frozen=True)
class BackendSpec:
    """One backend's facts."""

    name: str
    """What SCRIBE_BACKEND, --backend and the API call it; stored with every chunk it transcribes."""
    label: str
    """How pages name it."""
    module: str
    """The module whose `build(settings, *, model, workers, progress)` makes its transcriber."""
    model_setting: str | None
    """The Settings field holding its model (what --model and the sidebar's model change); None: no model."""
    key_setting: str | None = None
    """The Settings field it cannot run without (an API key); None: needs nothing."""
    metered: bool = False
    """Its calls cost money by tokens (costs and the lab price them)."""
    offered: bool = True
    """People may pick it (sidebar, re-transcribe); False for test stand-ins."""

    def build(self, settings: Settings, *, model: str | None = None, workers: int | None = None,
              progress: Any = None) -> Transcriber:
        builder = import_module(self.module).build
        return builder(settings, model=model, workers=workers, progress=progress)


REGISTRY: dict[str, BackendSpec] = {}


def register(spec: BackendSpec) -> BackendSpec:
    REGISTRY[spec.name] = spec
    return spec


def names() -> tuple[str, ...]:
    """Every registered backend, in registration order."""
    return tuple(REGISTRY)


def offered() -> tuple[str, ...]:
    """The backends people may pick."""
    return tuple(name for name, spec in REGISTRY.items() if spec.offered)


def metered() -> tuple[str, ...]:
    return tuple(name for name, spec in REGISTRY.items() if spec.metered)


def spec(name: str) -> BackendSpec:
    """The backend called `name`; SettingsError naming the known ones otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        from scribe.errors import SettingsError

        raise SettingsError(f"SCRIBE_BACKEND={name!r} is not a known backend ({', '.join(REGISTRY)})") from None


def model_changes(name: str, model: str | None) -> dict[str, str]:
    """The Settings change that gives backend `name` the model `model` (nothing for a backend without one)."""
    setting = spec(name).model_setting
    return {setting: model} if setting and model else {}


register(BackendSpec("local", "Local Whisper", "scribe.transcribers.local", model_setting="whisper_model"))
register(BackendSpec("gemini", "Google Gemini", "scribe.transcribers.gemini", model_setting="gemini_model",
                     key_setting="gemini_api_key", metered=True))
register(BackendSpec("stub", "Stub (tests)", "scribe.transcribers.stub", model_setting=None, offered=False))
