"""The transcription backends Scribe knows: each named once, with its facts; everyone else asks here.

A backend is one module under `scribe/transcribers/` with a `build(settings, *, model, workers,
progress)` function (and, if it has a model, `MODEL_CHOICES`: the names callers may pick), plus
one `register(BackendSpec(...))` line below. The CLI's `--backend`
choices, the API's upload form, settings validation, the pages' backend pickers and labels,
which backends may be switched to, which are metered and what their models cost all read this
registry.

This module imports nothing from scribe at load time, so `config` can read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scribe.config import Settings
    from scribe.transcribers.base import Transcriber


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens (paid tier, prompts up to 200k tokens)."""

    text_input: float
    audio_input: float
    output: float


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
    prices: Mapping[str, Price] = field(default_factory=dict, hash=False)
    """Its models' prices (a metered backend's); `price_for` matches dated variants to their family."""
    words: str = ""
    """How the Record page says who transcribes, with `{model}` filled in; empty: its label and model."""
    whisper_here: bool = False
    """It runs `scribe.models`' Whisper models in this process: the model is prepared (assembled or
    downloaded) and warmed before use, decodes SCRIBE_LANGUAGE, is compared with SCRIBE_FINAL_MODEL,
    and the final pass re-decodes its sessions."""
    rpm_setting: str | None = None
    """The Settings field holding its requests-per-minute limit (a hosted API's quota); None: no limit."""
    bench_threads: int | None = None
    """Worker threads the load test (`bench`) gives it by default (a call that waits, like the
    stand-in's, wants many; one that takes a core, few); None: not load-tested."""

    def build(self, settings: Settings, *, model: str | None = None, workers: int | None = None,
              progress: Any = None) -> Transcriber:
        builder = import_module(self.module).build
        return builder(settings, model=model, workers=workers, progress=progress)

    def configured_model(self, settings: Settings) -> str | None:
        """The model `settings` give it (its `model_setting`), or None for a backend without one."""
        return getattr(settings, self.model_setting) if self.model_setting else None

    def model_choices(self) -> tuple[str, ...] | None:
        """The model names a caller may choose for it (its module's `MODEL_CHOICES`); None: any
        name, for a backend without a model."""
        return tuple(import_module(self.module).MODEL_CHOICES) if self.model_setting else None


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


def benched() -> tuple[str, ...]:
    """The backends the load test can run (those with `bench_threads`)."""
    return tuple(name for name, spec in REGISTRY.items() if spec.bench_threads)


def whisper_here() -> str:
    """The backend that runs Whisper models in this process: the final pass's, and the one a
    `/v1` request naming another local model is served by."""
    return next(name for name, spec in REGISTRY.items() if spec.whisper_here)


def describe(name: str, model: str) -> str:
    """How a page says who transcribes: backend `name`'s `words` for `model` (its label and model
    without words; the bare name for a backend the registry does not know)."""
    known = REGISTRY.get(name)
    words = (known.words or known.label + " ({model})") if known else name + " ({model})"
    return words.format(model=model)


def label(name: str) -> str:
    """How pages name backend `name` (the name itself for one the registry does not know)."""
    return REGISTRY[name].label if name in REGISTRY else name


def missing_key(name: str, settings: Settings) -> str | None:
    """The Settings field backend `name` cannot run without and `settings` leave empty (its
    `key_setting`), or None (nothing missing, or a name the registry does not know)."""
    setting = REGISTRY[name].key_setting if name in REGISTRY else None
    return setting if setting and not getattr(settings, setting) else None


def requests_per_minute(name: str, settings: Settings) -> int | None:
    """Backend `name`'s calls-per-minute limit under `settings` (its `rpm_setting`); None for no
    limit or a name the registry does not know (a test's own transcriber)."""
    setting = REGISTRY[name].rpm_setting if name in REGISTRY else None
    return getattr(settings, setting) if setting else None


def runs_whisper_here(name: str) -> bool:
    """Whether backend `name` runs a Whisper model in this process (False for an unknown name)."""
    return name in REGISTRY and REGISTRY[name].whisper_here


def spec(name: str) -> BackendSpec:
    """The backend called `name`; SettingsError naming the known ones otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        from scribe.errors import SettingsError

        raise SettingsError(f"SCRIBE_BACKEND={name!r} is not a known backend ({', '.join(REGISTRY)})") from None


def price_for(backend: str, model: str) -> Price | None:
    """The price of `model` on `backend`, matching dated or `-latest` variants to their family
    (longest prefix); None when the backend prices nothing or does not know the model."""
    table = REGISTRY[backend].prices if backend in REGISTRY else {}
    name = model.removeprefix("models/")
    matches = [known for known in table if name == known or name.startswith(known + "-")]
    return table[max(matches, key=len)] if matches else None


def estimate_cost(backend: str, model: str, input_tokens: int, output_tokens: int, *,
                  audio: bool = False) -> float | None:
    """Dollars for these tokens, or None for a model not in the backend's price table.

    `audio=True` prices all input tokens at the audio rate: a transcription
    prompt is mostly audio (`gemini_client.AUDIO_TOKENS_PER_SECOND`) plus ~100 text
    tokens, so this slightly overstates the cost, never understates it.
    """
    price = price_for(backend, model)
    if price is None:
        return None
    rate_in = price.audio_input if audio else price.text_input
    return (input_tokens * rate_in + output_tokens * price.output) / 1_000_000


def model_changes(name: str, model: str | None) -> dict[str, str]:
    """The Settings change that gives backend `name` the model `model` (nothing for a backend without one)."""
    setting = spec(name).model_setting
    return {setting: model} if setting and model else {}


GEMINI_PRICES: dict[str, Price] = {
    # Google AI for Developers price list (ai.google.dev/gemini-api/docs/pricing), as assumed
    # on 2026-11-28; check it before trusting a figure. Output includes thinking tokens.
    "gemini-3-pro-preview": Price(text_input=2.00, audio_input=2.00, output=12.00),
    "gemini-3-flash-preview": Price(text_input=0.50, audio_input=1.00, output=3.00),
    "gemini-2.5-pro": Price(text_input=1.25, audio_input=1.25, output=10.00),
    "gemini-2.5-flash": Price(text_input=0.30, audio_input=1.00, output=2.50),
    "gemini-2.5-flash-lite": Price(text_input=0.10, audio_input=0.30, output=0.40),
    "gemini-2.0-flash": Price(text_input=0.10, audio_input=0.70, output=0.40),
    "gemini-2.0-flash-lite": Price(text_input=0.075, audio_input=0.075, output=0.30),
}
"""Free-tier calls cost nothing; these are what the same tokens cost on a paid key.
The one price table: session costs, summaries and the lab all price through `estimate_cost`."""


DEFAULT = register(BackendSpec(
    "local", "Local Whisper", "scribe.transcribers.local", model_setting="whisper_model",
    words="Whisper {model}, on this server", whisper_here=True, bench_threads=2)).name
"""SCRIBE_BACKEND's default: offline, free."""
GEMINI = register(BackendSpec(
    "gemini", "Google Gemini", "scribe.transcribers.gemini", model_setting="gemini_model",
    key_setting="gemini_api_key", metered=True, prices=GEMINI_PRICES, words="Google Gemini ({model})",
    rpm_setting="gemini_rpm")).name
"""The hosted backend whose key, model and prices Gemini summaries use too."""
STAND_IN = register(BackendSpec(
    "stub", "Stub (tests)", "scribe.transcribers.stub", model_setting=None, offered=False,
    words="the test stand-in ({model})", bench_threads=32)).name
"""The latency-shaped stand-in the tests and the load test run."""
